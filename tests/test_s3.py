"""S3 mounts against a local s3rver (tests/s3fixture.py): credentials from the
environment, the shared credentials and config files, anonymous access; endpoint,
region and addressing; bad input; secrets kept out of the daemon's log.

The server verifies SigV4 signatures like S3 (s3rver alone does not), keeps anonymous
readers out of private buckets and logs every request, so each mount is also checked
for how it talked to the server: signed with the expected key (or not at all), the
session token sent, index.json fetched once, chunks read with Range GETs, no HEAD.

Every chunkfs process gets an environment without the caller's AWS_* variables and
with HOME set to a fresh directory of the test, so a developer's ~/.aws is never read.

Any prefix mounts, with its whole tree listed on demand (ListObjectsV2); a directory
holding index.json shows its chunks as the index gives them.
"""
import concurrent.futures
import hashlib
import http.client
import errno
import os
import random
import re
import socket
import subprocess
import urllib.parse

import pytest

from cfsutil import (MiB, check_hidden, chunkfs_env, data_dir, dataset_listing, dataset_names,
                     free_port, index_chunks, is_mounted, run_until_exit, scaled, sha256_file,
                     source_sha256, tail, wait_for)
from s3fixture import (ACCESS_KEY, BUCKET, EMPTY_PREFIX, EU_BUCKET, EU_REGION, GEN_PREFIX,
                       MIXED_PREFIX, ODD_ASCII_PREFIX, ODD_CHUNK_NAMES, ODD_PREFIX,
                       PUBLIC_BUCKET, REGION, SECRET_KEY, TEST_KEY, TEST_SECRET, S3Client,
                       BAD_LONGEST_NAME, BAD_PHANTOM_KEYS, BAD_PREFIX, BAD_VALID, MANY_KEYS,
                       MANY_PREFIX, TREE_ODD_NAMES, TREE_PREFIX, list_objects,
                       sign_v4, tree_files, uri_encode)
from s3fixture import gen_dataset, many_dir, odd_dataset, s3, tree_dir  # noqa: F401  (fixtures)

TOKEN = "tok-s3cr3t"
WRONG_KEY = "AKIAWRONGWRONGWRONG0"          # unknown to the server: 403 InvalidAccessKeyId
WRONG_SECRET = "wrongWrongWrong/wrong+wrongWrongWrong0"
MIXED = data_dir("litdata-mixed")


def sha256_text(text):
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------
# helpers


def s3_url(bucket, prefix):
    return "s3://%s/%s" % (bucket, prefix)


def s3_args(s3, region=REGION, addressing="path"):
    args = ["--endpoint=" + s3.url]
    if region:
        args.append("--region=" + region)
    if addressing:
        args.append("--s3-addressing=" + addressing)
    return args


def ini_text(sections):
    """An AWS-style ini file: {section: {key: value}}, with a comment and a blank line
    or two, as people write them."""
    lines = ["# written by test_s3.py", ""]
    for name, values in sections.items():
        lines.append("[%s]" % name)
        lines += ["%s = %s" % kv for kv in values.items()]
        lines.append("")
    return "\n".join(lines)


def make_home(tmp_path, credentials=None, config=None, name="home"):
    """A fresh HOME for chunkfs, with ~/.aws/credentials and ~/.aws/config when given
    (a dict for ini_text, or the exact text of the file)."""
    home = tmp_path / name
    (home / ".aws").mkdir(parents=True)
    for file_name, content in (("credentials", credentials), ("config", config)):
        if content is not None:
            text = content if isinstance(content, str) else ini_text(content)
            (home / ".aws" / file_name).write_bytes(text.encode())
    return home


def clean_env(home, **extra):
    """chunkfs's environment (chunkfs_env()) without AWS_* variables,
    HOME=home, plus extra."""
    env = chunkfs_env({k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                      HOME=home)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def keys(key, secret, **more):
    return dict(aws_access_key_id=key, aws_secret_access_key=secret, **more)


RIGHT = keys(TEST_KEY, TEST_SECRET)
WRONG = keys(WRONG_KEY, WRONG_SECRET)
ENV_KEYS = {"AWS_ACCESS_KEY_ID": TEST_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET}


def check_files(m, src):
    """The mount shows exactly the dataset's files and each one's sha256 is the source's."""
    got = sorted(n for n in os.listdir(m.path) if n != ".chunkfs")
    assert got == sorted(dataset_listing(src))
    for name in dataset_names(src):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name)), name


def check_random_preads(m, src, seed, count=300):
    """Seeded preads anywhere in the chunks (some across EOF) equal the source."""
    sizes = dict(index_chunks(src))
    names = sorted(sizes)
    rng = random.Random(seed)
    fds = {}
    try:
        for n in names:
            fds[n] = (os.open(os.path.join(src, n), os.O_RDONLY), os.open(m.file(n), os.O_RDONLY))
        for i in range(count):
            name = rng.choice(names)
            size = sizes[name]
            off = rng.randrange(0, size + 4096)
            length = rng.choice([1, 7, 4096, 65536 + 3, rng.randint(1, 3 * MiB)])
            want = os.pread(fds[name][0], length, off)
            got = os.pread(fds[name][1], length, off)
            assert got == want, "pread %d of %s at %d length %d: %d bytes, want %d%s" % (
                i, name, off, length, len(got), len(want),
                "" if len(got) != len(want) else " (bytes differ)")
    finally:
        for a, b in fds.values():
            os.close(a)
            os.close(b)


def is_listing(r):
    """A ListObjectsV2 request (GET /bucket/?list-type=2&... or GET /?list-type=2 virtual)."""
    return "list-type=2" in r["url"].partition("?")[2].split("&")


def check_requests(reqs, key=None, token=None, anonymous=False, index_gets=1):
    """How one mount talked to s3rver: signed with key (or anonymous), the session
    token on every request (or on none), GETs only (no HEAD: sizes come from the index
    and the listings), each index.json once (index_gets in all), objects by Range.
    Returns (listing requests, object requests)."""
    assert reqs, "no request reached s3rver"
    summary = "\n".join("%s %s %s %s %s" % (r["method"], r["url"], r["range"], r["status"],
                                            r["error"]) for r in reqs[:40])
    heads = [r for r in reqs if r["method"] == "HEAD"]
    assert not heads, "HEAD requests (S3 mounts take sizes from the index):\n" + summary
    assert all(r["method"] == "GET" for r in reqs), summary
    bad = [r for r in reqs if r["status"] not in (200, 206)]
    assert not bad, "requests that failed:\n" + "\n".join(map(str, bad[:10]))
    for r in reqs:
        if anonymous:
            assert r["auth"] == "anonymous", r
        else:
            assert r["auth"] == "sigv4" and r["key"] == key, r
        assert r["token_sha256"] == (sha256_text(token) if token else ""), \
            "session token %s on %s" % ("missing" if token else "sent", r["url"])
    listings = [r for r in reqs if is_listing(r)]
    objects = [r for r in reqs if not is_listing(r)]
    indexes = [r for r in objects if r["url"].split("?")[0].endswith("/index.json")]
    assert len(indexes) == index_gets, "index.json fetched %d times, expected %d:\n%s" % (
        len(indexes), index_gets, summary)
    urls = [r["url"] for r in indexes]
    assert len(set(urls)) == len(urls), "an index.json fetched twice:\n" + summary
    assert all(r["range"].startswith("bytes=") for r in objects if r not in indexes), \
        "object GETs without a Range header:\n" + summary
    lists = [r["url"] for r in listings]
    assert len(set(lists)) == len(lists), "the same listing page fetched twice:\n" + summary
    return listings, objects


def mount_and_check(s3, mount, bucket, prefix, src, args, env, key=None, token=None,
                    anonymous=False, preads_seed=None, **kw):
    mark = s3.mark()
    m = mount(s3_url(bucket, prefix), *args, env=env, **kw)
    check_files(m, src)
    if preads_seed is not None:
        check_random_preads(m, src, preads_seed)
    reqs = s3.requests(mark)
    check_requests(reqs, key=key, token=token, anonymous=anonymous)
    return m, reqs


# --------------------------------------------------------------------------
# the fixture itself (no chunkfs)


def test_s3rver_fixture(s3, gen_dataset, odd_dataset):
    """The local S3 answers like S3 where the mounts depend on it: signatures are
    verified, unknown keys and anonymous readers of private buckets get 403, regions are
    enforced, ranges answered 206; the uploads are in place."""
    c = s3.client()
    name = index_chunks(MIXED)[0][0]
    key = MIXED_PREFIX + "/" + name
    with open(os.path.join(MIXED, name), "rb") as f:
        want = f.read()
    assert c.get_object(BUCKET, key) == want
    assert s3.client(access_key=TEST_KEY, secret=TEST_SECRET).get_object(BUCKET, key) == want

    def error(status_headers_body):
        status, _, body = status_headers_body
        code = re.search(rb"<Code>([^<]*)</Code>", body)
        return status, code.group(1).decode() if code else ""

    assert error(s3.client(secret="nope").request("GET", BUCKET, key)) == \
        (403, "SignatureDoesNotMatch")
    assert error(s3.client(access_key=WRONG_KEY).request("GET", BUCKET, key)) == \
        (403, "InvalidAccessKeyId")
    assert error(c.request("GET", BUCKET, key, signed=False)) == (403, "AccessDenied")
    assert error(c.request("GET", "nosuchbucket", key)) == (404, "NoSuchBucket")
    assert error(c.request("GET", BUCKET, MIXED_PREFIX + "/nope.bin")) == (404, "NoSuchKey")
    assert error(c.request("GET", EU_BUCKET, key)) == (400, "AuthorizationHeaderMalformed")
    assert s3.client(region=EU_REGION).get_object(EU_BUCKET, key) == want
    status, _, body = c.request("GET", PUBLIC_BUCKET, key, signed=False)
    assert (status, body) == (200, want)

    status, headers, body = c.request("GET", BUCKET, key, headers={"Range": "bytes=100-199"})
    assert (status, body) == (206, want[100:200])
    assert headers["content-range"] == "bytes 100-199/%d" % len(want)

    # A session token must be signed: added after signing, the request is refused.
    path = "/%s/%s" % (BUCKET, uri_encode(key, True))
    h = sign_v4("GET", c.host, path, (), {}, hashlib.sha256(b"").hexdigest(), ACCESS_KEY,
                SECRET_KEY, REGION)
    h["x-amz-security-token"] = TOKEN
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=30)
    conn.request("GET", path, headers=h)
    resp = conn.getresponse()
    assert resp.status == 403 and b"not signed" in resp.read()
    conn.close()

    # Virtual-hosted style: the bucket in the Host (s3.localhost endpoint).
    vc = S3Client(s3.port, host="%s.s3.localhost:%d" % (BUCKET, s3.port))
    status, _, body = vc.request("GET", "", key)
    assert (status, body) == (200, want)

    # UTF-8, spaces, % + = ( ) in keys round-trip.
    for n in ODD_CHUNK_NAMES:
        with open(os.path.join(odd_dataset, n), "rb") as f:
            assert c.get_object(BUCKET, ODD_PREFIX + "/" + n) == f.read()

    # An independent signer (curl's --aws-sigv4, as libcurl signs for chunkfs) agrees
    # with the server's verification once the header S3 requires is added.
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4",
            "aws:amz:%s:s3" % REGION, "--user", "%s:%s" % (TEST_KEY, TEST_SECRET),
            "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-H", "Range: bytes=0-99",
            "%s/%s/%s" % (s3.url, BUCKET, uri_encode(key, True))]
    assert subprocess.run(curl, capture_output=True, text=True, timeout=30).stdout == "206"
    curl[curl.index("--user") + 1] = "%s:%s" % (TEST_KEY, WRONG_SECRET)
    assert subprocess.run(curl, capture_output=True, text=True, timeout=30).stdout == "403"

    # Listings: continuation pages, XML-escaped and UTF-8 names, common prefixes.
    keys, prefixes, pages = list_objects(c, BUCKET, MANY_PREFIX + "/")
    assert (keys, prefixes, pages) == (["%s/k%04d.txt" % (MANY_PREFIX, i)
                                        for i in range(MANY_KEYS)], [], 2)
    keys, _, _ = list_objects(c, BUCKET, TREE_PREFIX + "/odd/")
    assert sorted(keys) == sorted(TREE_PREFIX + "/odd/" + n for n in TREE_ODD_NAMES)
    keys, prefixes, _ = list_objects(c, BUCKET, TREE_PREFIX + "/")
    assert keys == [TREE_PREFIX + "/readme.txt"]
    assert sorted(prefixes) == [TREE_PREFIX + "/" + d + "/" for d in ("ds", "odd", "sub")]
    assert list_objects(c, BUCKET, TREE_PREFIX + "/", max_keys=1) == (
        [TREE_PREFIX + "/readme.txt"],
        [TREE_PREFIX + "/" + d + "/" for d in ("ds", "odd", "sub")], 2)
    keys, _, pages = list_objects(c, BUCKET, MANY_PREFIX + "/", max_keys=300)
    assert (keys, pages) == (["%s/k%04d.txt" % (MANY_PREFIX, i) for i in range(MANY_KEYS)], 4)
    _, prefixes, _ = list_objects(c, BUCKET, "")
    assert set(prefixes) >= {"datasets/", "many/", "tree/"}, prefixes
    _, prefixes, _ = list_objects(c, BUCKET, "datasets/")
    assert set(prefixes) >= {"datasets/%s/" % p for p in ("litdata-mixed", "gen", "odd names")}

    reqs = s3.requests()
    assert any(r["auth"] == "anonymous" for r in reqs)
    assert any(r["key"] == TEST_KEY and r["status"] == 206 for r in reqs)


# --------------------------------------------------------------------------
# credentials


# name -> (environment, ~/.aws/credentials, ~/.aws/config, chunkfs options, key, token).
# A wrong choice of source picks WRONG (an unknown key: the mount fails with 403).
CREDENTIAL_CASES = {
    "env-s3rver-key": (dict(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY),
                       None, None, [], ACCESS_KEY, None),
    "env": (ENV_KEYS, None, None, [], TEST_KEY, None),
    "env-session-token": (dict(ENV_KEYS, AWS_SESSION_TOKEN=TOKEN), None, None, [],
                          TEST_KEY, TOKEN),
    "env-over-profile": (ENV_KEYS, {"default": WRONG}, {"default": WRONG}, [], TEST_KEY, None),
    "credentials-default": ({}, {"default": RIGHT}, None, [], TEST_KEY, None),
    "credentials-token": ({}, {"default": dict(RIGHT, aws_session_token=TOKEN)}, None, [],
                          TEST_KEY, TOKEN),
    "credentials-profile-option": ({}, {"default": WRONG, "other": RIGHT}, None,
                                   ["--profile=other"], TEST_KEY, None),
    "credentials-AWS_PROFILE": (dict(AWS_PROFILE="other"), {"default": WRONG, "other": RIGHT},
                                None, [], TEST_KEY, None),
    "profile-option-over-AWS_PROFILE": (dict(AWS_PROFILE="third"),
                                        {"default": WRONG, "other": RIGHT, "third": WRONG},
                                        None, ["--profile=other"], TEST_KEY, None),
    "config-profile": ({}, None, {"default": WRONG, "profile cfgprof": dict(
        RIGHT, region=REGION, output="json")}, ["--profile=cfgprof"], TEST_KEY, None),
    "config-profile-AWS_PROFILE": (dict(AWS_PROFILE="cfgprof"), None,
                                   {"profile cfgprof": RIGHT}, [], TEST_KEY, None),
    "config-default": ({}, None, {"default": dict(RIGHT, region=REGION)}, [], TEST_KEY, None),
    "credentials-over-config": ({}, {"other": RIGHT}, {"profile other": WRONG},
                                ["--profile=other"], TEST_KEY, None),
    "config-token": ({}, None, {"profile cfgprof": dict(RIGHT, aws_session_token=TOKEN)},
                     ["--profile=cfgprof"], TEST_KEY, TOKEN),
    "env-keys-over-AWS_PROFILE": (dict(ENV_KEYS, AWS_PROFILE="other"),
                                  {"default": WRONG, "other": WRONG}, None, [], TEST_KEY, None),
    # Files as people and tools write them (Python's configparser reads them for the AWS
    # CLI): CRLF line ends, no spaces around "=", trailing blanks, "#" and ";" comments.
    "credentials-crlf": ({}, "[default]\r\naws_access_key_id=%s\r\naws_secret_access_key=%s  \r\n"
                         % (TEST_KEY, TEST_SECRET), None, [], TEST_KEY, None),
    "credentials-semicolon-comment": ({}, "; written by hand\n# credentials\n" + ini_text(
        {"default": RIGHT}), None, [], TEST_KEY, None),
    # The AWS CLI's nested settings (an indented block under "s3 =") next to the keys.
    "config-nested-s3-settings": ({}, None, "[profile cfgprof]\nregion = %s\ns3 =\n"
                                  "    addressing_style = path\n    max_concurrent_requests = 20\n"
                                  "aws_access_key_id = %s\naws_secret_access_key = %s\n"
                                  % (REGION, TEST_KEY, TEST_SECRET), ["--profile=cfgprof"],
                                  TEST_KEY, None),
}


@pytest.mark.budget(90)
@pytest.mark.parametrize("case", list(CREDENTIAL_CASES))
def test_credentials(s3, mount, tmp_path, gen_dataset, case):
    env_vars, credentials, config, args, key, token = CREDENTIAL_CASES[case]
    home = make_home(tmp_path, credentials, config)
    env = clean_env(home, **env_vars)
    mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, s3_args(s3) + args, env,
                    key=key, token=token)
    mount_and_check(s3, mount, BUCKET, GEN_PREFIX, gen_dataset, s3_args(s3) + args, env,
                    key=key, token=token, preads_seed=len(case))


def test_profile_option_over_env_keys(s3, mount, tmp_path):
    """An explicit --profile wins over AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as with
    the AWS CLI's --profile (botocore's create_credential_resolver: "An explicitly
    provided profile will negate an EnvProvider"); AWS_PROFILE does not (the
    env-keys-over-AWS_PROFILE case of test_credentials)."""
    home = make_home(tmp_path, {"default": WRONG, "other": RIGHT})
    env = clean_env(home, AWS_ACCESS_KEY_ID=WRONG_KEY, AWS_SECRET_ACCESS_KEY=WRONG_SECRET)
    mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, s3_args(s3) + ["--profile=other"],
                    env, key=TEST_KEY)


def test_credential_file_locations_from_env(s3, mount, tmp_path):
    """AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE replace ~/.aws/credentials and
    ~/.aws/config (which hold WRONG here)."""
    home = make_home(tmp_path, {"default": WRONG}, {"default": WRONG})
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "creds").write_text(ini_text({"default": RIGHT}))
    env = clean_env(home, AWS_SHARED_CREDENTIALS_FILE=other / "creds")
    mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, s3_args(s3), env, key=TEST_KEY)
    (other / "config").write_text(ini_text({"profile cfgprof": RIGHT}))
    env = clean_env(home, AWS_CONFIG_FILE=other / "config", AWS_PROFILE="cfgprof")
    mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, s3_args(s3), env, key=TEST_KEY)


@pytest.mark.parametrize("with_keys", [False, True], ids=["no-keys", "keys-in-env"])
def test_anonymous(s3, mount, tmp_path, gen_dataset, with_keys):
    """--no-sign-request reads a public bucket without signing, even with credentials
    in the environment."""
    env = clean_env(make_home(tmp_path, {"default": RIGHT} if with_keys else None),
                    **(ENV_KEYS if with_keys else {}))
    args = s3_args(s3) + ["--no-sign-request"]
    mount_and_check(s3, mount, PUBLIC_BUCKET, MIXED_PREFIX, MIXED, args, env, anonymous=True)
    mount_and_check(s3, mount, PUBLIC_BUCKET, GEN_PREFIX, gen_dataset, args, env,
                    anonymous=True, preads_seed=11)


def test_daemon_mode(s3, mount, tmp_path, gen_dataset):
    """Without -f the command returns once the S3 mount is ready; the daemon keeps the
    credentials it read from the environment."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    mount_and_check(s3, mount, BUCKET, GEN_PREFIX, gen_dataset, s3_args(s3), env,
                    key=TEST_KEY, preads_seed=3, foreground=False)


@pytest.mark.budget(120)
def test_parallel_readers_small_cache(s3, mount, tmp_path, gen_dataset):
    """8 threads of random preads through a cache far smaller than the data and 4
    connections: every request is signed and verified, every byte is right."""
    env = clean_env(make_home(tmp_path), AWS_SESSION_TOKEN=TOKEN, **ENV_KEYS)
    mark = s3.mark()
    m = mount(s3_url(BUCKET, GEN_PREFIX), *s3_args(s3), "--mem-cache=4M", "--block-size=256K",
              "--max-connections=4", env=env)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(check_random_preads, m, gen_dataset, 100 + i, 60)
                   for i in range(8)]
        for f in futures:
            f.result(timeout=scaled(90))
    reqs = s3.requests(mark)
    check_requests(reqs, key=TEST_KEY, token=TOKEN)
    assert len(reqs) > 20
    assert m.stats()["mem_evictions"] > 0


# --------------------------------------------------------------------------
# endpoint, region, addressing, names


def test_endpoint_from_env(s3, mount, tmp_path):
    env = clean_env(make_home(tmp_path), AWS_ENDPOINT_URL=s3.url, **ENV_KEYS)
    args = ["--region=" + REGION, "--s3-addressing=path"]
    mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, args, env, key=TEST_KEY)


def test_endpoint_from_service_specific_env(s3, mount, tmp_path):
    """AWS_ENDPOINT_URL_S3 (the AWS tools' per-service variable) wins over
    AWS_ENDPOINT_URL."""
    dead = "http://127.0.0.1:%d" % free_port()
    env = clean_env(make_home(tmp_path), AWS_ENDPOINT_URL_S3=s3.url, AWS_ENDPOINT_URL=dead,
                    **ENV_KEYS)
    args = ["--region=" + REGION, "--s3-addressing=path"]
    mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, args, env, key=TEST_KEY)


def test_endpoint_option_over_env(s3, mount, tmp_path):
    dead = "http://127.0.0.1:%d" % free_port()
    env = clean_env(make_home(tmp_path), AWS_ENDPOINT_URL=dead, **ENV_KEYS)
    mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, s3_args(s3), env, key=TEST_KEY)


def test_endpoint_with_trailing_slash_and_prefix_with_slash(s3, mount, tmp_path):
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    args = ["--endpoint=%s/" % s3.url, "--region=" + REGION]
    mark = s3.mark()
    m = mount(s3_url(BUCKET, MIXED_PREFIX + "/"), *args, env=env)
    check_files(m, MIXED)
    reqs = s3.requests(mark)
    check_requests(reqs, key=TEST_KEY)
    assert all("//" not in r["url"] for r in reqs), [r["url"] for r in reqs]


def check_addressing(reqs, host, bucket_path):
    """Every request went to host; objects at bucket_path/PREFIX/..., listings at
    bucket_path/?list-type=2..."""
    for r in reqs:
        assert r["host"] == host, r
        if is_listing(r):
            assert r["url"].startswith(bucket_path + "/?"), r
        else:
            assert r["url"].startswith("%s/%s/" % (bucket_path, MIXED_PREFIX)), r


def test_default_addressing_is_path_style_for_other_endpoints(s3, mount, tmp_path):
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    _, reqs = mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED,
                              s3_args(s3, addressing=None), env, key=TEST_KEY)
    check_addressing(reqs, "127.0.0.1:%d" % s3.port, "/" + BUCKET)


@pytest.mark.parametrize("addressing", ["virtual", "path"])
def test_addressing_styles(s3, mount, tmp_path, addressing):
    """Endpoint http://s3.localhost:PORT (libcurl resolves *.localhost to the
    loopback): virtual-hosted style puts the bucket in the Host, path style in the path."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    args = ["--endpoint=http://s3.localhost:%d" % s3.port, "--region=" + REGION,
            "--s3-addressing=" + addressing]
    _, reqs = mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, args, env, key=TEST_KEY)
    if addressing == "virtual":
        check_addressing(reqs, "%s.s3.localhost:%d" % (BUCKET, s3.port), "")
    else:
        check_addressing(reqs, "s3.localhost:%d" % s3.port, "/" + BUCKET)


# name -> (environment, options): each must sign for EU_REGION.
REGION_CASES = {
    "option": ({}, ["--region=" + EU_REGION]),
    "AWS_REGION": ({"AWS_REGION": EU_REGION}, []),
    "AWS_DEFAULT_REGION": ({"AWS_DEFAULT_REGION": EU_REGION}, []),
    "AWS_REGION-over-AWS_DEFAULT_REGION": ({"AWS_REGION": EU_REGION,
                                            "AWS_DEFAULT_REGION": REGION}, []),
    "option-over-env": ({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION},
                        ["--region=" + EU_REGION]),
    "profile-region": ({}, ["--profile=eu"]),
    "AWS_PROFILE-region": ({"AWS_PROFILE": "eu"}, []),
    "env-over-profile-region": ({"AWS_REGION": EU_REGION}, ["--profile=us"]),
}
# ~/.aws/config of the region cases. The profiles hold the keys too (the environment's
# keys are the same), so that the credentials resolve alike whether an explicit
# --profile sets the environment's keys aside (as the AWS CLI does) or not.
REGION_CONFIG = {"profile eu": dict(RIGHT, region=EU_REGION),
                 "profile us": dict(RIGHT, region=REGION)}


@pytest.mark.parametrize("case", list(REGION_CASES))
def test_region(s3, mount, tmp_path, case):
    env_vars, args = REGION_CASES[case]
    env = clean_env(make_home(tmp_path, config=REGION_CONFIG), **dict(ENV_KEYS, **env_vars))
    _, reqs = mount_and_check(s3, mount, EU_BUCKET, MIXED_PREFIX, MIXED,
                              s3_args(s3, region=None) + args, env, key=TEST_KEY)
    assert {r["region"] for r in reqs} == {EU_REGION}


def test_default_region_is_us_east_1(s3, mount, tmp_path):
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    _, reqs = mount_and_check(s3, mount, BUCKET, MIXED_PREFIX, MIXED, s3_args(s3, region=None),
                              env, key=TEST_KEY)
    assert {r["region"] for r in reqs} == {"us-east-1"}


@pytest.mark.parametrize("prefix", [ODD_PREFIX, ODD_ASCII_PREFIX], ids=["utf8-prefix",
                                                                        "ascii-prefix"])
def test_keys_with_spaces_utf8_and_reserved_characters(s3, mount, tmp_path, odd_dataset, prefix):
    """Prefixes "datasets/odd names/ünï çødé" and "datasets/odd names/a+b=c (1)~" (given
    raw in the s3:// URL, as the AWS CLI takes it) and chunk names with spaces, UTF-8,
    % + = ( ) ~ & ; , ' ! (from index.json): each request path is percent-encoded as S3
    canonicalizes it, so the signatures verify."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    m, reqs = mount_and_check(s3, mount, BUCKET, prefix, odd_dataset, s3_args(s3), env,
                              key=TEST_KEY)
    assert sorted(os.listdir(m.path)) == sorted(["index.json"] + ODD_CHUNK_NAMES)
    check_hidden(m.path, [".items", ".chunkfs"])
    want = {"/%s/%s" % (BUCKET, uri_encode(prefix + "/" + n, True))
            for n in ODD_CHUNK_NAMES + ["index.json"]}
    got = {urllib.parse.unquote(r["url"].split("?")[0]) for r in reqs if not is_listing(r)}
    assert got == {urllib.parse.unquote(u) for u in want}


# --------------------------------------------------------------------------
# listings


def mount_tree(m):
    """{relative path: size} of every file under the mount (.chunkfs and the views are
    not listed), and the directories, from os.walk (readdir + stat, as ls -R or a
    loader's scan does)."""
    files, dirs = {}, []
    for root, dnames, fnames in os.walk(m.path):
        dnames.sort()
        dirs += [os.path.relpath(os.path.join(root, d), m.path) for d in dnames]
        for n in fnames:
            p = os.path.join(root, n)
            files[os.path.relpath(p, m.path)] = os.stat(p).st_size
    return files, dirs


def check_tree(m, local_dir):
    """The mount holds exactly local_dir's files, sizes and bytes."""
    files, dirs = mount_tree(m)
    want = {rel: os.path.getsize(os.path.join(local_dir, rel)) for rel in tree_files(local_dir)}
    assert sorted(files) == sorted(want)
    for rel, size in want.items():
        assert files[rel] == size, rel
        assert sha256_file(m.file(rel)) == source_sha256(os.path.join(local_dir, rel)), rel
    return files, dirs


def test_tree_without_index(s3, mount, tmp_path, tree_dir):
    """A prefix without index.json mounts with its whole tree: nested directories, an
    empty file, names that come XML-escaped in listings or in UTF-8, and a dataset
    directory (ds/, with index.json); each directory is listed once (ListObjectsV2 with
    delimiter "/", signed), sizes come from the listings (no HEAD), bytes are right."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    mark = s3.mark()
    m = mount(s3_url(BUCKET, TREE_PREFIX), *s3_args(s3), env=env)
    _, dirs = check_tree(m, tree_dir)
    assert sorted(dirs) == ["ds", "odd", "sub", "sub/deeper"]
    assert sorted(os.listdir(m.file("odd"))) == sorted(TREE_ODD_NAMES)
    listings, _ = check_requests(s3.requests(mark), key=TEST_KEY)
    prefixes = sorted(urllib.parse.parse_qs(r["url"].partition("?")[2])["prefix"][0]
                      for r in listings)
    assert prefixes == ["tree/", "tree/ds/", "tree/odd/", "tree/sub/", "tree/sub/deeper/"]
    for r in listings:
        q = urllib.parse.parse_qs(r["url"].partition("?")[2])
        assert q.get("delimiter") == ["/"], r["url"]


def test_listing_is_cached(s3, mount, tmp_path, tree_dir):
    """Within --metadata-ttl (default 1 hour) a second walk and lookups of names that
    do not exist send no request."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    m = mount(s3_url(BUCKET, TREE_PREFIX), *s3_args(s3), env=env)
    first = mount_tree(m)
    mark = s3.mark()
    assert mount_tree(m) == first
    for name in ("nope", "sub/nope", "sub/deeper/nope.bin", "odd/nope"):
        for _ in range(3):
            assert not os.path.exists(m.file(name))
    assert s3.requests(mark) == []


def test_listing_refreshed_after_ttl(s3, mount, tmp_path):
    """With --metadata-ttl=1 an object added after the mount shows up on a later
    readdir (polled against a deadline)."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    prefix = "fresh/%s" % tmp_path.name
    c = s3.client()
    c.put_object(BUCKET, prefix + "/first.txt", b"first\n")
    m = mount(s3_url(BUCKET, prefix), *s3_args(s3), "--metadata-ttl=1", env=env)
    assert sorted(os.listdir(m.path)) in (["first.txt"], [".chunkfs", "first.txt"])
    c.put_object(BUCKET, prefix + "/second.txt", b"second!\n")
    wait_for(lambda: "second.txt" in os.listdir(m.path), scaled(15),
             "second.txt to appear after the metadata TTL")
    with open(m.file("second.txt"), "rb") as f:
        assert f.read() == b"second!\n"


@pytest.mark.log_allow(r'^obj\.bin: ETag changed from "[^"]*" to "[^"]*"; the object changed on the '
                       r'server \(EIO\)$')
def test_object_changed_after_listing_is_refused(s3, mount, tmp_path):
    """The ETag a listing gave is the one every response must carry: an object
    rewritten after its directory was listed (same size, new bytes) gives EIO
    and a log line, never the new or a mix of bytes."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    prefix = "changed/%s" % tmp_path.name
    c = s3.client()
    c.put_object(BUCKET, prefix + "/obj.bin", b"A" * 100_000)
    c.put_object(BUCKET, prefix + "/other.bin", b"B" * 1000)
    m = mount(s3_url(BUCKET, prefix), *s3_args(s3), env=env)
    assert sorted(os.listdir(m.path)) in (["obj.bin", "other.bin"],
                                          [".chunkfs", "obj.bin", "other.bin"])
    assert os.path.getsize(m.file("obj.bin")) == 100_000
    c.put_object(BUCKET, prefix + "/obj.bin", b"C" * 100_000)
    with pytest.raises(OSError) as e:
        with open(m.file("obj.bin"), "rb") as f:
            f.read()
    assert e.value.errno == errno.EIO
    with open(m.file("other.bin"), "rb") as f:
        assert f.read() == b"B" * 1000
    assert "ETag changed" in m.read_log()


def test_more_than_1000_keys_in_one_directory(s3, mount, tmp_path, many_dir):
    """1100 keys: the listing follows the continuation token (base64: + / = in a
    signed query) to the second page; every name and size is there."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    mark = s3.mark()
    m = mount(s3_url(BUCKET, MANY_PREFIX), *s3_args(s3), env=env)
    names = sorted(n for n in os.listdir(m.path) if n != ".chunkfs")
    assert names == ["k%04d.txt" % i for i in range(MANY_KEYS)]
    for i in (0, 999, 1000, MANY_KEYS - 1):
        want = b"object %d\n" % i
        assert os.stat(m.file("k%04d.txt" % i)).st_size == len(want)
        with open(m.file("k%04d.txt" % i), "rb") as f:
            assert f.read() == want
    listings, _ = check_requests(s3.requests(mark), key=TEST_KEY, index_gets=0)
    assert len(listings) == 2, [r["url"] for r in listings]
    tokens = [urllib.parse.parse_qs(r["url"].partition("?")[2]).get("continuation-token")
              for r in listings]
    assert tokens[0] is None and tokens[1] and tokens[1][0], tokens


def test_bucket_root_and_parent_prefix(s3, mount, tmp_path, tree_dir, gen_dataset):
    """s3://BUCKET mounts the whole bucket; a parent prefix shows its datasets as
    directories, each holding its index's chunks."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    m = mount("s3://" + BUCKET, *s3_args(s3), env=env)
    top = sorted(n for n in os.listdir(m.path) if n != ".chunkfs")
    assert {"datasets", "tree", "many"} <= set(top), top
    assert sorted(os.listdir(m.file("tree", "sub", "deeper"))) == ["c.bin", "empty.bin"]
    m2 = mount(s3_url(BUCKET, "datasets/"), *s3_args(s3), env=env)
    assert {"litdata-mixed", "gen", "odd names", "empty"} <= set(os.listdir(m2.path))
    for name in dataset_names(gen_dataset):
        assert sha256_file(m2.file("gen", name)) == source_sha256(os.path.join(gen_dataset, name))
    assert sorted(os.listdir(m2.file("odd names"))) == sorted([ODD_PREFIX.rsplit("/", 1)[1],
                                                               ODD_ASCII_PREFIX.rsplit("/", 1)[1]])


@pytest.mark.log_allow(r"^(/|bad): skipping \".*\": ('\.' or '\.\.'|empty name|longer than 255 bytes)$")
def test_keys_that_cannot_be_names_are_skipped(s3, mount, tmp_path):
    """Listed keys with "..", "." or empty segments, or a segment over 255 bytes, are
    skipped with a log line each, never mapped elsewhere (no escape.bin anywhere); a
    "folder" marker object (key ending in "/") is the directory itself; the valid
    objects next to them read right."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    mark = s3.mark()
    m = mount(s3_url(BUCKET, BAD_PREFIX), *s3_args(s3), env=env)
    files, dirs = mount_tree(m)
    want = {rel: len(data) for rel, data in BAD_VALID.items() if not rel.endswith("/")}
    want[BAD_LONGEST_NAME] = 7      # listed only (see BAD_PHANTOM_KEYS): not read here
    assert files == want
    assert dirs == ["sub"]
    for rel, data in BAD_VALID.items():
        if not rel.endswith("/"):
            with open(m.file(rel), "rb") as f:
                assert f.read() == data, rel
    root = mount("s3://" + BUCKET, *s3_args(s3), env=env)
    assert "escape.bin" not in os.listdir(root.path)
    assert sorted(os.listdir(root.file(BAD_PREFIX))) == sorted(["ok.bin", "sub", BAD_LONGEST_NAME])
    reqs = s3.requests(mark)
    gets = [r["url"] for r in reqs if not is_listing(r)]
    assert not any("escape" in u or "dot.bin" in u or "deep.bin" in u for u in gets), gets
    log = m.read_log()
    skipped = [line for line in log.splitlines() if "bad/" in line or "skip" in line.lower()]
    assert len(skipped) >= len(BAD_PHANTOM_KEYS) - 1, \
        "expected a log line per skipped key:\n" + tail(log)


def test_anonymous_listing(s3, mount, tmp_path, gen_dataset):
    """--no-sign-request lists a public bucket unsigned."""
    env = clean_env(make_home(tmp_path))
    mark = s3.mark()
    m = mount(s3_url(PUBLIC_BUCKET, "datasets"), *s3_args(s3), "--no-sign-request", env=env)
    assert sorted(n for n in os.listdir(m.path) if n != ".chunkfs") == ["gen", "litdata-mixed"]
    for name in dataset_names(MIXED):
        assert sha256_file(m.file("litdata-mixed", name)) == \
            source_sha256(os.path.join(MIXED, name))
    check_requests(s3.requests(mark), anonymous=True)


def test_empty_and_missing_prefixes(s3, mount, tmp_path):
    """A prefix holding one object and no index.json shows that object; a prefix with
    no object at all mounts as an empty directory (S3 has no directories to miss)."""
    env = clean_env(make_home(tmp_path), **ENV_KEYS)
    m = mount(s3_url(BUCKET, EMPTY_PREFIX), *s3_args(s3), env=env)
    assert [n for n in os.listdir(m.path) if n != ".chunkfs"] == ["readme.txt"]
    with open(m.file("readme.txt"), "rb") as f:
        assert f.read() == b"no index here\n"
    m2 = mount(s3_url(BUCKET, "datasets/nothing-here"), *s3_args(s3), env=env)
    assert [n for n in os.listdir(m2.path) if n != ".chunkfs"] == []


# --------------------------------------------------------------------------
# secrets


@pytest.mark.parametrize("source", ["env", "credentials-file"])
def test_secrets_not_in_debug_log(s3, mount, tmp_path, gen_dataset, source):
    """With -d (a debug line per request), neither the secret key nor the session
    token shows in the daemon's output, raw or URL-encoded, nor in .chunkfs/stats;
    the token did reach the server."""
    if source == "env":
        env = clean_env(make_home(tmp_path), AWS_SESSION_TOKEN=TOKEN, **ENV_KEYS)
    else:
        env = clean_env(make_home(tmp_path, {"default": dict(RIGHT, aws_session_token=TOKEN)}))
    m, reqs = mount_and_check(s3, mount, BUCKET, GEN_PREFIX, gen_dataset,
                              ["-d"] + s3_args(s3), env, key=TEST_KEY, token=TOKEN,
                              preads_seed=5)
    with open(m.file(".chunkfs", "stats")) as f:
        stats = f.read()
    problems = m.unmount()
    assert not problems, problems
    log = m.read_log()
    assert len(log.splitlines()) >= len(reqs), "expected a debug line per request:\n" + tail(log)
    for secret in (TEST_SECRET, TOKEN):
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            assert form not in log, "%r in the log of chunkfs -d" % form
            assert form not in stats, "%r in .chunkfs/stats" % form


@pytest.mark.parametrize("bucket", ["nosuchbucket", BUCKET])
def test_secrets_not_in_error_messages(chunkfs_bin, s3, tmp_path, bucket):
    """A failed mount's message (-f -d: everything on stderr) holds no secret."""
    env = clean_env(make_home(tmp_path), AWS_SESSION_TOKEN=TOKEN, AWS_ACCESS_KEY_ID=TEST_KEY,
                    AWS_SECRET_ACCESS_KEY=TEST_SECRET if bucket != BUCKET else WRONG_SECRET)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rc, stderr, _ = run_until_exit([chunkfs_bin, "-f", "-d"] + s3_args(s3)
                                   + [s3_url(bucket, MIXED_PREFIX), str(mnt)], env, str(mnt))
    assert rc != 0
    for secret in (TEST_SECRET, WRONG_SECRET, TOKEN):
        assert secret not in stderr and urllib.parse.quote(secret, safe="") not in stderr


# --------------------------------------------------------------------------
# bad input


class SilentServer:
    """A socket on 127.0.0.1 that accepts TCP connections and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


# name -> function(s3, tmp_path, silent_url) -> (url, options, env vars, ~/.aws/credentials),
# words the message should hold (one of them, case-insensitive), and a deadline in seconds.
BAD_CASES = {
    "no-such-bucket": (lambda s3, t, q: (s3_url("nosuchbucket", MIXED_PREFIX), s3_args(s3),
                                         ENV_KEYS, None),
                       ["nosuchbucket", "no such bucket", "404"], 30),
    "unknown-access-key": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX), s3_args(s3),
                                             dict(AWS_ACCESS_KEY_ID=WRONG_KEY,
                                                  AWS_SECRET_ACCESS_KEY=WRONG_SECRET), None),
                           ["403", "InvalidAccessKeyId", "access key", "denied", "forbidden"], 30),
    "wrong-secret": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX), s3_args(s3),
                                       dict(AWS_ACCESS_KEY_ID=TEST_KEY,
                                            AWS_SECRET_ACCESS_KEY=WRONG_SECRET), None),
                     ["403", "SignatureDoesNotMatch", "signature", "denied", "forbidden"], 30),
    "endpoint-closed-port": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX),
                                               ["--endpoint=http://127.0.0.1:%d" % free_port(),
                                                "--region=" + REGION], ENV_KEYS, None),
                             ["127.0.0.1", "connect", "refused"], 10),
    "endpoint-silent": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX),
                                          ["--endpoint=" + q, "--region=" + REGION,
                                           "--timeout=1", "--connect-timeout=1", "--retries=1"],
                                          ENV_KEYS, None),
                        ["timed out", "timeout", "127.0.0.1"], 15),
    "wrong-region": (lambda s3, t, q: (s3_url(EU_BUCKET, MIXED_PREFIX), s3_args(s3), ENV_KEYS,
                                       None),
                     ["region", "400", "AuthorizationHeaderMalformed"], 30),
    "anonymous-on-private-bucket": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX),
                                                      s3_args(s3) + ["--no-sign-request"],
                                                      ENV_KEYS, None),
                                    ["403", "denied", "forbidden"], 30),
    "no-credentials": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX), s3_args(s3), {}, None),
                       ["credential", "403", "denied", "forbidden"], 30),
    "missing-profile": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX),
                                          s3_args(s3) + ["--profile=nosuch"], {},
                                          {"default": RIGHT}),
                        ["nosuch", "profile", "403", "denied"], 30),
    "bad-addressing": (lambda s3, t, q: (s3_url(BUCKET, MIXED_PREFIX),
                                         s3_args(s3, addressing="sideways"), ENV_KEYS, None),
                       ["addressing", "sideways"], 30),
    "no-bucket": (lambda s3, t, q: ("s3:///" + MIXED_PREFIX, s3_args(s3), ENV_KEYS, None),
                  ["bucket", "s3://", "url"], 30),
    **{"file-url-" + name: ((lambda name: lambda s3, t, q: (
        s3_url(BUCKET, MIXED_PREFIX + "/" + name), s3_args(s3), ENV_KEYS, None))(name),
        ["names a file; give its directory: %s/" % s3_url(BUCKET, MIXED_PREFIX)], 30)
       for name in ("chunk-0-0.bin", "index.json")},
}


@pytest.mark.parametrize("mode", ["foreground", "daemon"])
@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input(chunkfs_bin, s3, tmp_path, case, mode):
    """Non-zero exit, one line on stderr that says what is wrong, nothing mounted, no
    process left, and within the case's deadline."""
    build, words, deadline = BAD_CASES[case]
    silent = SilentServer()
    try:
        url, args, env_vars, credentials = build(s3, tmp_path, silent.url)
        env = clean_env(make_home(tmp_path, credentials), **env_vars)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        argv = [chunkfs_bin] + (["-f"] if mode == "foreground" else []) + args + [url, str(mnt)]
        rc, stderr, elapsed = run_until_exit(argv, env, str(mnt))
    finally:
        silent.close()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc != 0, "chunkfs exited 0 on bad input %s" % argv
    assert len(lines) == 1, "expected one line on stderr, got %d:\n%s" % (len(lines), stderr)
    assert not is_mounted(str(mnt))
    line = lines[0]
    assert len(line) < 1000
    assert any(w.lower() in line.lower() for w in words), \
        "the message does not say what is wrong (expected one of %s): %s" % (words, line)
    assert not re.search(r"&(apos|quot|amp|lt|gt|#[0-9]+|#x[0-9a-fA-F]+);", line), \
        "XML character references left in the message (S3's error body not decoded): " + line
    assert elapsed < scaled(deadline), "took %.1f s to fail" % elapsed
    for secret in (TEST_SECRET, WRONG_SECRET):
        assert secret not in line
