"""A local S3 for the chunkfs tests: s3rver (npm, pinned in tests/node) on 127.0.0.1.

s3rver 3.7.1 alone accepts any SigV4 signature of a known access key and serves every
bucket to anonymous readers. tests/node/s3rver-strict.js runs it with SigV4 verified
the way S3 does it, anonymous access limited to "public" buckets, per-bucket regions,
extra key pairs and a JSON request log (see that file). Install it with
`source scripts/deps.sh && cfs_install_s3rver` (scripts/test does).

Public API (test_s3.py):
  fixtures:  s3 (module: a started S3rver holding UPLOADS), gen_dataset, odd_dataset,
             tree_dir, many_dir
  classes:   S3rver (start, stop, url, port, client(), mark(), requests(since)),
             S3Client (request, put_object, get_object)
  helpers:   sign_v4, uri_encode, upload_tree, tree_files, list_objects
  constants: ACCESS_KEY/SECRET_KEY (s3rver's built-in pair), TEST_KEY/TEST_SECRET (a
             second pair with an AWS-like secret), REGION, EU_REGION, bucket names,
             MIXED_PREFIX, GEN_PREFIX, ODD_PREFIX, ODD_ASCII_PREFIX, EMPTY_PREFIX,
             TREE_PREFIX, MANY_PREFIX, ODD_CHUNK_NAMES, TREE_ODD_NAMES, MANY_KEYS,
             BAD_PREFIX, BAD_PHANTOM_KEYS, BAD_VALID, BAD_LONGEST_NAME
"""
import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import time
from xml.etree import ElementTree

import pytest

from cfsutil import KiB, MiB, TESTS_DIR, data_dir, litgen, scaled, stop_process, tail

NODE_DIR = os.path.join(TESTS_DIR, "node")
S3RVER_STRICT = os.path.join(NODE_DIR, "s3rver-strict.js")
S3RVER_PACKAGE = os.path.join(NODE_DIR, "node_modules", "s3rver", "package.json")
S3RVER_VERSION = "3.7.1"
NODE = shutil.which("node") or "/usr/bin/node"

ACCESS_KEY = "S3RVER"            # s3rver's built-in key pair
SECRET_KEY = "S3RVER"
TEST_KEY = "AKIACHUNKFSTEST0001"  # a second pair (S3RVER_EXTRA_KEYS): a secret unlike the key id
TEST_SECRET = "cHvN3/s3cr3t+Key/wJalrXUtnFEMI=K7MDENG"
REGION = "us-east-1"
EU_REGION = "eu-west-3"

BUCKET = "bucket"                # private: anonymous requests get 403
PUBLIC_BUCKET = "public"         # anonymous reads allowed
EU_BUCKET = "eu-bucket"          # requests must be signed for EU_REGION

MIXED_PREFIX = "datasets/litdata-mixed"
GEN_PREFIX = "datasets/gen"
ODD_PREFIX = "datasets/odd names/ünï çødé"
ODD_ASCII_PREFIX = "datasets/odd names/a+b=c (1)~"   # the same dataset, no UTF-8 in the prefix
EMPTY_PREFIX = "datasets/empty"  # holds readme.txt, no index.json
ODD_CHUNK_NAMES = ["chunk 0 – ünïcødé.bin", "c1 100% a+b=c (x)~&;,'!.bin"]
TREE_PREFIX = "tree"             # a nested tree without index.json at its top (write_tree)
MANY_PREFIX = "many"             # MANY_KEYS small objects in one directory
MANY_KEYS = 1100
# Names that come back XML-escaped in a listing (&amp; &lt; &gt; &quot; &apos;) or in UTF-8.
TREE_ODD_NAMES = ODD_CHUNK_NAMES + ['a&b <c> "q" \'s\'.txt', "日本語 ファイル.txt"]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
LISTENING_RE = re.compile(r"S3rver listening on 127\.0\.0\.1:(\d+)")


# --------------------------------------------------------------------------
# SigV4 (stdlib only), used to upload and to check the server's verification


def uri_encode(data, keep_slash):
    """S3's URI encoding: A-Z a-z 0-9 - . _ ~ as they are ('/' too when keep_slash),
    every other byte of the UTF-8 form as %XX."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    safe = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    if keep_slash:
        safe += b"/"
    return "".join(chr(b) if b in safe else "%%%02X" % b for b in data)


def _hmac(key, text):
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(method, host, path, query, headers, payload_sha256, access_key, secret, region,
            token=None, now=None):
    """Headers to add to a request for SigV4 header auth (S3, service "s3").

    path: the request path as sent, already URI-encoded (uri_encode(..., True));
    query: list of (name, value) pairs, not encoded; headers: dict of the other headers
    (all of them are signed)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    out = {"x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256}
    if token:
        out["x-amz-security-token"] = token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed.update(out)
    signed["host"] = host
    names = sorted(signed)
    canonical_query = "&".join("%s=%s" % kv for kv in sorted(
        (uri_encode(k, False), uri_encode(v, False)) for k, v in query))
    canonical = "\n".join([method, path, canonical_query,
                           "".join("%s:%s\n" % (n, signed[n]) for n in names),
                           ";".join(names), payload_sha256])
    scope = "%s/%s/s3/aws4_request" % (date, region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                            % (access_key, scope, ";".join(names), signature))
    return out


class S3Client:
    """Path-style requests to an S3 endpoint on 127.0.0.1:port (one connection each)."""

    def __init__(self, port, access_key=ACCESS_KEY, secret=SECRET_KEY, region=REGION,
                 token=None, host=None):
        self.port = port
        self.host = host or "127.0.0.1:%d" % port
        self.access_key = access_key
        self.secret = secret
        self.region = region
        self.token = token

    def request(self, method, bucket="", key="", body=b"", headers=None, query=(),
                signed=True, timeout=30):
        """(status, headers dict with lower-case names, body bytes)."""
        path = "/" + uri_encode(bucket, False) if bucket else ""
        if key:
            path += "/" + uri_encode(key, True)
        path = path or "/"
        headers = dict(headers or {})
        if signed:
            headers.update(sign_v4(method, self.host, path, query, headers,
                                   hashlib.sha256(body).hexdigest(), self.access_key,
                                   self.secret, self.region, self.token))
        target = path
        if query:
            target += "?" + "&".join("%s=%s" % (uri_encode(k, False), uri_encode(v, False))
                                     for k, v in query)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers["Host"] = self.host
            conn.request(method, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def put_object(self, bucket, key, data):
        status, headers, body = self.request("PUT", bucket, key, body=data)
        if status != 200:
            raise AssertionError("PUT %s/%s: %d %s" % (bucket, key, status, body[:500]))
        return headers.get("etag", "")

    def get_object(self, bucket, key):
        status, _, body = self.request("GET", bucket, key)
        if status != 200:
            raise AssertionError("GET %s/%s: %d %s" % (bucket, key, status, body[:500]))
        return body


def tree_files(local_dir):
    """Paths relative to local_dir of every file below it (hidden ones left out)."""
    out = []
    for root, dirs, files in os.walk(local_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.relpath(os.path.join(root, n), local_dir)
                for n in sorted(files) if not n.startswith(".")]
    return out


def _upload_one(client, bucket, key, path):
    with open(path, "rb") as f:
        data = f.read()
    etag = client.put_object(bucket, key, data)
    assert etag.strip('"') == hashlib.md5(data).hexdigest(), (key, etag)
    back = client.get_object(bucket, key)
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest(), \
        "%s/%s read back differs from what was uploaded" % (bucket, key)
    return key


def list_objects(client, bucket, prefix, delimiter="/", max_keys=None, max_pages=100):
    """ListObjectsV2 through every page: (keys, common prefixes, number of pages)."""
    keys, prefixes, token = [], [], None
    for page in range(1, max_pages + 1):
        query = [("list-type", "2"), ("prefix", prefix), ("delimiter", delimiter)]
        if max_keys:
            query.append(("max-keys", str(max_keys)))
        if token:
            query.append(("continuation-token", token))
        status, _, body = client.request("GET", bucket, query=query)
        if status != 200:
            raise AssertionError("ListObjectsV2 %s/%s: %d %s"
                                 % (bucket, prefix, status, body[:500]))
        root = ElementTree.fromstring(body)
        tag = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        keys += [e.text for e in root.iter(tag + "Key")]
        prefixes += [e.find(tag + "Prefix").text for e in root.iter(tag + "CommonPrefixes")]
        if root.findtext(tag + "IsTruncated") != "true":
            return keys, prefixes, page
        token = root.findtext(tag + "NextContinuationToken")
    raise AssertionError("more than %d listing pages" % max_pages)


def upload_tree(client, bucket, prefix, local_dir, workers=8):
    """PUT every file under local_dir as prefix/relative-path, then GET each back once
    and compare its sha256 (and the ETag, the MD5 of the bytes). Returns the keys."""
    jobs = [(prefix.rstrip("/") + "/" + rel, os.path.join(local_dir, rel))
            for rel in tree_files(local_dir)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_upload_one, client, bucket, key, path) for key, path in jobs]
        return [f.result(timeout=120) for f in futures]


# --------------------------------------------------------------------------
# the server process


class S3rver:
    """s3rver-strict.js on 127.0.0.1 (a port it picks), data in workdir/data.

    url ("http://127.0.0.1:PORT"), port, pid, log (its stdout/stderr), request_log
    (JSON lines, see s3rver-strict.js). Virtual-hosted requests work with the endpoint
    http://s3.localhost:PORT (--service-endpoint localhost; libcurl resolves
    *.localhost to the loopback itself)."""

    def __init__(self, workdir, buckets, public_buckets=(), bucket_regions=None,
                 extra_keys=None, phantom_keys=None, redirects=None, keys_file=None):
        self.workdir = str(workdir)
        self.buckets = list(buckets)
        self.public_buckets = list(public_buckets)
        self.bucket_regions = dict(bucket_regions or {})
        self.extra_keys = dict(extra_keys or {})
        self.phantom_keys = dict(phantom_keys or {})
        self.redirects = dict(redirects or {})  # "/bucket/key" -> Location of a 307
        self.keys_file = keys_file  # temporary keys (S3RVER_KEYS_FILE), or None
        self.data = os.path.join(self.workdir, "data")
        self.log = os.path.join(self.workdir, "s3rver.log")
        self.request_log = os.path.join(self.workdir, "requests.jsonl")
        self.proc = None
        self.port = None
        self.url = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self):
        if not os.path.isfile(S3RVER_PACKAGE):
            pytest.fail("s3rver is not installed in %s: run `source scripts/deps.sh && "
                        "cfs_install_s3rver` (scripts/test does)" % NODE_DIR, pytrace=False)
        with open(S3RVER_PACKAGE) as f:
            version = json.load(f).get("version")
        assert version == S3RVER_VERSION, "tests/node has s3rver %s, want %s" % (
            version, S3RVER_VERSION)
        os.makedirs(self.data, exist_ok=True)
        argv = [NODE, S3RVER_STRICT, "--address", "127.0.0.1", "--port", "0",
                "--directory", self.data, "--service-endpoint", "localhost"]
        for bucket in self.buckets:
            argv += ["--configure-bucket", bucket]
        env = dict(os.environ)
        env.update({
            "S3RVER_REGION": REGION,
            "S3RVER_BUCKET_REGIONS": ",".join("%s=%s" % kv for kv in self.bucket_regions.items()),
            "S3RVER_PUBLIC_BUCKETS": ",".join(self.public_buckets),
            "S3RVER_EXTRA_KEYS": ",".join("%s:%s" % kv for kv in self.extra_keys.items()),
            "S3RVER_PHANTOM_KEYS": json.dumps(self.phantom_keys),
            "S3RVER_REDIRECTS": json.dumps(self.redirects),
            "S3RVER_REQUEST_LOG": self.request_log,
            "S3RVER_KEYS_FILE": self.keys_file or "",
            "NO_COLOR": "1",
        })
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, env=env, cwd=NODE_DIR, close_fds=True)
        try:
            self._wait_ready(scaled(30))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        interval = 0.01
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("s3rver exited with status %d before listening:\n%s"
                                     % (self.proc.returncode, tail(self.read_log())))
            if self.port is None:
                m = LISTENING_RE.search(self.read_log())
                if m:
                    self.port = int(m.group(1))
                    self.url = "http://127.0.0.1:%d" % self.port
            if self.port is not None:
                try:
                    status, _, body = self.client().request("GET", timeout=5)
                    if status == 200 and b"ListAllMyBucketsResult" in body:
                        return
                except OSError:
                    pass
            if time.monotonic() >= deadline:
                raise AssertionError("s3rver did not answer within %d s:\n%s"
                                     % (timeout, tail(self.read_log())))
            time.sleep(interval)
            interval = min(interval * 2, 0.1)

    def stop(self):
        """SIGTERM by PID, SIGKILL if it has not exited 10 s later."""
        stop_process(self.proc)

    def client(self, **kw):
        return S3Client(self.port, **kw)

    def mark(self):
        """A position in the request log, for requests(since=...)."""
        try:
            return os.path.getsize(self.request_log)
        except FileNotFoundError:
            return 0

    def requests(self, since=0):
        """Request log entries (dicts) written after the position since."""
        try:
            with open(self.request_log, "rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------
# datasets and the module fixture


def write_odd_dataset(out):
    """A small LitData dataset whose chunk names hold spaces, UTF-8 and the characters
    S3 clients most often get wrong in SigV4 paths (% + = ( ) ~ & ; , ' !)."""
    names = litgen.write_dataset(out, chunks=2, chunk_bytes=256 * KiB, item_min=1 * KiB,
                                 item_max=8 * KiB, seed=5)
    path = os.path.join(out, "index.json")
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    for entry, old, new in zip(index["chunks"], names, ODD_CHUNK_NAMES):
        os.rename(os.path.join(out, old), os.path.join(out, new))
        entry["filename"] = new
    with open(path, "w", encoding="utf-8") as f:
        json.dump(index, f, ensure_ascii=False)
    return out


def write_tree(out):
    """A nested tree: files at three depths, an empty file, names that need escaping,
    and a LitData dataset (litdata-mixed) in a subdirectory, ds/."""
    rng = random.Random(9)
    files = {
        "readme.txt": b"a tree without index.json at its top\n",
        "sub/b.bin": rng.randbytes(100 * KiB),
        "sub/deeper/c.bin": rng.randbytes(1536 * KiB),
        "sub/deeper/empty.bin": b"",
    }
    for i, name in enumerate(TREE_ODD_NAMES):
        files["odd/" + name] = ("%d: %s\n" % (i, name)).encode()
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        with open(os.path.join(out, rel), "wb") as f:
            f.write(data)
    shutil.copytree(data_dir("litdata-mixed"), os.path.join(out, "ds"))
    return out


def write_many(out):
    os.makedirs(out, exist_ok=True)
    for i in range(MANY_KEYS):
        with open(os.path.join(out, "k%04d.txt" % i), "wb") as f:
            f.write(b"object %d\n" % i)
    return out


@pytest.fixture(scope="module")
def tree_dir(tmp_path_factory):
    return write_tree(str(tmp_path_factory.mktemp("s3-tree")))


@pytest.fixture(scope="module")
def many_dir(tmp_path_factory):
    return write_many(str(tmp_path_factory.mktemp("s3-many")))


@pytest.fixture(scope="module")
def gen_dataset(tmp_path_factory):
    """A generated LitData dataset: 2 chunks of about 8 MiB."""
    out = str(tmp_path_factory.mktemp("s3-gen"))
    litgen.write_dataset(out, chunks=2, chunk_bytes=8 * MiB)
    return out


@pytest.fixture(scope="module")
def odd_dataset(tmp_path_factory):
    return write_odd_dataset(str(tmp_path_factory.mktemp("s3-odd")))


BAD_PREFIX = "bad"               # valid objects next to keys that cannot be file names
# Keys S3 allows that cannot be paths below a mount: listed (S3RVER_PHANTOM_KEYS), never
# stored. The mount of BAD_PREFIX must skip them (one log line each) and show BAD_VALID.
BAD_PHANTOM_KEYS = [
    BAD_PREFIX + "/../escape.bin",
    BAD_PREFIX + "/./dot.bin",
    BAD_PREFIX + "//empty-segment.bin",
    BAD_PREFIX + "/..",
    BAD_PREFIX + "/" + "x" * 252 + ".bin",          # a 256-byte name
    BAD_PREFIX + "/" + "y" * 300 + "/deep.bin",     # a 300-byte directory name
    BAD_PREFIX + "/" + "z" * 251 + ".bin",          # 255 bytes: a valid name (listed only:
]                                                 # too long for s3rver's store, GET is 404)
BAD_LONGEST_NAME = "z" * 251 + ".bin"
# Stored objects: BAD_PREFIX/sub/ is a "folder" marker (an empty object whose key ends in
# "/", as the S3 console makes them), next to a real object in that folder.
BAD_VALID = {"ok.bin": b"valid object\n", "sub/": b"", "sub/inner.txt": b"inner\n"}

# (bucket, prefix, local directory or fixture name) uploaded before any mount.
UPLOADS = [
    (BUCKET, MIXED_PREFIX, "litdata-mixed"),
    (BUCKET, GEN_PREFIX, "gen"),
    (BUCKET, ODD_PREFIX, "odd"),
    (BUCKET, ODD_ASCII_PREFIX, "odd"),
    (PUBLIC_BUCKET, MIXED_PREFIX, "litdata-mixed"),
    (PUBLIC_BUCKET, GEN_PREFIX, "gen"),
    (EU_BUCKET, MIXED_PREFIX, "litdata-mixed"),
    (BUCKET, TREE_PREFIX, "tree"),
    (BUCKET, MANY_PREFIX, "many"),
]


@pytest.fixture(scope="module")
def s3(tmp_path_factory, gen_dataset, odd_dataset, tree_dir, many_dir):
    """A started S3rver with UPLOADS in place (and BUCKET/EMPTY_PREFIX/readme.txt);
    stopped by PID at the end of the module, also when a test or the setup failed."""
    server = S3rver(tmp_path_factory.mktemp("s3rver"), [BUCKET, PUBLIC_BUCKET, EU_BUCKET],
                    public_buckets=[PUBLIC_BUCKET], bucket_regions={EU_BUCKET: EU_REGION},
                    extra_keys={TEST_KEY: TEST_SECRET},
                    phantom_keys={BUCKET: BAD_PHANTOM_KEYS})
    try:
        server.start()
        sources = {"litdata-mixed": data_dir("litdata-mixed"), "gen": gen_dataset,
                   "odd": odd_dataset, "tree": tree_dir, "many": many_dir}
        for bucket, prefix, source in UPLOADS:
            region = EU_REGION if bucket == EU_BUCKET else REGION
            upload_tree(server.client(region=region), bucket, prefix, sources[source])
        server.client().put_object(BUCKET, EMPTY_PREFIX + "/readme.txt", b"no index here\n")
        for rel, data in BAD_VALID.items():
            server.client().put_object(BUCKET, BAD_PREFIX + "/" + rel, data)
        yield server
    finally:
        server.stop()
