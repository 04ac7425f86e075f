"""Redirects from a hostile or merely sharded server (issue 12, deliverable 3).

chunkfs follows redirects itself (libcurl would send --header values to any
host): to http and https only, never from https to http, at most 5 hops, and
the mount's credentials (--header, the URL's user and password, S3's SigV4
signature and x-amz-security-token) go to the origin of the request's URL
only. A redirect to another origin is followed as a plain request, the
CDN and presigned-URL case, and serves the right bytes.

Two tests/faultserver.py instances on different ports are the two origins;
the `redirect` fault answers 30x with a Location, and each server's Request
log shows the headers every request carried.
"""
import errno
import os
import shutil
import socket
import subprocess

import pytest

import formats
from cfsutil import chunkfs_env, data_dir, scaled
from itemutil import read_bytes
from s3fixture import REGION, TEST_KEY, TEST_SECRET, S3rver, tree_files
from test_faults import assert_correct, log_lines, read, source

DATASET = "litdata-mixed"
SMALL = "chunk-0-1.bin"          # the chunk the redirects hit
OTHER = "chunk-1-2.bin"          # a chunk left alone
HEADER_NAME = "X-Api-Key"
HEADER_SECRET = "hdr-s3cr3t"
USERINFO = "user:pw-s3cr3t"
TOKEN = "tok-s3cr3t"
# Request headers that carry the mount's credentials.
CREDENTIAL_HEADERS = (HEADER_NAME.lower(), "authorization", "cookie")


@pytest.fixture
def origins(tmp_path):
    """Two copies of the litdata-mixed fixture: (origin A's root, origin B's root)."""
    roots = []
    for name in ("origin-a", "origin-b"):
        root = tmp_path / name
        shutil.copytree(data_dir(DATASET), root)
        roots.append(str(root))
    return roots


@pytest.fixture
def self_signed(tmp_path):
    """(certificate, key) of a self-signed certificate for IP 127.0.0.1, made here."""
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "7", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"],
                   check=True, timeout=scaled(60), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


@pytest.fixture
def listener():
    """A TCP socket listening on 127.0.0.1 that never accepts: where a refused
    redirect points, to show that nothing connected. Closed at teardown."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def connected(sock):
    """True when a connection waits on the listening sock."""
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def with_userinfo(url):
    scheme, _, rest = url.partition("://")
    return "%s://%s@%s" % (scheme, USERINFO, rest)


def mount_secret(mount, srv, *args, **kw):
    """Mount srv with short timeouts, a --header and a user and password in the URL."""
    return mount(with_userinfo(srv.url), "--connect-timeout=5", "--timeout=10",
                 "--header=%s: %s" % (HEADER_NAME, HEADER_SECRET), *args, **kw)


def credentials_in(req):
    """The credential headers (names, lower case) req carried, x-amz-* included."""
    return [k.lower() for k, _ in req.headers
            if k.lower() in CREDENTIAL_HEADERS or k.lower().startswith("x-amz-")]


def assert_plain(reqs, what):
    """Every request of reqs (there is one at least) carried no credential."""
    assert reqs, "%s: no request reached the other origin" % what
    for r in reqs:
        leaked = credentials_in(r)
        assert not leaked, "%s: %r carried %s to another origin" % (what, r, leaked)
        assert all(HEADER_SECRET not in v and TOKEN not in v for _, v in r.headers), (what, r)


def assert_with_credentials(reqs, what):
    assert reqs, "%s: no request" % what
    for r in reqs:
        assert r.header(HEADER_NAME) == HEADER_SECRET, "%s: %r lacks --header" % (what, r)
        assert (r.header("Authorization") or "").startswith("Basic "), (
            "%s: %r lacks the URL's user and password" % (what, r))


def check_others(m, root):
    for name in (OTHER, "index.json"):
        assert_correct(read(m.file(name), deadline=20), source(root, name),
                       "%s after a redirect of another object" % name)


# -- followed: the right bytes, credentials only at their origin ---------------

@pytest.mark.parametrize("form", ["absolute", "scheme-relative"])
def test_chunk_redirected_to_another_origin(serve, mount, origins, form):
    """A Range GET answered 302 to another host (a presigned CDN URL): the bytes
    come from there, with their Range, and without the header or the login
    (a scheme-relative Location, //host:port/path, replaces the userinfo too)."""
    a, b = serve(origins[0]), serve(origins[1])
    where = b.url if form == "absolute" else b.url[len("http:"):]
    a.set_fault(SMALL, "redirect", location=where + "{name}?X-Amz-Signature=sig{seq}")
    m = mount_secret(mount, a, "--block-size=8K")
    assert_correct(read(m.file(SMALL)), source(origins[1], SMALL), SMALL)
    assert_with_credentials(a.requests(SMALL), "origin A")
    at_b = b.requests(SMALL)
    assert_plain(at_b, SMALL)
    assert all(r.start is not None for r in at_b), "a Range was dropped: %r" % at_b
    check_others(m, origins[0])


@pytest.mark.parametrize("code", [301, 303, 307, 308])
def test_each_redirect_status_is_followed(serve, mount, origins, code):
    a, b = serve(origins[0]), serve(origins[1])
    a.set_fault(SMALL, "redirect", code=code, location=b.url + "{name}")
    m = mount_secret(mount, a)
    assert_correct(read(m.file(SMALL)), source(origins[1], SMALL), SMALL)
    assert_plain(b.requests(SMALL), "after a %d" % code)


def test_items_redirected_to_another_origin(serve, mount, origins):
    """Item reads (.items/) of a chunk whose every request is redirected."""
    a, b = serve(origins[0]), serve(origins[1])
    a.set_fault(SMALL, "redirect", location=b.url + "{name}")
    m = mount_secret(mount, a)
    items = formats.dataset_items(origins[0])
    names = formats.item_names(len(items))
    hit = [it for it in items if it.chunk == SMALL]
    assert hit
    for it in hit:
        assert read_bytes(m.file(".items", names[it.index])) == it.data, names[it.index]
    assert_plain(b.requests(SMALL), ".items of " + SMALL)


def test_index_redirected_to_another_origin(serve, mount, origins):
    """The blocking request of index.json at mount (and its reads through the
    mount) redirected: the dataset mounts, its items read right, and the
    other origin never saw a credential."""
    a, b = serve(origins[0]), serve(origins[1])
    a.set_fault("index.json", "redirect", location=b.url + "{name}?sig=1")
    m = mount_secret(mount, a)
    items = formats.dataset_items(origins[0])
    first = formats.item_names(len(items))[0]
    assert read_bytes(m.file(".items", first)) == items[0].data
    assert_correct(read(m.file("index.json")), source(origins[0], "index.json"), "index.json")
    assert_plain(b.requests("index.json"), "index.json")
    assert_with_credentials(a.requests("index.json"), "index.json at origin A")


def test_same_origin_redirect_keeps_credentials(serve, mount, origins):
    """A redirect to the same scheme, host and port keeps the header and the login."""
    a = serve(origins[0])
    fault = a.set_fault(SMALL, "redirect", count=1, location="/{name}?moved=1")
    m = mount_secret(mount, a)
    assert_correct(read(m.file(SMALL)), source(origins[0], SMALL), SMALL)
    assert fault.fired == 1
    reqs = a.requests(SMALL)
    assert len(reqs) >= 2, reqs
    assert_with_credentials(reqs, "a same-origin redirect")


def test_back_at_the_origin_stays_plain(serve, mount, origins):
    """A -> B -> A: the hop back was chosen by B, so it carries no credential either."""
    a, b = serve(origins[0]), serve(origins[1])
    a.set_fault(SMALL, "redirect", count=1, location=b.url + "{name}")
    b.set_fault(SMALL, "redirect", count=1, location=a.url + "{name}?back=1")
    m = mount_secret(mount, a)
    assert_correct(read(m.file(SMALL)), source(origins[0], SMALL), SMALL)
    reqs = a.requests(SMALL)
    assert len(reqs) >= 2, reqs
    assert_with_credentials(reqs[:1], "the first request")
    assert_plain(reqs[1:2], "the hop back to A")
    assert_plain(b.requests(SMALL), "B")


# -- refused: EIO at once, nothing sent, the mount lives on ------------------

@pytest.mark.parametrize("scheme", ["ftp", "file", "gopher"])
@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: not following the redirect to '[^']*': only http and https are followed \(EIO\)$")
def test_redirect_to_another_protocol_is_refused(serve, mount, origins, listener, scheme):
    a = serve(origins[0])
    port = listener.getsockname()[1]
    target = {"ftp": "ftp://127.0.0.1:%d/{name}" % port, "file": "file:///etc/passwd",
              "gopher": "gopher://127.0.0.1:%d/1{name}" % port}[scheme]
    a.set_fault(SMALL, "redirect", location=target)
    m = mount_secret(mount, a)
    res = read(m.file(SMALL), deadline=20)
    assert res.errno == errno.EIO, res
    assert res.data == b"", res
    assert not connected(listener), "chunkfs followed the redirect to %s" % scheme
    assert m.stats()["retries"] == 0, "a refused redirect is not retried: %r" % a.requests(SMALL)
    assert any("not following the redirect" in line for line in log_lines(m, SMALL)), \
        m.read_log()
    check_others(m, origins[0])


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: not following the redirect to '[^']*': more than 5 redirects \(EIO\)$")
def test_redirect_loop_ends_in_eio(serve, mount, origins):
    """A server that redirects a chunk to itself forever: 5 hops, then EIO,
    with a log line naming the object, its range and the last URL without
    its query."""
    a = serve(origins[0])
    a.set_fault(SMALL, "redirect", location="/{name}?token=loop-s3cr3t-{seq}")
    m = mount_secret(mount, a, "--retries=3")
    res = read(m.file(SMALL), deadline=30)
    assert res.errno == errno.EIO, res
    by_range = {}
    for r in a.requests(SMALL):
        by_range.setdefault(r.range, []).append(r)
    assert by_range and all(len(hops) == 6 for hops in by_range.values()), (
        "each range: 1 request and 5 hops, no retry: %r" % by_range)
    lines = [line for line in log_lines(m, SMALL) if "more than 5 redirects" in line]
    assert lines, m.read_log()
    assert "bytes 0-" in lines[0] and "?***" in lines[0], lines[0]
    assert "loop-s3cr3t" not in m.read_log()
    check_others(m, origins[0])


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: not following the redirect to 'http://[^']*': a redirect from https to http is not followed \(EIO\)$")
def test_https_to_http_is_refused(serve, mount, origins, self_signed):
    """From an https origin, a redirect to http is not followed (the bytes and
    the credentials would cross the network in clear)."""
    a = serve(origins[0], tls=self_signed)
    b = serve(origins[1])
    a.set_fault(SMALL, "redirect", location=b.url + "{name}")
    m = mount_secret(mount, a, "--cacert=" + self_signed[0])
    res = read(m.file(SMALL), deadline=20)
    assert res.errno == errno.EIO, res
    assert b.requests() == [], "followed https -> http: %r" % b.requests()
    assert any("https to http" in line for line in log_lines(m, SMALL)), m.read_log()
    check_others(m, origins[0])


# -- S3: the signature stays with the endpoint ---------------------------------

MOVED_OTHER = "moved/" + OTHER


@pytest.fixture
def s3_redirecting(tmp_path, origins, serve):
    """s3rver holding the dataset under BUCKET/ds, where GETs of SMALL are
    answered 307 to origin B and those of ds/OTHER to another key of the same
    endpoint: (S3rver, origin B)."""
    b = serve(origins[1], etag="md5")
    redirects = {"/bucket/ds/" + SMALL: b.url + SMALL + "?X-Amz-Signature=presigned",
                 "/bucket/ds/" + OTHER: "/bucket/" + MOVED_OTHER}
    server = S3rver(tmp_path / "s3rver", ["bucket"], extra_keys={TEST_KEY: TEST_SECRET},
                    redirects=redirects)
    try:
        server.start()
        # PUT only: upload_tree's read-back GET would be redirected.
        uploads = [("ds/" + rel, rel) for rel in tree_files(origins[0])] + [(MOVED_OTHER, OTHER)]
        for key, rel in uploads:
            with open(os.path.join(origins[0], rel), "rb") as f:
                server.client().put_object("bucket", key, f.read())
        yield server, b
    finally:
        server.stop()


def test_s3_redirect_keeps_sigv4_at_the_endpoint(mount, tmp_path, origins, s3_redirecting):
    """An object redirected to another origin is fetched there unsigned (no
    Authorization, no x-amz-* header, no session token); one redirected within
    the endpoint is signed again for its new key."""
    s3, b = s3_redirecting
    home = tmp_path / "home"
    home.mkdir()
    env = chunkfs_env({k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                      AWS_ACCESS_KEY_ID=TEST_KEY, AWS_SECRET_ACCESS_KEY=TEST_SECRET,
                      AWS_SESSION_TOKEN=TOKEN, HOME=home)
    m = mount("s3://bucket/ds", "--endpoint=" + s3.url, "--region=" + REGION,
              "--s3-addressing=path", "--header=%s: %s" % (HEADER_NAME, HEADER_SECRET), env=env)
    assert_correct(read(m.file(SMALL)), source(origins[1], SMALL), SMALL)
    assert_plain(b.requests(SMALL), "S3 object redirected to another origin")
    assert_correct(read(m.file(OTHER)), source(origins[0], OTHER), OTHER)
    reqs = s3.requests()
    redirected = [r for r in reqs if r["status"] == 307]
    assert redirected and all(r["auth"] == "sigv4" for r in redirected), reqs
    moved = [r for r in reqs
             if r["method"] == "GET" and r["url"].startswith("/bucket/" + MOVED_OTHER)]
    assert moved and all(r["auth"] == "sigv4" and r["status"] == 206 for r in moved), moved
