"""The S3 credential chain (issue 16): each link alone, their order, renewal of
temporary keys before they expire, endpoints that fail, IMDS's rules, no secret in -d.

The credentials endpoints are stand-ins of this file on 127.0.0.1 (one http.server in a
thread, started and stopped by the fixture): IMDSv2 (token PUT with its TTL header, role,
credentials JSON), the container endpoint (JSON, Authorization header checked) and STS
(AssumeRoleWithWebIdentity, XML). Each answer issues a fresh key pair that s3rver accepts
only until its expiry (S3RVER_KEYS_FILE of tests/node/s3rver-strict.js: after that, 400
ExpiredToken), so a request signed with an expired key shows in the request log."""
import datetime
import errno
import hashlib
import hmac
import http.server
import json
import math
import os
import random
import secrets
import ssl
import stat
import subprocess
import sys
import threading
import time
import re
import urllib.parse

import pytest

from cfsutil import MiB, litgen, open_direct, scaled, sha256_file, source_sha256, wait_for
from s3fixture import BUCKET, REGION, S3rver, upload_tree

PREFIX = "creds/gen"
ROLE = "chunkfs-test-role"
ROLE_ARN = "arn:aws:iam::123456789012:role/" + ROLE
AUTH_TOKEN = "Bearer container-auth-s3cr3t-0123456789"
WEB_TOKEN = "web-identity-s3cr3t-eyJhbGciOi"


class Issuer:
    """Issues key pairs valid for ttl seconds and tells s3rver about them (keys file)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.keys = {}      # access key id -> {"secret", "token", "expires" (ms), "link"}

    def issue(self, link, ttl, s3_ttl=None):
        """A new pair that says it expires in ttl s; S3 takes it for s3_ttl s (default ttl):
        a shorter s3_ttl stands for keys revoked early."""
        with self.lock:
            akid = "ASIA" + secrets.token_hex(8).upper()
            now = time.time()
            k = {"secret": secrets.token_urlsafe(30), "token": secrets.token_urlsafe(200),
                 "expires": int((now + ttl) * 1000), "link": link,
                 "s3_expires": int((now + (s3_ttl or ttl)) * 1000)}
            self.keys[akid] = k
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({a: {"secret": v["secret"], "token": v["token"],
                               "expires": v["s3_expires"]} for a, v in self.keys.items()}, f)
            os.replace(tmp, self.path)
            return akid, k

    def of_link(self, link):
        return {a for a, k in self.keys.items() if k["link"] == link}

    def secrets_text(self):
        return [v for k in self.keys.values() for v in (k["secret"], k["token"])]


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class Endpoints(http.server.ThreadingHTTPServer):
    """IMDS under /latest/, the container endpoint at /container, STS at /sts."""
    daemon_threads = True

    def __init__(self, issuer):
        super().__init__(("127.0.0.1", 0), Handler)
        self.issuer = issuer
        self.ttl = 3600
        self.s3_ttl = None       # keys revoked at S3 after this many s (None: at expiry)
        self.mode = {}           # link -> "ok" | "garbage" | "slow" | "refuse-token" | "500"
        self.seen = []           # (method, path)
        self.source_keys = None  # (key, secret) AssumeRole must be signed with
        self.released = threading.Event()  # ends the wait of a "slow" answer
        self.url = "http://127.0.0.1:%d" % self.server_address[1]

    def mode_of(self, link):
        return self.mode.get(link, "ok")

    def handle_error(self, request, client_address):
        """A client that gave up on a slow answer is expected; anything else is shown."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def keys_answer(self, link, xml=False):
        mode = self.server.mode_of(link)
        if mode == "garbage":
            return self.answer(200, "<html>not credentials")
        if mode == "slow":
            # Answers only once the test is over: later than chunkfs waits.
            self.server.released.wait(scaled(30))
            return self.answer(500, "")
        if mode == "500":
            return self.answer(500, "")
        akid, k = self.server.issuer.issue(link, self.server.ttl, self.server.s3_ttl)
        if xml:
            return self.answer(200, (
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/"
                "2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials>"
                "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
                "<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"
                "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>")
                % (akid, k["secret"], k["token"], iso(k["expires"])), "text/xml")
        body = {"AccessKeyId": akid, "SecretAccessKey": k["secret"], "Token": k["token"],
                "Expiration": iso(k["expires"])}
        if link == "imds":
            body.update(Code="Success", Type="AWS-HMAC", LastUpdated=iso(time.time() * 1000))
        return self.answer(200, json.dumps(body))

    def do_PUT(self):
        self.server.seen.append(("PUT", self.path))
        if self.path != "/latest/api/token":
            return self.answer(404, "")
        if self.server.mode_of("imds") == "refuse-token":
            return self.answer(403, "")
        if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "").isdigit():
            return self.answer(400, "")
        return self.answer(200, "imds-session-token-s3cr3t", "text/plain")

    def imds_token_ok(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        if self.server.mode_of("imds") == "refuse-token":
            return tok is None  # IMDSv1
        return tok == "imds-session-token-s3cr3t"

    def do_GET(self):
        self.server.seen.append(("GET", self.path))
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path.startswith(base):
            if not self.imds_token_ok():
                return self.answer(401, "")
            if self.path == base:
                return self.answer(200, ROLE, "text/plain")
            if self.path == base + ROLE:
                return self.keys_answer("imds")
        elif self.path == "/container":
            if self.headers.get("Authorization") != AUTH_TOKEN:
                return self.answer(403, "")
            return self.keys_answer("container")
        return self.answer(404, "")

    def sigv4_ok(self, body):
        """The Authorization header is SigV4 for service sts by the source profile's keys,
        over this very request (AWS General Reference, "Signature Version 4")."""
        m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/sts/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$",
                     self.headers.get("Authorization", ""))
        source = self.server.source_keys
        if not m or not source or m.group(1) != source[0]:
            return False
        akid, date, region, signed, signature = m.groups()
        names = signed.split(";")
        if "x-amz-date" not in names or "host" not in names:
            return False
        canonical = "\n".join([self.command, self.path, "",
                               "".join("%s:%s\n" % (n, " ".join(self.headers.get(n, "").split()))
                                       for n in names),
                               signed, hashlib.sha256(body).hexdigest()])
        scope = "%s/%s/sts/aws4_request" % (date, region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.headers["x-amz-date"], scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + source[1]).encode()
        for part in (date, region, "sts", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        want = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, signature)

    def sts_refuse(self, code):
        return self.answer(403 if code == "SignatureDoesNotMatch" else 400,
                           "<ErrorResponse><Error><Code>%s</Code></Error></ErrorResponse>"
                           % code, "text/xml")

    def do_POST(self):
        self.server.seen.append(("POST", self.path))
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        form = urllib.parse.parse_qs(body.decode())
        if self.path != "/sts" or form.get("RoleArn") != [ROLE_ARN]:
            return self.sts_refuse("InvalidParameterValue")
        if form.get("Action") == ["AssumeRole"]:
            if not self.sigv4_ok(body):
                return self.sts_refuse("SignatureDoesNotMatch")
            return self.keys_answer("assume", xml=True)
        if (form.get("Action") != ["AssumeRoleWithWebIdentity"]
                or form.get("WebIdentityToken") != [WEB_TOKEN]):
            return self.sts_refuse("InvalidIdentityToken")
        return self.keys_answer("sts", xml=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("creds-gen"))
    litgen.write_dataset(out, chunks=4, chunk_bytes=4 * MiB, seed=16)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory, dataset):
    """s3rver taking the issued keys, and the stand-in endpoints; both stopped at the end."""
    work = tmp_path_factory.mktemp("creds-s3")
    issuer = Issuer(str(work / "keys.json"))
    server = S3rver(work, [BUCKET], keys_file=issuer.path)
    endpoints = Endpoints(issuer)
    thread = threading.Thread(target=endpoints.serve_forever, daemon=True)
    thread.start()
    try:
        server.start()
        upload_tree(server.client(), BUCKET, PREFIX, dataset)
        yield server, endpoints, issuer
    finally:
        endpoints.shutdown()
        endpoints.server_close()
        thread.join(timeout=10)
        server.stop()


@pytest.fixture
def ends(world):
    """The endpoints, reset to answer well with hour-long keys; slow answers end with
    the test."""
    _, endpoints, _ = world
    endpoints.mode = {}
    endpoints.ttl = 3600
    endpoints.s3_ttl = None
    endpoints.seen = []
    endpoints.source_keys = None
    endpoints.released.clear()
    yield endpoints
    endpoints.released.set()


@pytest.fixture
def tls_ends(world, tmp_path):
    """The stand-in endpoints again, over HTTPS only, with a self-signed CA certificate for
    IP 127.0.0.1 that no system trusts: (endpoints, certificate path); stopped at the end."""
    _, _, issuer = world
    cert, key = str(tmp_path / "ca.pem"), str(tmp_path / "ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
                   check=True, timeout=scaled(60), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    endpoints = Endpoints(issuer)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    endpoints.socket = ctx.wrap_socket(endpoints.socket, server_side=True)
    endpoints.url = "https://127.0.0.1:%d" % endpoints.server_address[1]
    thread = threading.Thread(target=endpoints.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoints, cert
    finally:
        endpoints.shutdown()
        endpoints.server_close()
        thread.join(timeout=10)


def env_for(tmp_path, world, links, **extra):
    """chunkfs's environment: no AWS_* of ours, a HOME of its own, and the named links."""
    _, endpoints, issuer = world
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), AWS_EC2_METADATA_DISABLED="true")
    if "env" in links:
        akid, k = issuer.issue("env", 3600)
        env.update(AWS_ACCESS_KEY_ID=akid, AWS_SECRET_ACCESS_KEY=k["secret"],
                   AWS_SESSION_TOKEN=k["token"])
    if "container" in links:
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=endpoints.url + "/container",
                   AWS_CONTAINER_AUTHORIZATION_TOKEN=AUTH_TOKEN)
    if "imds" in links:
        env.pop("AWS_EC2_METADATA_DISABLED")
        env.update(AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoints.url)
    if "sts" in links:
        token = tmp_path / "web-token"
        token.write_text(WEB_TOKEN)
        env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_ROLE_ARN=ROLE_ARN,
                   AWS_ENDPOINT_URL_STS=endpoints.url + "/sts")
    if "assume" in links:
        akid, k = issuer.issue("source", 3600)
        endpoints.source_keys = (akid, k["secret"])
        (home / ".aws" / "credentials").write_text(
            "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (akid, k["secret"]))
        (home / ".aws" / "config").write_text(
            "[profile team]\nrole_arn = %s\nsource_profile = base\n" % ROLE_ARN)
        env.update(AWS_PROFILE="team", AWS_ENDPOINT_URL_STS=endpoints.url + "/sts")
    if "process" in links:
        akid, k = issuer.issue("process", 3600)
        script = tmp_path / "cred-process"
        script.write_text("#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n" % json.dumps(
            {"Version": 1, "AccessKeyId": akid, "SecretAccessKey": k["secret"],
             "SessionToken": k["token"], "Expiration": iso(k["expires"])}))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        (home / ".aws" / "config").write_text(
            "[default]\ncredential_process = \"%s\" --unused arg\n" % script)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def args_for(world, *more):
    server = world[0]
    return ["--endpoint=" + server.url, "--region=" + REGION, "--s3-addressing=path"] + list(more)


def check_bytes(m, dataset):
    for name in sorted(n for n in os.listdir(dataset) if n.endswith((".bin", ".json"))):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(dataset, name)), name


def keys_used(server, mark):
    reqs = server.requests(mark)
    assert reqs, "no request reached s3rver"
    bad = [r for r in reqs if r["status"] not in (200, 206)]
    assert not bad, bad[:5]
    return {r["key"] for r in reqs}


@pytest.mark.parametrize("link", ["env", "sts", "assume", "process", "container", "imds"])
def test_each_link_alone(world, ends, mount, tmp_path, dataset, link):
    """Each link alone gives keys that S3 takes, and the bytes read are the source's."""
    server, _, issuer = world
    env = env_for(tmp_path, world, [link])
    mark = server.mark()
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world), env=env)
    check_bytes(m, dataset)
    used = keys_used(server, mark)
    assert used and used <= issuer.of_link(link), (used, link)


@pytest.mark.parametrize("links,first", [
    (["env", "sts", "process", "container", "imds"], "env"),
    (["sts", "process", "container", "imds"], "sts"),
    (["process", "container", "imds"], "process"),
    (["assume", "container", "imds"], "assume"),
    (["container", "imds"], "container"),
])
def test_chain_order(world, ends, mount, tmp_path, dataset, links, first):
    """With several links present, the first in the AWS CLI's order is the one used."""
    server, _, issuer = world
    env = env_for(tmp_path, world, links)
    mark = server.mark()
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world), env=env)
    check_bytes(m, dataset)
    assert keys_used(server, mark) <= issuer.of_link(first)


@pytest.mark.budget(120)
@pytest.mark.parametrize("link", ["container", "imds"])
def test_keys_expiring_every_15_s(world, ends, mount, tmp_path, dataset, link):
    """Keys that live 15 s are renewed before they expire: a 60 s read loop over objects
    larger than the cache never fails, and s3rver saw no request with an expired key."""
    server, endpoints, issuer = world
    endpoints.ttl = 15
    env = env_for(tmp_path, world, [link])
    mark = server.mark()
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world, "--mem-cache=8MiB",
                                                         "--disk-cache=0"), env=env)
    names = sorted(n for n in os.listdir(dataset) if n.endswith(".bin"))
    rng = random.Random(16)
    end = time.monotonic() + 60
    reads = 0
    while time.monotonic() < end and reads < 100000:
        name = rng.choice(names)
        size = os.path.getsize(os.path.join(dataset, name))
        off = rng.randrange(0, size - 4096) // 4096 * 4096
        fd = open_direct(m.file(name))
        try:
            got = os.pread(fd, 4096, off)
        finally:
            os.close(fd)
        with open(os.path.join(dataset, name), "rb") as f:
            f.seek(off)
            assert got == f.read(4096), (name, off)
        reads += 1
    reqs = server.requests(mark)
    expired = [r for r in reqs if r.get("expired") or r["status"] not in (200, 206)]
    assert not expired, expired[:5]
    used = {r["key"] for r in reqs}
    assert used <= issuer.of_link(link)
    assert len(used) >= 4, "keys used in 60 s of 15 s keys: %d" % len(used)


def test_expired_token_answer_renews_and_retries(world, ends, mount, tmp_path, dataset):
    """Keys that S3 stops taking before their Expiration (400 ExpiredToken): the read that
    got the refusal renews the keys once and is retried with the new ones, and succeeds."""
    server, endpoints, issuer = world
    endpoints.s3_ttl = 3
    env = env_for(tmp_path, world, ["container"])
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world, "--mem-cache=8MiB",
                                                         "--disk-cache=0"), env=env)
    first = [a for a, k in issuer.keys.items() if k["link"] == "container"][-1]
    revoked_at = issuer.keys[first]["s3_expires"] / 1000
    wait_for(lambda: time.time() > revoked_at + 0.5, scaled(10), "the keys' revocation")
    endpoints.s3_ttl = None
    mark = server.mark()
    check_bytes(m, dataset)
    reqs = server.requests(mark)
    refused = [r for r in reqs if r["error"] == "ExpiredToken"]
    assert refused and all(r["key"] == first for r in refused), refused[:3]
    assert {r["key"] for r in reqs if r["status"] in (200, 206)} - {first}
    assert m.read_log().count("refused by the server as expired: renewed") == 1, m.read_log()


def pread_ok(fd, size, off):
    """os.pread, or None when it fails with EACCES (keys refused, not renewed yet)."""
    try:
        return os.pread(fd, size, off)
    except PermissionError:
        return None


def mount_with_refused_keys(world, mount, tmp_path):
    """A mount on container keys that S3 refuses as expired by now, while the container
    endpoint answers 500: (the endpoints, the mount)."""
    server, endpoints, issuer = world
    endpoints.s3_ttl = 2
    env = env_for(tmp_path, world, ["container"])
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world, "--mem-cache=8MiB",
                                                         "--disk-cache=0"), env=env)
    first = [a for a, k in issuer.keys.items() if k["link"] == "container"][-1]
    revoked_at = issuer.keys[first]["s3_expires"] / 1000
    wait_for(lambda: time.time() > revoked_at + 0.5, scaled(10), "the keys' revocation")
    endpoints.mode["container"] = "500"
    return endpoints, m


@pytest.mark.log_allow(r"renewal failed, retrying with back-off", r"HTTP 400")
def test_no_valid_keys_left_is_eacces(world, ends, mount, tmp_path, dataset):
    """Keys S3 refuses as expired while the endpoint cannot renew them: reads fail with
    EACCES (not EIO), and read again once the endpoint is back."""
    endpoints, m = mount_with_refused_keys(world, mount, tmp_path)
    name = sorted(n for n in os.listdir(dataset) if n.endswith(".bin"))[-1]
    fd = open_direct(m.file(name))
    try:
        with pytest.raises(OSError) as e:
            os.pread(fd, 4096, 4096 * 100)
        assert e.value.errno == errno.EACCES
        endpoints.mode["container"] = "ok"
        endpoints.s3_ttl = None
        with open(os.path.join(dataset, name), "rb") as f:
            f.seek(4096 * 101)
            want = f.read(4096)
        # The failed renewal's back-off (1 s) may still hold the next refusal's renewal.
        got = wait_for(lambda: pread_ok(fd, 4096, 4096 * 101), scaled(10), "a renewed read")
        assert got == want
    finally:
        os.close(fd)


@pytest.mark.log_allow(r"renewal failed, retrying with back-off", r"HTTP 400")
def test_refused_keys_with_endpoint_down_back_off(world, ends, mount, tmp_path, dataset):
    """Keys S3 refuses while the container endpoint answers 500: 20 reads all fail with
    EACCES, yet the endpoint is asked only as often as the failed renewal's back-off
    (1 s doubling) allows, not once per read, and the failure is logged once."""
    endpoints, m = mount_with_refused_keys(world, mount, tmp_path)
    asked_before = sum(1 for _, path in endpoints.seen if path == "/container")
    name = sorted(n for n in os.listdir(dataset) if n.endswith(".bin"))[-1]
    fd = open_direct(m.file(name))
    start = time.monotonic()
    try:
        for i in range(20):
            with pytest.raises(OSError) as e:
                os.pread(fd, 4096, 4096 * (100 + 16 * i))
            assert e.value.errno == errno.EACCES
    finally:
        os.close(fd)
    elapsed = time.monotonic() - start
    asked = sum(1 for _, path in endpoints.seen if path == "/container") - asked_before
    # One try, then one more each time a back-off of 1, 2, 4 ... s has passed.
    assert 1 <= asked <= 2 + int(math.log2(elapsed + 1)), (asked, elapsed)
    assert m.read_log().count("renewal failed") == 1, m.read_log()


@pytest.mark.log_allow(r"renewal failed, retrying with back-off")
def test_failed_renewal_is_retried_and_logged_once(world, ends, mount, tmp_path, dataset):
    """A renewal that fails is retried with a growing wait and logged once; once the
    endpoint answers again the keys are renewed and reads go on with them."""
    server, endpoints, issuer = world
    endpoints.ttl = 4
    env = env_for(tmp_path, world, ["container"])
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world), env=env)
    endpoints.mode["container"] = "500"
    start = len(endpoints.seen)
    wait_for(lambda: len(endpoints.seen) >= start + 3, scaled(30), "three failed renewals")
    failed_at = len(endpoints.seen)
    endpoints.mode["container"] = "ok"
    wait_for(lambda: "renewed again" in m.read_log(), scaled(60), "a renewal after the failures")
    assert m.read_log().count("renewal failed") == 1, m.read_log()
    assert len(endpoints.seen) <= failed_at + 2  # back-off, no spin
    mark = server.mark()
    check_bytes(m, dataset)
    assert keys_used(server, mark) <= issuer.of_link("container")


def mount_fails(mount, world, env):
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world), env=env, expect_ok=False)
    assert not m.ok
    return m.read_log()


@pytest.mark.log_allow(r"no AWS credentials")
def test_container_full_uri_lookalike_host_refused(world, ends, mount, tmp_path):
    """A plain-http full URI whose host only starts like a loopback address
    (127.attacker.example) is not given the token: the link is skipped, saying why."""
    env = env_for(tmp_path, world, ["container"])
    port = urllib.parse.urlsplit(ends.url).port
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.attacker.example:%d/container" % port
    log = mount_fails(mount, world, env)
    assert ("container: AWS_CONTAINER_CREDENTIALS_FULL_URI is neither https nor a loopback "
            "or agent address; IMDS: AWS_EC2_METADATA_DISABLED=true") in log, log
    assert ends.seen == []


@pytest.mark.log_allow(r"no AWS credentials")
def test_web_identity_token_file_not_a_file(world, ends, mount, tmp_path):
    """A token file that is a device (/dev/zero never ends) is refused before any read:
    the mount fails at once with one line naming the file and why."""
    env = env_for(tmp_path, world, ["sts"], AWS_WEB_IDENTITY_TOKEN_FILE="/dev/zero")
    log = mount_fails(mount, world, env)
    assert "web identity: /dev/zero: not a regular file" in log, log
    assert ends.seen == []


@pytest.mark.log_allow(r"no AWS credentials")
def test_web_identity_token_file_read_is_bounded(world, ends, mount, tmp_path):
    """A token file of 1 GiB (sparse) is read no further than one byte past the 16 KiB
    a token may hold: the mount fails at once, naming the file and why."""
    token = tmp_path / "huge-token"
    with open(token, "wb") as f:
        f.truncate(1 << 30)
    env = env_for(tmp_path, world, ["sts"], AWS_WEB_IDENTITY_TOKEN_FILE=str(token))
    log = mount_fails(mount, world, env)
    assert "web identity: %s: not a token: over 16 KiB" % token in log, log
    assert ends.seen == []


def test_relative_token_file_renews_after_daemonizing(world, ends, mount, tmp_path, dataset,
                                                     monkeypatch):
    """AWS_WEB_IDENTITY_TOKEN_FILE relative to where chunkfs started: the daemon (in / once
    detached) still reads it at each renewal of keys that live 4 s."""
    server, endpoints, issuer = world
    endpoints.ttl = 4
    env = env_for(tmp_path, world, ["sts"], AWS_WEB_IDENTITY_TOKEN_FILE="web-token")
    monkeypatch.chdir(tmp_path)  # chunkfs starts here
    before = len(issuer.of_link("sts"))
    m = mount("s3://%s/%s" % (BUCKET, PREFIX),
              *args_for(world, "--log-file=%s" % (tmp_path / "daemon.log")), env=env,
              foreground=False)
    wait_for(lambda: len(issuer.of_link("sts")) >= before + 3, scaled(20), "two renewals")
    mark = server.mark()
    check_bytes(m, dataset)
    assert keys_used(server, mark) <= issuer.of_link("sts")
    assert "renewal failed" not in m.logged_text()


def test_relative_credential_process_renews_after_daemonizing(world, ends, mount, tmp_path,
                                                              dataset, monkeypatch):
    """A credential_process given relative to where chunkfs started runs there at each
    renewal, also once the daemon is in /."""
    server, _, issuer = world
    env = env_for(tmp_path, world, [])
    akid, k = issuer.issue("process", 4, 3600)
    runs = tmp_path / "runs"
    script = tmp_path / "cred-process"
    script.write_text("#!/bin/sh\necho run >> '%s'\ncat <<'EOF'\n%s\nEOF\n" % (runs, json.dumps(
        {"Version": 1, "AccessKeyId": akid, "SecretAccessKey": k["secret"],
         "SessionToken": k["token"], "Expiration": iso(k["expires"])})))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "home" / ".aws" / "config").write_text(
        "[default]\ncredential_process = ./cred-process\n")
    monkeypatch.chdir(tmp_path)  # chunkfs starts here
    m = mount("s3://%s/%s" % (BUCKET, PREFIX),
              *args_for(world, "--log-file=%s" % (tmp_path / "daemon.log")), env=env,
              foreground=False)
    wait_for(lambda: runs.exists() and len(runs.read_text().split()) >= 3, scaled(20),
             "two renewals by the process")
    check_bytes(m, dataset)
    assert "renewal failed" not in m.logged_text()


@pytest.mark.log_allow(r"no AWS credentials")
@pytest.mark.parametrize("mode", ["down", "garbage", "500", "slow"])
def test_container_endpoint_failing(world, ends, mount, tmp_path, mode):
    """A container endpoint that is down, answers garbage or an error, or too slowly:
    one line naming every link tried, nothing mounted."""
    env = env_for(tmp_path, world, ["container"])
    if mode == "down":
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.0.0.1:1/container"
    ends.mode["container"] = mode
    log = mount_fails(mount, world, env)
    assert "no AWS credentials" in log
    for link in ("environment:", "web identity:", "profile 'default':", "container",
                 "IMDS: AWS_EC2_METADATA_DISABLED=true"):
        assert link in log, (link, log)
    why = {"down": "127.0.0.1:1", "garbage": "not JSON", "500": "HTTP 500",
           "slow": "container endpoint"}[mode]
    assert why in log, log


@pytest.mark.log_allow(r"no AWS credentials")
def test_assume_role_with_wrong_source_keys(world, ends, mount, tmp_path):
    """STS refuses an AssumeRole not signed by the source profile's keys: the mount fails
    with STS's error code, and neither secret is in the message."""
    env = env_for(tmp_path, world, ["assume"])
    creds = tmp_path / "home" / ".aws" / "credentials"
    text = creds.read_text()
    right = ends.source_keys[1]
    creds.write_text(text.replace(right, "wrong" + right[5:]))
    log = mount_fails(mount, world, env)
    assert "assume role: STS (HTTP 403): STS answered the error SignatureDoesNotMatch" in log
    assert right[5:] not in log


def test_container_endpoint_behind_private_ca(world, ends, tls_ends, mount, tmp_path, dataset):
    """An https container endpoint whose certificate only AWS_CA_BUNDLE's CA signed: the
    credential request trusts that CA as S3's requests do, and the keys read the bytes."""
    server, _, issuer = world
    endpoints, ca = tls_ends
    env = env_for(tmp_path, world, ["container"], AWS_CA_BUNDLE=ca,
                  AWS_CONTAINER_CREDENTIALS_FULL_URI=endpoints.url + "/container")
    mark = server.mark()
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world), env=env)
    check_bytes(m, dataset)
    assert keys_used(server, mark) <= issuer.of_link("container")
    assert ("GET", "/container") in endpoints.seen


@pytest.mark.parametrize("failing,mode,following", [
    ("sts", "garbage", "container"), ("sts", "500", "container"),
    ("container", "garbage", "imds"), ("container", "500", "imds"),
])
def test_failing_link_falls_to_the_next(world, ends, mount, tmp_path, dataset, failing, mode,
                                        following):
    """A link whose endpoint answers garbage or an error: the chain goes on to the next."""
    server, _, issuer = world
    ends.mode[failing] = mode
    env = env_for(tmp_path, world, [failing, following])
    mark = server.mark()
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world), env=env)
    check_bytes(m, dataset)
    assert keys_used(server, mark) <= issuer.of_link(following)


@pytest.mark.log_allow(r"no AWS credentials")
def test_imds_down(world, ends, mount, tmp_path):
    """No IMDS at its endpoint: the mount fails, naming IMDS and what went wrong."""
    env = env_for(tmp_path, world, ["imds"], AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:1")
    log = mount_fails(mount, world, env)
    assert "IMDS: http://127.0.0.1:1: PUT http://127.0.0.1:1/latest/api/token" in log, log


def test_imds_refused_token_falls_back_to_v1(world, ends, mount, tmp_path, dataset):
    """A token PUT answered 403 (IMDSv2 off): IMDSv1, without a token, as the SDKs do."""
    server, _, issuer = world
    ends.mode["imds"] = "refuse-token"
    env = env_for(tmp_path, world, ["imds"])
    mark = server.mark()
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world), env=env)
    check_bytes(m, dataset)
    assert keys_used(server, mark) <= issuer.of_link("imds")


@pytest.mark.log_allow(r"no AWS credentials")
def test_imds_v1_disabled_and_refused_token(world, ends, mount, tmp_path):
    """With AWS_EC2_METADATA_V1_DISABLED=true a refused token PUT ends the IMDS link."""
    ends.mode["imds"] = "refuse-token"
    env = env_for(tmp_path, world, ["imds"], AWS_EC2_METADATA_V1_DISABLED="true")
    log = mount_fails(mount, world, env)
    assert "IMDS: %s: token request: HTTP 403" % ends.url in log, log


@pytest.mark.log_allow(r"no AWS credentials")
def test_imds_disabled(world, ends, mount, tmp_path):
    """AWS_EC2_METADATA_DISABLED=true: IMDS is not asked, even when it is there."""
    env = env_for(tmp_path, world, ["imds"], AWS_EC2_METADATA_DISABLED="true")
    log = mount_fails(mount, world, env)
    assert "IMDS: AWS_EC2_METADATA_DISABLED=true" in log, log
    assert ends.seen == []


@pytest.mark.parametrize("link", ["container", "sts", "imds", "process"])
def test_no_secret_in_debug_output(world, ends, mount, tmp_path, dataset, link):
    """With -d, neither keys, session tokens, the web identity token nor the container's
    Authorization value reach the daemon's output, renewals included."""
    server, endpoints, issuer = world
    endpoints.ttl = 4
    env = env_for(tmp_path, world, [link])
    before = len(issuer.keys)
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), *args_for(world, "-d"), env=env)
    if link != "process":  # its keys never expire
        wait_for(lambda: len(issuer.keys) >= before + 2, scaled(20), "a renewal")
    check_bytes(m, dataset)
    m.unmount()
    log = m.read_log()
    assert "S3 credentials from" in log
    for secret in issuer.secrets_text() + [AUTH_TOKEN, WEB_TOKEN, "imds-session-token-s3cr3t"]:
        assert secret not in log
