"""The fault matrix: every fault of tests/faultserver.py against the three
ways a program reads a chunkfs file, each ending in the right bytes or the
documented errno within the bound the options give (docs/hostile.md,
"Retries, back-off and time bounds").

Readers, each a child process with a deadline:
  read   one pread(2) of a whole chunk, with the kernel's readahead on, so
         that a failure is followed by the kernel's re-asks (readahead, then
         page by page); one call, so a short count is seen as one;
  item   one pread(2) of a whole item under .items/ (the chunk header is
         read first, through the same memory tier);
  mmap   the file mapped and the range copied; a failed page is SIGBUS.

Cells that tests/test_faults.py already covers for plain reads (single
faults that end in bytes, 500 always, truncation always, wrong
Content-Range, Range ignored, an ETag change on resume) run here for items
and mmap only. The bound asserted is (retries + 1) x (timeout + 1 s) plus
the back-off and a slack: a hang check, never a speed test. The 1 s is the
stall check's granularity (libcurl calls the progress callback once a
second).
"""
import email.utils
import errno
import os
import re
import signal
import time

import pytest

import formats
from cfsutil import scaled, wait_for
from test_faults import (OTHER, SMALL, assert_correct, check_others, child_errno, mount_with,
                         read, run_child, source)

TIMEOUT = 1
RETRIES = 1
BACKOFF = 0.1                  # the first retry's back-off (README.md: from 100 ms)
SLACK = 3.0
BOUND = (RETRIES + 1) * (TIMEOUT + 1) + BACKOFF + SLACK

# One pread of [off, off + size): prints the bytes, or the errno (exit 3).
PREAD = r"""
import os, sys
path, off, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    fd = os.open(path, os.O_RDONLY)
    data = os.pread(fd, size, off)
except OSError as e:
    sys.stderr.write("errno=%d\n" % e.errno)
    sys.exit(3)
sys.stdout.buffer.write(data)
"""

# Map the file and copy [off, off + size); a failed page kills it with SIGBUS.
MMAP = r"""
import mmap, os, sys
path, off, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
sys.stdout.buffer.write(m[off:off + size])
"""


class Outcome:
    def __init__(self, data, err, elapsed):
        self.data = data        # the bytes (b"" on an error)
        self.err = err          # 0, an errno, or "SIGBUS"
        self.elapsed = elapsed

    def __repr__(self):
        return "<%d bytes, err=%s, %.2f s>" % (len(self.data), errno.errorcode.get(self.err, self.err),
                                               self.elapsed)


def run_reader(script, path, size, deadline):
    """Run a reader child on [0, size) of path; a child still running after
    deadline seconds fails the test as a hang."""
    rc, out, errout, elapsed = run_child([script, path, "0", str(size)], deadline,
                                         "reader of %s" % path)
    if rc == -signal.SIGBUS:
        return Outcome(b"", "SIGBUS", elapsed)
    if rc == 3:
        return Outcome(b"", child_errno(errout), elapsed)
    assert rc == 0, "reader failed (%d): %s" % (rc, errout)
    return Outcome(out, 0, elapsed)


def target(root, reader):
    """(path below the mount, expected bytes) that reader reads: the faulty
    chunk, or an item stored in it."""
    if reader != "item":
        return SMALL, source(root, SMALL)
    items = formats.dataset_items(root)
    names = formats.item_names(len(items))
    i = next(i for i, it in enumerate(items) if it.chunk == SMALL) + 1
    return os.path.join(".items", names[i]), items[i].data


def http_date(seconds_from_now):
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


READERS = ("read", "item", "mmap")
NOT_PLAIN = ("item", "mmap")

# (cell, faults as (kind, params), readers, outcome): outcome "bytes", "error"
# or "either" (bytes or an error, never wrong bytes). Faults hit every
# request for the faulty chunk unless a count says otherwise.
CELLS = [
    ("reset-mid-body-once", [("reset", dict(count=1, keep=10000, delay=0.2))], NOT_PLAIN, "bytes"),
    ("reset-mid-body-always", [("reset", dict(keep=10000, delay=0.2))], READERS, "error"),
    ("503-once", [("status", dict(code=503, count=1))], NOT_PLAIN, "bytes"),
    ("500-always", [("status", dict(code=500))], NOT_PLAIN, "error"),
    ("503-always", [("status", dict(code=503))], READERS, "error"),
    ("429-retry-after-seconds", [("status", dict(code=429, count=1, retry_after=1))], READERS, "bytes"),
    ("503-retry-after-date", [("status", dict(code=503, count=1, retry_after="DATE+1"))], READERS,
     "bytes"),
    ("503-retry-after-past-cap", [("status", dict(code=503, retry_after=3600))], READERS, "error"),
    ("stall-mid-body-once", [("stall", dict(count=1, keep=10000, seconds=30))], NOT_PLAIN, "bytes"),
    ("stall-mid-body-always", [("stall", dict(keep=10000, seconds=30))], READERS, "error"),
    ("stall-before-headers-once", [("stall", dict(count=1, headers=False, seconds=30))], NOT_PLAIN,
     "bytes"),
    ("stall-before-headers-always", [("stall", dict(headers=False, seconds=30))], READERS, "error"),
    ("truncated-once", [("truncate", dict(count=1, keep=10000))], NOT_PLAIN, "bytes"),
    ("truncated-always", [("truncate", dict(keep=10000))], NOT_PLAIN, "error"),
    ("wrong-content-range", [("wrong_range", dict(shift=1))], NOT_PLAIN, "error"),
    ("range-ignored", [("ignore_range", dict())], NOT_PLAIN, "either"),
    ("etag-changed", [("truncate", dict(count=1, keep=10000)), ("etag_change", dict(after=1))],
     READERS, "error"),
]

ERRNOS = {errno.EIO, errno.ETIMEDOUT, "SIGBUS"}


def failure(cause):
    """The log line of a failed read of SMALL whose cause matches cause (a regex)."""
    return r"^%s bytes \d+-\d+: %s$" % (re.escape(SMALL), cause)


# The lines each cell that fails provokes (conftest.py's log_allow); the other cells log none.
CELL_LOG = {
    "reset-mid-body-always": failure(r".*; giving up after 2 attempts \(EIO\)"),
    "500-always": failure(r"HTTP 500; giving up after 2 attempts \(EIO\)"),
    "503-always": failure(r"HTTP 503; giving up after 2 attempts \(EIO\)"),
    "503-retry-after-past-cap": failure(r"HTTP 503 with Retry-After 3600 s, longer than "
                                        r"--timeout=1 s; failing instead of waiting \(EIO\)"),
    "stall-mid-body-always": failure(r"no byte for 1 s; giving up after 2 attempts \(ETIMEDOUT\)"),
    "stall-before-headers-always": failure(r"no byte for 1 s; giving up after 2 attempts "
                                           r"\(ETIMEDOUT\)"),
    "truncated-always": failure(r"transfer closed with \d+ bytes remaining to read; giving up "
                                r"after 2 attempts \(EIO\)"),
    "wrong-content-range": failure(r"the server answered with Content-Range "
                                   r"'bytes \d+-\d+/\d+' \(EIO\)"),
    "range-ignored": failure(r"the server does not support Range requests \(HTTP 200\) \(EIO\)"),
    "etag-changed": r'^%s: ETag changed from "[^"]*" to "[^"]*-changed"; the object changed '
                    r'on the server \(EIO\)$' % re.escape(SMALL),
}


def add_faults(srv, faults):
    for kind, params in faults:
        params = dict(params)
        if str(params.get("retry_after")).startswith("DATE+"):
            params["retry_after"] = http_date(int(params["retry_after"].partition("+")[2]))
        srv.add_fault(SMALL, kind, **params)


def cases():
    for cell, faults, readers, outcome in CELLS:
        marks = [pytest.mark.log_allow(CELL_LOG[cell])] if cell in CELL_LOG else []
        for reader in readers:
            yield pytest.param(faults, reader, outcome, id="%s-%s" % (cell, reader), marks=marks)


@pytest.mark.parametrize("faults,reader,outcome", list(cases()))
def test_fault_matrix(serve, mount, small, faults, reader, outcome):
    srv = serve(small)
    m = mount_with(mount, srv, "--timeout=%d" % TIMEOUT, "--retries=%d" % RETRIES)
    name, expect = target(small, reader)
    add_faults(srv, faults)
    script = MMAP if reader == "mmap" else PREAD
    res = run_reader(script, m.file(name), len(expect), scaled(BOUND + 20))
    if res.err:
        assert outcome != "bytes", "%s: %r, expected the bytes" % (name, res)
        assert res.err in ERRNOS, "%s: %r, expected EIO, ETIMEDOUT or SIGBUS" % (name, res)
        assert res.elapsed <= scaled(BOUND), (
            "%s failed after %.1f s, past the bound of %.1f s for --timeout=%d --retries=%d"
            % (name, res.elapsed, scaled(BOUND), TIMEOUT, RETRIES))
    else:
        assert outcome != "error", "%s: %r, expected an error" % (name, res)
        assert len(res.data) == len(expect), "%s: a short count: %r" % (name, res)
        assert res.data == expect, "%s: WRONG BYTES served" % name
    assert m.alive(), "chunkfs died"
    check_others(m, small, (OTHER,))


@pytest.mark.parametrize("retry_after", ["2", "DATE+3"])
def test_retry_after_is_honoured(serve, mount, small, retry_after):
    """The retry of a 503 with Retry-After waits what the server asked
    (delay-seconds, or an HTTP-date), not the 100 ms back-off."""
    srv = serve(small)
    m = mount_with(mount, srv, "--timeout=5", "--retries=1")
    add_faults(srv, [("status", dict(code=503, count=1, retry_after=retry_after))])
    res = read(m.file(SMALL), deadline=20)
    assert_correct(res, source(small, SMALL), SMALL)
    reqs = [r for r in srv.requests(SMALL) if r.method == "GET"]
    first = next(r for r in reqs if "status" in r.faults)
    retry = next(r for r in reqs if r.seq > first.seq)
    gap = retry.time - first.time
    # An HTTP-date has whole seconds: DATE+3 is between 2 and 3 s away.
    assert gap >= 1.9, "retried %.2f s after a Retry-After of %s" % (gap, retry_after)


def test_backoff_starts_at_100ms(serve, mount, small):
    """Retries come after the documented back-off (100 ms, then 200 ms),
    not at the fetcher's 1 s idle poll."""
    srv = serve(small)
    m = mount_with(mount, srv, "--retries=2")
    srv.add_fault(SMALL, "status", code=503, count=2)
    res = read(m.file(SMALL), deadline=20)
    assert_correct(res, source(small, SMALL), SMALL)
    times = [r.time for r in srv.requests(SMALL) if r.method == "GET"][:3]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == 2, srv.requests(SMALL)
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19, "retried before the back-off: %r" % gaps
    assert gaps[0] < scaled(0.9) and gaps[1] < scaled(0.9), (
        "a 100-200 ms back-off took %r: retries wait for the 1 s idle poll" % gaps)


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 503; giving up after 2 attempts \(EIO\)$")
def test_failed_range_is_retried_afresh_later(serve, mount, small):
    """A failed range fails at once only briefly (1 s): once the server is
    back, a later read of it makes new attempts and gets the bytes."""
    srv = serve(small)
    m = mount_with(mount, srv, "--retries=1")
    srv.set_fault(SMALL, "status", code=503)
    res = run_reader(PREAD, m.file(SMALL), 4096, scaled(BOUND + 20))
    assert res.err == errno.EIO, res
    srv.clear_faults()
    wait_for(lambda: run_reader(PREAD, m.file(SMALL), 4096, scaled(BOUND + 20)).err == 0,
             scaled(10), "a read of %s to succeed once the server recovered" % SMALL)
    assert_correct(read(m.file(SMALL), 0, 4096), source(small, SMALL, 0, 4096), SMALL)


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 503 with Retry-After 3600 s, longer than --timeout=2 s; failing instead of waiting \(EIO\)$")
def test_retry_after_past_the_cap_fails_at_once(serve, mount, small):
    """A Retry-After longer than --timeout is not waited for, nor retried
    before it is due: the read fails with EIO after the one response."""
    srv = serve(small)
    m = mount_with(mount, srv, "--timeout=2", "--retries=3")
    srv.set_fault(SMALL, "status", code=503, retry_after=3600)
    res = run_reader(PREAD, m.file(SMALL), 4096, scaled(30))
    assert res.err == errno.EIO, res
    gets = [r for r in srv.requests(SMALL) if r.method == "GET"]
    assert len(gets) == 1, "asked to wait an hour, chunkfs sent %r" % gets
    assert any("Retry-After" in line for line in m.read_log().splitlines()), m.read_log()


@pytest.mark.parametrize("reader", ["read", "mmap"])
@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: no answer within \d+ ms, "
                       r"the bound of a read \(ETIMEDOUT\)$")
def test_trickling_body_ends_within_the_bound(serve, mount, small, reader):
    """A body sent a few bytes at a time makes progress forever, so no stall
    is ever seen: the read still fails with ETIMEDOUT (SIGBUS for mmap)
    within the bound the options give (cfs_fetch_read_bound_ms), not when
    the last byte comes minutes later, and the mount serves other objects."""
    srv = serve(small)
    m = mount_with(mount, srv, "--connect-timeout=1", "--timeout=%d" % TIMEOUT,
                   "--retries=%d" % RETRIES)
    srv.set_fault(SMALL, "trickle", bytes=16, interval=0.2)
    # (retries + 1) x (connect + timeout + 1 s) + retries x max(timeout, 5 s back-off cap) + 1 s
    bound = (RETRIES + 1) * (1 + TIMEOUT + 1) + RETRIES * max(TIMEOUT, 5) + 1
    size = len(source(small, SMALL))
    assert size / (16 / 0.2) > 4 * bound, "the trickle would end within the bound"
    res = run_reader(MMAP if reader == "mmap" else PREAD, m.file(SMALL), size,
                     scaled(bound + 20))
    assert res.err == ("SIGBUS" if reader == "mmap" else errno.ETIMEDOUT), res
    assert res.elapsed <= scaled(bound + SLACK), (
        "failed after %.1f s, past the bound of %d s" % (res.elapsed, bound))
    srv.clear_faults()
    check_others(m, small)
