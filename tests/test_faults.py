"""Fault injection: chunkfs against a server that breaks its responses on purpose.

design.md principles 4 and 5: wrong bytes are never served, and every fault ends
in a bounded retry or a clear errno, never a hang. The server is
tests/faultserver.py, running in a thread of this process; every read runs in a
child process with a deadline, so a hang fails the test instead of blocking it.
"""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

import litgen
from faultserver import FaultServer

from cfsutil import open_direct, scaled, wait_for


MIB = 1 << 20

# A read in a child process: prints the bytes read, and on an error the errno
# on stderr (exit 3) after the bytes read before it. It loops over short
# counts until EOF, so a short count followed by an error shows as the error.
READER = r"""
import os, sys
path, off, size, advice = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = bytearray()
err = 0
try:
    fd = os.open(path, os.O_RDONLY)
    if advice == "random":
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    while size < 0 or len(out) < size:
        want = (1 << 20) if size < 0 else min(1 << 20, size - len(out))
        b = os.pread(fd, want, off + len(out))
        if not b:
            break
        out += b
    os.close(fd)
except OSError as e:
    err = e.errno
sys.stdout.buffer.write(out)
sys.stdout.flush()
if err:
    sys.stderr.write("errno=%d\n" % err)
    sys.exit(3)
"""


# One O_DIRECT read of the first 4096 bytes: a synchronous FUSE read.
DIRECT_READER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
os.pread(fd, 4096, 0)
"""


class ReadResult:
    def __init__(self, data, err, elapsed):
        self.data = data          # bytes read (before the error, if any)
        self.errno = err          # 0 or the errno of the failing read
        self.elapsed = elapsed

    def __repr__(self):
        return "<read %d bytes, errno=%s, %.2fs>" % (
            len(self.data), errno.errorcode.get(self.errno, self.errno), self.elapsed)


def run_child(args, deadline, what):
    """Run `python3 -c args...` in a child process: (returncode, stdout bytes,
    stderr text, seconds). A child still running after deadline seconds
    fails the test as a hang, naming what it did."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-c"] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, errout = p.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        # A reader stuck in a FUSE request may not die before the daemon
        # answers; do not wait for it without a bound (teardown stops the daemon).
        p.kill()
        try:
            p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        pytest.fail("%s did not end within %.0f s: a hang" % (what, deadline))
    return p.returncode, out, errout.decode(), time.monotonic() - t0


def child_errno(errout):
    """The errno a reader child reported on its stderr (exit status 3)."""
    return int(errout.strip().rpartition("errno=")[2])


def read(path, off=0, size=-1, deadline=30, advice="random"):
    """Read [off, off+size) (size -1: to EOF) of path in a child process,
    failing the test after deadline seconds (scaled for sanitizer builds).
    advice "random" sets POSIX_FADV_RANDOM so the kernel asks for the pages
    read and no more; "normal" leaves the kernel's readahead on."""
    rc, out, errout, elapsed = run_child([READER, path, str(off), str(size), advice],
                                         scaled(deadline),
                                         "read of %s [%d, +%d)" % (path, off, size))
    if rc == 3:
        return ReadResult(out, child_errno(errout), elapsed)
    if rc != 0:
        pytest.fail("reader failed (%d): %s" % (rc, errout))
    return ReadResult(out, 0, elapsed)


def source(root, name, off=0, size=-1):
    with open(os.path.join(root, name), "rb") as f:
        f.seek(off)
        return f.read(size)


def assert_correct(res, expect, what):
    assert res.errno == 0, "%s: %r, expected the bytes" % (what, res)
    assert len(res.data) == len(expect), "%s: %d bytes, expected %d" % (what, len(res.data), len(expect))
    assert res.data == expect, "%s: WRONG BYTES served" % what


def assert_never_wrong(res, expect, what):
    """Whatever was returned before an error is a correct prefix of expect."""
    assert res.data == expect[:len(res.data)], "%s: WRONG BYTES served (%r)" % (what, res)


def assert_resumed(srv, name, kind, delivered=True):
    """The first response broken by `kind` was followed by a request for the
    rest of its range: starting where the broken body stopped (delivered=True)
    or at the same start (nothing was delivered), with the same end.
    Returns that request."""
    reqs = srv.requests(name)
    broken = [r for r in reqs if kind in r.faults]
    assert broken, "no %s fault fired on %s: %r" % (kind, name, reqs)
    b = broken[0]
    assert b.start is not None, "the broken request had no Range: %r" % b
    want = b.start + (b.sent if delivered else 0)
    later = [r for r in reqs if r.seq > b.seq and r.start is not None]
    rest = [r for r in later if r.start == want and r.end == b.end]
    assert rest, ("after %r no request for bytes %d-%d (the rest of the broken range); requests: %r"
                  % (b, want, b.end - 1, reqs))
    if delivered and b.sent > 0:
        assert all(r.start != b.start or r.end != b.end for r in later), (
            "the whole broken range was fetched again instead of resuming: %r" % reqs)
    return rest[0]


def log_lines(m, needle):
    return [line for line in m.read_log().splitlines() if needle in line]


# -- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A generated LitData dataset: 2 chunks of about 4 MiB, items 64-256 KiB."""
    root = tmp_path_factory.mktemp("faults-big")
    litgen.write_dataset(str(root), chunks=2, chunk_bytes=4 * MIB,
                         item_min=64 << 10, item_max=256 << 10, seed=7)
    return str(root)


def mount_with(mount, srv, *args, **kw):
    """Mount srv.url with short default timeouts (overridable by args)."""
    given = {a.split("=", 1)[0] for a in args}
    defaults = [d for d in ("--connect-timeout=5", "--timeout=10") if d.split("=", 1)[0] not in given]
    return mount(srv.url, *defaults, *args, **kw)


SMALL = "chunk-0-1.bin"      # the chunk the faults hit in the small dataset
OTHER = "chunk-1-2.bin"      # a chunk left alone
BIG = "chunk-0-0.bin"
BIG_OTHER = "chunk-0-1.bin"


def check_others(m, root, names=(OTHER, "index.json")):
    for name in names:
        assert_correct(read(os.path.join(m.path, name), deadline=20), source(root, name),
                       "%s after a fault on another chunk" % name)


# -- transient faults: the read succeeds, resuming where the body stopped ------

@pytest.mark.parametrize("count", [1, 3])
def test_truncated_body_is_resumed(serve, mount, small, count):
    srv = serve(small)
    fault = srv.set_fault(SMALL, "truncate", count=count)
    m = mount_with(mount, srv)
    res = read(os.path.join(m.path, SMALL), deadline=30)
    assert_correct(res, source(small, SMALL), SMALL)
    assert fault.fired == count
    st = m.stats()
    assert st["retries"] >= count
    assert st["requests_failed"] == 0
    assert_resumed(srv, SMALL, "truncate")
    check_others(m, small)


def test_reset_mid_body_is_resumed(serve, mount, small):
    srv = serve(small)
    fault = srv.set_fault(SMALL, "reset", count=1, keep=10000, delay=0.3)
    m = mount_with(mount, srv)
    res = read(os.path.join(m.path, SMALL), deadline=30)
    assert_correct(res, source(small, SMALL), SMALL)
    assert fault.fired == 1
    assert m.stats()["retries"] >= 1
    assert_resumed(srv, SMALL, "reset")


def test_reset_before_response_is_retried(serve, mount, small):
    # libcurl may itself retry once a request whose reused connection died
    # before any response, so three resets are needed to be sure at least
    # two reach chunkfs.
    srv = serve(small)
    fault = srv.set_fault(SMALL, "reset", count=3)
    m = mount_with(mount, srv, "--retries=4")
    res = read(os.path.join(m.path, SMALL), deadline=40)
    assert_correct(res, source(small, SMALL), SMALL)
    assert fault.fired == 3
    st = m.stats()
    assert st["retries"] >= 1
    assert st["requests_failed"] == 0
    assert_resumed(srv, SMALL, "reset", delivered=False)


@pytest.mark.parametrize("code,retry_after", [(503, None), (500, None), (429, 1)])
def test_transient_status_once_is_retried(serve, mount, small, code, retry_after):
    srv = serve(small)
    fault = srv.set_fault(SMALL, "status", count=1, code=code, retry_after=retry_after)
    m = mount_with(mount, srv)
    res = read(os.path.join(m.path, SMALL), deadline=30)
    assert_correct(res, source(small, SMALL), SMALL)
    assert fault.fired == 1
    st = m.stats()
    assert st["retries"] >= 1
    assert st["requests_failed"] == 0
    assert_resumed(srv, SMALL, "status", delivered=False)


def test_stall_mid_body_times_out_and_resumes(serve, mount, big):
    # The body stops after 40000 bytes for 30 s; with --timeout=1 chunkfs gives
    # up on it after about a second and asks for the rest.
    srv = serve(big)
    fault = srv.set_fault(BIG, "stall", count=1, keep=40000, seconds=30)
    m = mount_with(mount, srv, "--timeout=1", "--block-size=256K", "--readahead=0")
    res = read(os.path.join(m.path, BIG), 0, 256 << 10, deadline=30)
    assert_correct(res, source(big, BIG, 0, 256 << 10), BIG)
    assert fault.fired == 1
    st = m.stats()
    assert st["retries"] >= 1
    assert st["requests_failed"] == 0
    resumed = assert_resumed(srv, BIG, "stall")
    # The body stopped right after the request arrived: with --timeout=1 the
    # retry is due about 1 s later (plus a 100 ms backoff), not many seconds.
    stalled = next(r for r in srv.requests(BIG) if "stall" in r.faults)
    gap = resumed.time - stalled.time
    assert gap < scaled(3), (
        "the stalled response was given up %.1f s after it stopped delivering bytes, "
        "with --timeout=1" % gap)


def test_stall_before_headers_times_out_and_retries(serve, mount, small):
    srv = serve(small)
    fault = srv.set_fault(SMALL, "stall", count=1, headers=False, seconds=30)
    m = mount_with(mount, srv, "--timeout=1")
    res = read(os.path.join(m.path, SMALL), deadline=20)
    assert_correct(res, source(small, SMALL), SMALL)
    assert fault.fired == 1
    assert res.elapsed < scaled(15)
    assert m.stats()["retries"] >= 1
    assert_resumed(srv, SMALL, "stall", delivered=False)


# -- permanent faults: a clear errno, bounded, and the rest of the mount lives --

@pytest.mark.parametrize("code,want", [
    pytest.param(404, errno.EIO, id="404", marks=pytest.mark.log_allow(
        r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 404 \(ENOENT\)$")),
    pytest.param(403, errno.EACCES, id="403", marks=pytest.mark.log_allow(
        r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 403 \(EACCES\)$")),
])
def test_client_error_fails_promptly(serve, mount, small, code, want):
    """A 404 of a listed chunk is EIO (the name exists); a 403 is EACCES, the
    server's refusal, as for a listing (docs/architecture.md's errno map)."""
    srv = serve(small)
    srv.set_fault(SMALL, "status", code=code)
    m = mount_with(mount, srv)
    res = read(os.path.join(m.path, SMALL), deadline=15)
    assert res.errno == want, res
    assert res.data == b"", res
    assert res.elapsed < scaled(10), "a %d took %.1f s to fail" % (code, res.elapsed)
    st = m.stats()
    assert st["retries"] == 0, "a %d is not transient and must not be retried" % code
    assert st["read_errors"] >= 1
    assert log_lines(m, SMALL), "no log line names %s" % SMALL
    check_others(m, small)


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 404 \(ENOENT\)$")
def test_endless_error_page_is_not_drained(serve, mount, small):
    """A 404 whose page is 1 GiB: the read fails promptly, and chunkfs stops
    reading the page after a bounded prefix instead of downloading it."""
    srv = serve(small)
    srv.set_fault(SMALL, "status", code=404, body_bytes=1 << 30)
    m = mount_with(mount, srv)
    res = read(os.path.join(m.path, SMALL), deadline=30)
    assert res.errno == errno.EIO, res
    assert res.elapsed < scaled(10), "the error took %.1f s" % res.elapsed
    sent = max(r.sent for r in srv.requests(SMALL))
    assert sent <= 16 << 20, "chunkfs read %d bytes of an error page" % sent
    check_others(m, small)


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 500; giving up after 3 attempts \(EIO\)$")
def test_server_error_always_fails_after_bounded_retries(serve, mount, small):
    srv = serve(small)
    fault = srv.set_fault(SMALL, "status", code=500)
    m = mount_with(mount, srv, "--retries=2")
    res = read(os.path.join(m.path, SMALL), deadline=40)
    assert res.errno == errno.EIO, res
    assert res.data == b""
    assert res.elapsed < scaled(30)
    st = m.stats()
    assert st["requests_failed"] >= 1
    assert st["retries"] >= 2
    assert fault.fired >= 3, "expected the first attempt and 2 retries: %r" % srv.requests(SMALL)
    check_others(m, small)


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 503; giving up after 2 attempts \(EIO\)$")
def test_read_succeeds_after_the_server_recovers(serve, mount, small):
    # A 5xx outage that outlasts the retries fails the read; it does not prove
    # the object bad, so once the server answers again the same read works
    # (after the second during which a failed range fails at once).
    srv = serve(small)
    srv.set_fault(SMALL, "status", code=503)
    m = mount_with(mount, srv, "--retries=1")
    res = read(os.path.join(m.path, SMALL), deadline=30)
    assert res.errno == errno.EIO, res
    srv.clear_faults()
    wait_for(lambda: read(os.path.join(m.path, SMALL), deadline=30).errno == 0, scaled(10),
             "%s to read again after the outage ended" % SMALL)
    res = read(os.path.join(m.path, SMALL), deadline=30)
    assert_correct(res, source(small, SMALL), "%s after the outage ended" % SMALL)


@pytest.mark.log_allow(r"^chunk-[\d-]+\.bin bytes \d+-\d+: transfer closed with \d+ bytes remaining to read; giving up after 3 attempts \(EIO\)$")
def test_truncation_on_every_attempt_is_bounded(serve, mount, big):
    srv = serve(big)
    srv.set_fault(BIG, "truncate")
    m = mount_with(mount, srv, "--retries=2", "--block-size=256K", "--readahead=0")
    expect = source(big, BIG, 0, 256 << 10)
    res = read(os.path.join(m.path, BIG), 0, 256 << 10, deadline=40)
    assert res.errno == errno.EIO, res
    assert_never_wrong(res, expect, BIG)
    assert res.elapsed < scaled(30)
    assert m.stats()["requests_failed"] >= 1
    check_others(m, big, (BIG_OTHER,))


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: no byte for 1 s; giving up after 1 attempts \(ETIMEDOUT\)$")
def test_stall_with_no_retries_left_fails_in_time(serve, mount, small):
    srv = serve(small)
    srv.set_fault(SMALL, "stall", keep=5000, seconds=30)
    m = mount_with(mount, srv, "--retries=0", "--timeout=1")
    res = read(os.path.join(m.path, SMALL), deadline=25)
    assert res.errno in (errno.ETIMEDOUT, errno.EIO), res
    assert_never_wrong(res, source(small, SMALL), SMALL)
    assert res.elapsed < scaled(10), "a 1 s timeout took %.1f s to fail the read" % res.elapsed
    assert m.stats()["requests_failed"] >= 1
    check_others(m, small)


def test_stalled_chunk_does_not_block_other_chunks(serve, mount, small):
    # Principle 2: a read parked on a stalled response holds no FUSE worker,
    # so reads of other chunks go on while it waits.
    srv = serve(small)
    srv.set_fault(SMALL, "stall", keep=1000, seconds=30)
    m = mount_with(mount, srv, "--timeout=20", "--retries=0")
    blocked = subprocess.Popen([sys.executable, "-c", READER, os.path.join(m.path, SMALL), "0", "-1", "random"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: srv.fired(SMALL, "stall"), scaled(10), "the stalled request")
        for name in (OTHER, "chunk-0-0.bin", "chunk-1-5.bin"):
            res = read(os.path.join(m.path, name), deadline=5)
            assert_correct(res, source(small, name), "%s while %s stalls" % (name, SMALL))
        assert blocked.poll() is None, "the reader of the stalled chunk returned already"
    finally:
        blocked.kill()
        blocked.wait(scaled(40))


def test_interrupt_cancels_a_read_parked_on_a_stall(serve, mount, small):
    # Killing a reader whose FUSE read is parked sends FUSE_INTERRUPT; chunkfs
    # must answer it at once instead of leaving the process stuck until the
    # stall ends. The kernel interrupts only synchronous requests: page-cache
    # readahead is sent in the background (never interrupted) and the reader
    # leaves its page lock on SIGKILL anyway. An O_DIRECT read is sent
    # synchronously. (The kernel's own synchronous re-read of a page whose
    # readahead failed now fails at once: docs/hostile.md.)
    srv = serve(small)
    stall = srv.add_fault(SMALL, "stall", keep=1000, seconds=30)
    m = mount_with(mount, srv, "--timeout=25", "--retries=0")
    os.close(open_direct(os.path.join(m.path, SMALL)))  # skips where O_DIRECT is refused
    reader = subprocess.Popen([sys.executable, "-c", DIRECT_READER, os.path.join(m.path, SMALL)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: stall.fired or reader.poll() is not None, scaled(10), "the stalled request")
        assert stall.fired, "the reader ended before its request stalled"
        wait_for(lambda: m.stats()["reads_parked"] >= 1, scaled(10), "the read to be parked")
        t0 = time.monotonic()
        reader.send_signal(signal.SIGKILL)
        try:
            reader.wait(scaled(40))
        except subprocess.TimeoutExpired:
            pytest.fail("a killed reader did not exit within 40 s")
        took = time.monotonic() - t0
        assert took < scaled(5), (
            "a killed reader stayed %.1f s in its parked read: FUSE_INTERRUPT not answered "
            "(the stall lasts 30 s, chunkfs's timeout is 25 s)" % took)
        wait_for(lambda: m.stats()["reads_parked"] == 0, scaled(5), "reads_parked back to 0")
        stalled = [r for r in srv.requests(SMALL) if "stall" in r.faults]
        assert not stalled[0].done, "the read was answered by the end of the stall, not by the interrupt"
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(scaled(40))
    check_others(m, small)


# -- validation: a response that does not match is never served ------------

@pytest.mark.log_allow(r'^chunk-[\d-]+\.bin: ETag changed from "[^"]*" to "[^"]*-changed"; the object changed on the server \(EIO\)$')
def test_etag_change_fails_later_reads(serve, mount, big):
    srv = serve(big)
    m = mount_with(mount, srv, "--readahead=0", "--block-size=64K")
    path = os.path.join(m.path, BIG)
    for off in (0, 1 * MIB):
        assert_correct(read(path, off, 4096), source(big, BIG, off, 4096), "%s@%d before the change" % (BIG, off))
    before = len(srv.requests(BIG))
    fault = srv.set_fault(BIG, "etag_change")
    res = read(path, 2 * MIB, 4096, deadline=20)
    assert len(srv.requests(BIG)) > before, "the read at 2 MiB made no request"
    assert fault.fired >= 1
    assert res.errno == errno.EIO, res
    assert res.data == b""
    assert any("ETag" in line or "etag" in line for line in log_lines(m, BIG)), m.read_log()
    # Bytes already held are the old object's; whatever comes back is never wrong.
    res = read(path, 0, 4096, deadline=20)
    assert res.errno in (0, errno.EIO), res
    assert_never_wrong(res, source(big, BIG, 0, 4096), BIG)
    check_others(m, big, (BIG_OTHER,))


@pytest.mark.log_allow(r'^chunk-[\d-]+\.bin: ETag changed from "[^"]*" to "[^"]*-changed"; the object changed on the server \(EIO\)$')
def test_etag_change_on_resume_is_not_spliced(serve, mount, big):
    # The first response breaks mid-body; the resumed one carries another ETag:
    # its bytes belong to another version of the object and must not be joined
    # to the first part.
    srv = serve(big)
    srv.add_fault(BIG, "truncate", count=1, keep=20000)
    change = srv.add_fault(BIG, "etag_change", after=1)
    m = mount_with(mount, srv, "--readahead=0", "--block-size=64K")
    expect = source(big, BIG, 0, 64 << 10)
    res = read(os.path.join(m.path, BIG), 0, 64 << 10, deadline=30)
    assert change.fired >= 1, srv.requests(BIG)
    assert res.errno == errno.EIO, res
    assert_never_wrong(res, expect, BIG)
    assert len(res.data) <= 20000


def test_weak_etag_of_same_tag_is_not_a_change(serve, mount, big):
    srv = serve(big)
    weak = srv.set_fault(BIG, "etag_weak", after=1)
    m = mount_with(mount, srv, "--readahead=0", "--block-size=64K")
    path = os.path.join(m.path, BIG)
    for off in (0, 1 * MIB, 3 * MIB):
        assert_correct(read(path, off, 4096), source(big, BIG, off, 4096), "%s@%d" % (BIG, off))
    assert weak.fired >= 2


@pytest.mark.parametrize("delta", [1000, -1])
@pytest.mark.log_allow(r"^chunk-0-1\.bin: the server says \d+ bytes, the index \d+; refusing to serve it \(EIO\)$",
                       r"^chunk-0-1\.bin bytes \d+-\d+: the server answered with Content-Range 'bytes \d+-\d+/\d+' \(EIO\)$")
def test_size_mismatch_gives_eio(serve, mount, small, delta):
    srv = serve(small)
    fault = srv.set_fault(SMALL, "wrong_total", delta=delta)
    m = mount_with(mount, srv)
    res = read(os.path.join(m.path, SMALL), deadline=15)
    assert fault.fired >= 1
    assert res.errno == errno.EIO, res
    assert res.data == b""
    assert res.elapsed < scaled(10)
    lines = log_lines(m, SMALL)
    assert lines, "no log line names %s:\n%s" % (SMALL, m.read_log())
    check_others(m, small)


@pytest.mark.parametrize("shift", [4096, 1])
@pytest.mark.log_allow(r"^chunk-[\d-]+\.bin bytes \d+-\d+: the server answered with Content-Range 'bytes \d+-\d+/\d+' \(EIO\)$")
def test_wrong_content_range_gives_eio(serve, mount, big, shift):
    srv = serve(big)
    fault = srv.set_fault(BIG, "wrong_range", shift=shift)
    m = mount_with(mount, srv, "--readahead=0", "--block-size=64K")
    path = os.path.join(m.path, BIG)
    for off in (1 * MIB + 8192, 0):
        res = read(path, off, 4096, deadline=15)
        assert res.errno == errno.EIO, "%s@%d: %r" % (BIG, off, res)
        assert res.data == b""
    assert fault.fired >= 1
    check_others(m, big, (BIG_OTHER,))


@pytest.mark.log_allow(r"^chunk-[\d-]+\.bin bytes \d+-\d+: the server does not support Range requests \(HTTP 200\) \(EIO\)$")
def test_ignored_range_never_serves_wrong_bytes(serve, mount, big):
    # A 200 with the whole object answers a request for part of it: chunkfs may
    # refuse it (EIO) or use the right part of it, never anything else.
    srv = serve(big)
    fault = srv.set_fault(BIG, "ignore_range")
    m = mount_with(mount, srv, "--readahead=0", "--block-size=64K")
    path = os.path.join(m.path, BIG)
    for off in (2 * MIB + 100, 0, 3 * MIB + 65536):
        res = read(path, off, 8192, deadline=20)
        assert res.errno in (0, errno.EIO), "%s@%d: %r" % (BIG, off, res)
        assert_never_wrong(res, source(big, BIG, off, 8192), "%s@%d" % (BIG, off))
        if res.errno == 0:
            assert len(res.data) == 8192
    assert fault.fired >= 1
    check_others(m, big, (BIG_OTHER,))


def test_ignored_range_for_whole_object(serve, mount, small):
    # Asked for the whole (small) object, a 200 with all of it is a valid answer.
    srv = serve(small)
    fault = srv.set_fault(SMALL, "ignore_range")
    m = mount_with(mount, srv)
    res = read(os.path.join(m.path, SMALL), deadline=20)
    assert fault.fired >= 1
    assert res.errno in (0, errno.EIO), res
    assert_never_wrong(res, source(small, SMALL), SMALL)
    check_others(m, small)


# -- the server itself ---------------------------------------------------------

def test_faultserver_ranges_and_faults(small):
    """The server answers ranges right and its faults fire as configured, so
    the tests above fail for chunkfs's reasons and not the server's."""
    import http.client
    name = SMALL
    data = source(small, name)
    with FaultServer(small) as srv:
        def get(rng=None):
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            c.request("GET", "/" + name, headers={"Range": rng} if rng else {})
            r = c.getresponse()
            try:
                body = r.read()
            except http.client.IncompleteRead as e:
                body = e.partial
            c.close()
            return r, body

        r, body = get("bytes=100-199")
        assert r.status == 206 and body == data[100:200]
        assert r.getheader("Content-Range") == "bytes 100-199/%d" % len(data)
        etag = r.getheader("ETag")
        r, body = get()
        assert r.status == 200 and body == data and r.getheader("ETag") == etag
        r, body = get("bytes=%d-" % len(data))
        assert r.status == 416
        srv.set_fault(name, "truncate", count=1)
        r, body = get("bytes=0-9999")
        assert body == data[:5000]
        r, body = get("bytes=0-9999")
        assert body == data[:10000]
        srv.set_fault(name, "etag_change", after=1)
        assert get("bytes=0-0")[0].getheader("ETag") == etag
        assert get("bytes=0-0")[0].getheader("ETag") != etag
        srv.set_fault(name, "wrong_range", shift=10)
        r, body = get("bytes=0-99")
        assert r.getheader("Content-Range") == "bytes 10-109/%d" % len(data) and body == data[10:110]
        srv.set_fault(name, "status", code=503, count=1)
        assert get("bytes=0-0")[0].status == 503
        assert get("bytes=0-0")[0].status == 206
        assert srv.fired(name) == 1
        assert [r.range for r in srv.requests(name)][:1] == ["bytes=100-199"]
