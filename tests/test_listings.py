"""Listings and dataset indexes from a hostile or slow server (docs/hostile.md,
"Listings and indexes"): a failed index or listing is an I/O error, never
ENOENT, and is asked again at the next lookup; a trickling listing or index
ends within (retries + 1) x timeout; a slow listing of one directory does not
hold up the others; an S3 listing that would not end is cut off with an error.

The HTTP cases run against tests/faultserver.py with its JSON autoindex (a
fault must be injected); the S3 cases against nginx answering every
ListObjectsV2 request with the same fixed page.
"""
import errno
import os
import shutil
import threading
import time

import pytest

from cfsutil import data_dir, run_until_exit, run_with_deadline, scaled, wait_for
from faultserver import FaultServer
from itemutil import errname, errno_of, read_bytes
import formats

DATASET = data_dir("litdata-mixed")
ITEMS = formats.dataset_items(DATASET)
NAMES = formats.item_names(len(ITEMS))
LAST = len(ITEMS) - 1
SHORT = ("--timeout=1", "--retries=1")      # every request ends within 2 s


@pytest.fixture
def tree(tmp_path):
    """root/ds (litdata-mixed), root/fast/ and root/slow/ (a few small files each)."""
    root = tmp_path / "www"
    shutil.copytree(DATASET, root / "ds")
    for d in ("fast", "slow"):
        (root / d).mkdir()
        for i in range(3):
            (root / d / ("f%d.bin" % i)).write_bytes(bytes([65 + i]) * (1000 + i))
    return str(root)


@pytest.fixture
def serve(tree):
    """The fault server of tree with directory listings; listed before `mount` by
    the tests, so the mount is torn down first. Stopping it ends any trickle."""
    srv = FaultServer(tree, autoindex=True).start()
    yield srv
    srv.stop()


def item_path(m, i):
    return m.file("ds", ".items", NAMES[i])


def check_items(m):
    for i in (0, LAST):
        assert read_bytes(item_path(m, i)) == ITEMS[i].data, "item %d: wrong bytes" % i


def trickle_over(srv, name, seconds):
    """A trickle fault on name whose whole body takes about seconds to send."""
    body = len(srv._autoindex(name)) if name == "" or name.endswith("/") else \
        os.path.getsize(os.path.join(srv.root, name))
    return srv.set_fault(name, "trickle", bytes=1, interval=seconds / body)


@pytest.mark.log_allow(r"^ds: \S+/ds/index\.json: HTTP 503 \(EIO\)$")
def test_failed_index_is_eio_then_asked_again(serve, mount):
    """An index.json answered 503 makes .items/N an I/O error, not a missing name;
    once the server answers again, the next lookup fetches the index and the
    items are there, byte for byte."""
    srv = serve
    srv.set_fault("ds/index.json", "status", code=503)
    m = mount(srv.url, *SHORT)
    for i in (LAST, 0):
        e = errno_of(lambda: os.stat(item_path(m, i)), "stat of item %d" % i)
        assert e == errno.EIO, "item %d with its index failing: %s (want EIO)" % (i, errname(e))
    assert srv.fired("ds/index.json") >= 2, "the failed index was not asked for again"
    srv.clear_faults()
    check_items(m)
    assert read_bytes(m.file("fast", "f1.bin")) == b"B" * 1001


@pytest.mark.log_allow(r"^ds: \S+/ds/index\.json: timed out: .* \(ETIMEDOUT\)$")
def test_trickled_index_times_out_then_recovers(serve, mount):
    """index.json sent at 4 bytes/s (fast enough for the stall timeout) fails the
    lookup with ETIMEDOUT within the deadline of 2 s; the next lookup, the server
    well again, shows the items."""
    srv = serve
    srv.set_fault("ds/index.json", "trickle", bytes=1, interval=0.25)
    m = mount(srv.url, *SHORT)
    e = errno_of(lambda: os.stat(item_path(m, LAST)), "stat of the last item",
                 timeout=20)
    assert e == errno.ETIMEDOUT, "trickled index: %s (want ETIMEDOUT)" % errname(e)
    assert "ds/index.json" in m.read_log() and "timed out" in m.read_log(), m.read_log()
    srv.clear_faults()
    check_items(m)


@pytest.mark.log_allow(r"^slow: \S+/slow/: timed out: .* \(ETIMEDOUT\)$")
def test_trickled_listing_times_out_then_recovers(serve, mount):
    """A directory listing sent at 4 bytes/s ends in ETIMEDOUT within the
    deadline, is not remembered as an empty directory, and lists once the server
    is well."""
    srv = serve
    srv.set_fault("slow/", "trickle", bytes=1, interval=0.25)
    m = mount(srv.url, *SHORT)
    e = errno_of(lambda: os.listdir(m.file("slow")), "listdir of slow/", timeout=20)
    assert e == errno.ETIMEDOUT, "trickled listing: %s (want ETIMEDOUT)" % errname(e)
    srv.clear_faults()
    assert sorted(os.listdir(m.file("slow"))) == ["f0.bin", "f1.bin", "f2.bin"]
    assert read_bytes(m.file("slow", "f2.bin")) == b"C" * 1002


def test_slow_listing_does_not_block_other_directories(serve, mount):
    """While one directory's listing trickles in (well within the deadline),
    lookups, listings and reads in other directories are answered: all of them
    before the slow listing's last byte is sent. The slow listing then completes
    with the right names."""
    srv = serve
    m = mount(srv.url)
    trickle_over(srv, "slow/", scaled(15))
    box = {}
    slow = threading.Thread(target=lambda: box.update(names=os.listdir(m.file("slow"))),
                            name="slow listdir", daemon=True)
    slow.start()
    wait_for(lambda: srv.requests("slow/"), scaled(10), "the request for slow/")
    assert sorted(run_with_deadline(lambda: os.listdir(m.file("fast")), scaled(60),
                                    "listdir of fast/")) == ["f0.bin", "f1.bin", "f2.bin"]
    assert run_with_deadline(lambda: read_bytes(m.file("fast", "f0.bin")), scaled(60),
                             "read of fast/f0.bin") == b"A" * 1000
    assert run_with_deadline(lambda: read_bytes(item_path(m, LAST)), scaled(60),
                             "read of the last item") == ITEMS[LAST].data
    assert not srv.requests("slow/")[0].done, \
        "the other directories were answered only after the slow listing ended"
    slow.join(scaled(60))
    assert not slow.is_alive(), "the slow listing did not end"
    assert sorted(box["names"]) == ["f0.bin", "f1.bin", "f2.bin"]


def test_trickled_root_listing_fails_the_mount(tree, chunkfs_bin, tmp_path):
    """The root's listing trickled at 4 bytes/s (fast enough for the stall timeout):
    the mount command fails within the deadline with one line saying it timed out,
    instead of waiting for the whole listing."""
    with FaultServer(tree, autoindex=True) as srv:
        srv.set_fault("", "trickle", bytes=1, interval=0.25)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        argv = [chunkfs_bin, "-f", "--cache-dir=%s" % (tmp_path / "cache"), *SHORT,
                srv.url, str(mnt)]
        rc, stderr, _ = run_until_exit(argv, None, str(mnt), timeout=20)
    assert rc != 0, stderr
    assert "timed out" in stderr, stderr


# --------------------------------------------------------------------------
# S3: a listing of many pages has one deadline in all

# A listing's deadline is cfs_fetch_read_bound_ms(): (retries + 1) x (connect timeout
# + timeout + 1 s) + retries x max(timeout, 5 s) + 1 s; 4 s with these options, each
# request ending within (retries + 1) x timeout = 1 s.
PAGED = ("--connect-timeout=1", "--timeout=1", "--retries=0")
PAGED_BOUND = 4
SLOW_KEYS = 40


@pytest.mark.log_allow(r"^slow: s3://bkt/p/: listing of /slow: not complete by its deadline: "
                       r".*: timed out: .* \(ETIMEDOUT\)$")
def test_paged_listing_has_a_total_deadline(tmp_path, mount):
    """An S3 listing of 20 pages of 2 keys, each page trickled in about 0.6 s (well
    within the 1 s a request may take): the lookup fails with ETIMEDOUT once the
    listing's deadline passed (4 s), instead of after all the pages (about 10 s;
    the deadline was per page before). Meanwhile another directory lists and reads;
    the failure is not remembered: the listing is whole once the server is fast."""
    root = tmp_path / "www"
    for d, count in (("fast", 3), ("slow", SLOW_KEYS)):
        (root / "bkt" / "p" / d).mkdir(parents=True)
        for i in range(count):
            (root / "bkt" / "p" / d / ("k%02d.bin" % i)).write_bytes(bytes([65 + i % 26]) * 100)
    with FaultServer(str(root), s3_page_keys=2) as srv:
        page = len(srv._s3_page("bkt/", "p/slow/", 0))
        trickle = srv.set_fault("bkt/p/slow/", "trickle", bytes=-(-page // 5), interval=0.12)
        m = mount("s3://bkt/p/", "--endpoint=" + srv.url.rstrip("/"), "--region=us-east-1",
                  "--s3-addressing=path", "--no-sign-request", *PAGED)
        box = {}

        def slow_lookup():
            start = time.monotonic()
            box["errno"] = errno_of(lambda: os.stat(m.file("slow", "k00.bin")), "stat in slow/",
                                    timeout=60)
            box["seconds"] = time.monotonic() - start
        slow = threading.Thread(target=slow_lookup, name="slow lookup", daemon=True)
        slow.start()
        wait_for(lambda: trickle.fired, scaled(10), "the listing of slow/")
        assert sorted(run_with_deadline(lambda: os.listdir(m.file("fast")), scaled(10),
                                        "listdir of fast/")) == ["k00.bin", "k01.bin", "k02.bin"]
        assert read_bytes(m.file("fast", "k02.bin")) == b"C" * 100
        assert slow.is_alive(), "the slow listing ended before the other directory was listed"
        slow.join(scaled(60))
        assert not slow.is_alive(), "the slow lookup did not end"
        assert box["errno"] == errno.ETIMEDOUT, \
            "slow lookup: %s after %.1f s (want ETIMEDOUT)" % (errname(box["errno"]),
                                                               box["seconds"])
        assert box["seconds"] <= PAGED_BOUND + scaled(3), \
            "the slow lookup failed after %.1f s, past the bound of %d s" % (box["seconds"],
                                                                             PAGED_BOUND)
        srv.clear_faults()
        assert len(os.listdir(m.file("slow"))) == SLOW_KEYS
        assert read_bytes(m.file("slow", "k39.bin")) == b"N" * 100


# --------------------------------------------------------------------------
# S3: every ListObjectsV2 request answered with the same page


def s3_page(entries, token):
    """A truncated ListObjectsV2 page of prefix p/ with entries keys and the
    continuation token token (nginx syntax: may name a variable)."""
    keys = "".join("<Contents><Key>p/k%d.bin</Key><ETag>\\\"e\\\"</ETag><Size>10</Size>"
                   "</Contents>" % i for i in range(entries))
    return ("<?xml version=\\\"1.0\\\" encoding=\\\"UTF-8\\\"?><ListBucketResult><Name>bkt</Name>"
            "<Prefix>p/</Prefix><IsTruncated>true</IsTruncated>%s"
            "<NextContinuationToken>%s</NextContinuationToken></ListBucketResult>"
            % (keys, token))


def listing_requests(srv):
    return [r for r in srv.requests() if r["request"].startswith("GET /bkt/?")]


def mount_s3_endless(chunkfs_bin, nginx, tmp_path, entries, token, *args):
    """Mount s3://bkt/p/ from nginx answering every listing with s3_page(); the
    command must fail: returns its stderr."""
    www = tmp_path / "www"
    (www / "bkt").mkdir(parents=True)
    conf = ("        location = /bkt/ { default_type application/xml; return 200 \"%s\"; }\n"
            % s3_page(entries, token))
    srv = nginx(str(www), extra_conf=conf)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = [chunkfs_bin, "-f", "--cache-dir=%s" % (tmp_path / "cache"),
            "--endpoint=" + srv.url.rstrip("/"), "--region=us-east-1", "--s3-addressing=path",
            "--no-sign-request", *args, "s3://bkt/p/", str(mnt)]
    rc, stderr, _ = run_until_exit(argv, None, str(mnt), timeout=30)
    assert rc != 0, "chunkfs mounted an endless listing:\n%s" % stderr
    return stderr, srv


def test_s3_repeated_token_ends_the_listing(chunkfs_bin, nginx, tmp_path):
    """A page that names the token it was asked with again: the listing (here the
    root's, so the mount) fails at the second page instead of looping."""
    stderr, srv = mount_s3_endless(chunkfs_bin, nginx, tmp_path, 2, "same")
    assert "NextContinuationToken came back" in stderr, stderr
    assert len(listing_requests(srv)) == 2, srv.requests()


@pytest.mark.parametrize("entries,why", [(40, "more entries"), (0, "more pages")])
def test_s3_endless_listing_is_bounded(chunkfs_bin, nginx, tmp_path, entries, why):
    """Every page truncated with a fresh token ($request_id): the listing fails once
    it holds more than --max-dir-entries entries, or, with empty pages, after more
    pages than that many entries can need (100 / 100 + 10). (nginx takes a page of
    at most 4 KiB in its configuration: 40 keys.)"""
    stderr, srv = mount_s3_endless(chunkfs_bin, nginx, tmp_path, entries, "$request_id",
                                   "--max-dir-entries=100")
    assert why + " than --max-dir-entries allows" in stderr, stderr
    pages = len(listing_requests(srv))
    assert pages <= 11, "%d pages asked for" % pages


# --------------------------------------------------------------------------
# sizing chunks from the item view: never in a thread that answers reads

ZSTD = data_dir("litdata-mixed-zstd")


# The stalled HEAD ends in an empty reply, or (slower, under the sanitizers) first in
# libcurl's low-speed timeout: the sizing of a view reports either as EIO.
@pytest.mark.log_allow(r"^chunk-[\d-]+\.zstd\.bin: \S+: (Empty reply from server|timed out: .*) "
                       r"\(EIO\)$")
def test_chunk_head_never_holds_an_answer(tmp_path, mount):
    """A zstd dataset mounted through its index.json alone: the index gives no
    compressed sizes, so each chunk is sized by a HEAD before its header is read.
    Opening the last item of chunk 0, then the first of chunk 1 (items in order,
    near a chunk's end) gets chunk 2 on its way from the thread that answers the
    open once chunk 1's header is in; chunk 2's HEAD stalls. The open, and a
    read of another chunk, are answered while that HEAD still stalls; once it
    failed, chunk 2's items are read right."""
    items = formats.dataset_items(ZSTD)
    names = formats.item_names(len(items))
    chunks = list(dict.fromkeys(it.chunk for it in items))   # in dataset order
    last0 = max(it.index for it in items if it.chunk == chunks[0])
    first2 = min(it.index for it in items if it.chunk == chunks[2])
    with FaultServer(ZSTD) as srv:
        stall = srv.set_fault(chunks[2], "stall", headers=False, count=1, method="HEAD",
                              seconds=scaled(10))
        m = mount(srv.url)
        assert read_bytes(m.file(".items", names[last0])) == items[last0].data
        assert read_bytes(m.file(".items", names[last0 + 1])) == items[last0 + 1].data
        wait_for(lambda: stall.fired, scaled(10), "the HEAD of %s" % chunks[2])
        assert read_bytes(m.file(chunks[3])) == \
            open(os.path.join(ZSTD, chunks[3]), "rb").read()
        head = [r for r in srv.requests(chunks[2]) if r.method == "HEAD"][0]
        assert not head.done, "reads were answered only after the HEAD of %s ended" % chunks[2]
        wait_for(lambda: head.done, scaled(30), "the stalled HEAD to end")
        assert read_bytes(m.file(".items", names[first2])) == items[first2].data
        m.unmount()
