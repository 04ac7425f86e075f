""".chunkfs/stats: a JSON object with every counter, sane values."""
import json
import mmap
import os
import subprocess
import threading

from cfsutil import (KiB, MiB, data_dir, index_chunks, open_direct, scaled, sha256_file,
                      source_sha256)

INT_KEYS = ["reads", "read_errors", "bytes_served", "bytes_fetched", "readahead_bytes",
            "requests", "requests_failed", "retries", "mem_hits", "mem_misses",
            "mem_evictions", "mem_bytes", "mem_blocks", "mem_cap", "reads_parked"]
FLOAT_KEYS = ["ttfb_ms_p50", "ttfb_ms_p99", "read_amplification"]


def check_shape(st):
    assert isinstance(st, dict)
    missing = [k for k in INT_KEYS + FLOAT_KEYS if k not in st]
    assert not missing, "stats lack %s" % missing
    for k in INT_KEYS:
        assert isinstance(st[k], int) and not isinstance(st[k], bool), (k, st[k])
        assert st[k] >= 0, (k, st[k])
    for k in FLOAT_KEYS:
        assert isinstance(st[k], (int, float)) and not isinstance(st[k], bool), (k, st[k])
        assert st[k] >= 0, (k, st[k])


def test_stats_fresh_mount(nginx, mount):
    m = mount(nginx(data_dir("litdata-mixed")).url, "--mem-cache=48M")
    assert "stats" in os.listdir(m.file(".chunkfs"))
    st = m.stats()
    check_shape(st)
    assert st["mem_cap"] == 48 * MiB
    assert st["bytes_fetched"] == 0, "the index fetched at mount is not counted"
    assert st["mem_bytes"] == 0 and st["mem_blocks"] == 0
    assert st["reads_parked"] == 0
    assert st["read_errors"] == 0 and st["requests_failed"] == 0 and st["retries"] == 0


def test_stats_after_reads(nginx, mount, big_dataset):
    m = mount(nginx(big_dataset).url, "--mem-cache=96M")
    name, size = index_chunks(big_dataset)[0]
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(big_dataset, name))
    st = m.stats()
    check_shape(st)
    assert st["reads"] >= 1
    assert st["bytes_served"] >= size
    assert st["bytes_fetched"] >= size
    assert st["requests"] >= 1
    assert st["mem_misses"] >= 1
    assert st["mem_cap"] == 96 * MiB
    assert 0 < st["mem_bytes"] <= st["mem_cap"]
    assert st["mem_blocks"] >= 1
    assert st["reads_parked"] == 0
    assert st["read_errors"] == 0 and st["requests_failed"] == 0 and st["retries"] == 0
    assert st["ttfb_ms_p50"] > 0
    assert st["ttfb_ms_p99"] >= st["ttfb_ms_p50"]
    ratio = st["bytes_fetched"] / st["bytes_served"]
    assert abs(st["read_amplification"] - ratio) <= 0.05 * ratio + 0.01, (st, ratio)
    # counters only grow
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(big_dataset, name))
    later = m.stats()
    for k in ["reads", "bytes_served", "bytes_fetched", "requests", "mem_hits", "mem_misses"]:
        assert later[k] >= st[k], k


def test_bytes_fetched_is_counted_before_the_read_returns(nginx, mount, big_dataset):
    """bytes_fetched covers every byte a read has returned, checked after each
    of 128 reads of blocks never read before. The fetcher counts a response's
    bytes before they can wake a reader; the window the other order left is
    too narrow to hit on demand (CI hit it once), so this checks the rule
    often rather than proving it."""
    m = mount(nginx(big_dataset).url, "--block-size=64K", "--readahead=0", "--disk-cache=0")
    name, size = index_chunks(big_dataset)[0]
    buf = mmap.mmap(-1, 64 * KiB)
    fd = open_direct(m.file(name))
    served = 0
    try:
        with open(os.path.join(big_dataset, name), "rb") as src:
            for off in range(0, min(size, 128 * 512 * KiB), 512 * KiB):
                n = os.preadv(fd, [buf], off)
                src.seek(off)
                assert n > 0 and buf[:n] == src.read(n), "WRONG BYTES in %s at %d" % (name, off)
                served += n
                fetched = m.stats()["bytes_fetched"]
                assert fetched >= served, "read %d bytes up to %d, bytes_fetched %d" % (
                    served, off, fetched)
    finally:
        os.close(fd)
        buf.close()
    assert served == 128 * 64 * KiB


def test_stats_readable_with_cat_and_small_reads(nginx, mount):
    """The file's length changes as counters grow: cat, small reads and a
    second open all see whole JSON documents."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url)
    path = m.file(".chunkfs", "stats")
    first = subprocess.run(["cat", path], capture_output=True, timeout=scaled(30), check=True)
    check_shape(json.loads(first.stdout))
    for name, _ in index_chunks(src):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name))
    with open(path, "rb", buffering=0) as f:
        pieces = []
        for _ in range(1 << 16):  # bounded
            piece = f.read(7)
            if not piece:
                break
            pieces.append(piece)
    st = json.loads(b"".join(pieces))
    check_shape(st)
    assert st["bytes_served"] >= sum(size for _, size in index_chunks(src))
    again = subprocess.run(["cat", path], capture_output=True, timeout=scaled(30), check=True)
    st2 = json.loads(again.stdout)
    check_shape(st2)
    assert st2["bytes_served"] >= st["bytes_served"]
    # the file is open for reading only
    with open(path, "rb") as f:
        assert json.loads(f.read())["mem_cap"] == st["mem_cap"]


def test_stats_whole_documents_while_busy(nginx, mount, big_dataset):
    """While readers keep the counters moving, every read of the stats file
    with cat or open().read() is one whole JSON document (never the head of
    one rendering followed by the tail of another)."""
    m = mount(nginx(big_dataset).url, "--mem-cache=16M", "--block-size=64K")
    path = m.file(".chunkfs", "stats")
    stop = threading.Event()
    errors = []

    def reader(name):
        try:
            for _ in range(1000):  # bounded; stopped by the event long before
                fd = os.open(m.file(name), os.O_RDONLY)
                try:
                    for off in range(0, 64 * MiB, MiB):
                        if stop.is_set():
                            return
                        os.pread(fd, 4096, off)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(n,), daemon=True)
               for n, _ in index_chunks(big_dataset)]
    for t in threads:
        t.start()
    bad = []
    try:
        for i in range(300):
            if i % 10 == 0:
                data = subprocess.run(["cat", path], capture_output=True, timeout=scaled(30),
                                      check=True).stdout
            else:
                with open(path, "rb") as f:
                    data = f.read()
            try:
                check_shape(json.loads(data))
            except ValueError as e:
                bad.append("%s: %r" % (e, data[-200:]))
    finally:
        stop.set()
        for t in threads:
            t.join(scaled(30))
    assert not errors, errors
    assert not bad, "%d of 300 reads of the stats were not one JSON document; first: %s" % (
        len(bad), bad[0])
