"""What the server sees: Range GETs that never ask for a byte twice, over
reused keep-alive connections."""
import os
import re
import threading

import pytest

from cfsutil import data_dir, index_chunks, scaled, sha256_file, source_sha256

RANGE_RE = re.compile(r"^bytes=(\d+)-(\d+)$")


def chunk_requests(srv, names):
    """Access log entries of requests for chunk files (not index.json)."""
    out = []
    for e in srv.requests():
        method, _, rest = e["request"].partition(" ")
        path = rest.split(" ")[0].lstrip("/")
        if path in names:
            out.append((method, path, e))
    return out


def test_range_gets_cover_each_byte_once(nginx, mount, big_dataset):
    """A sequential read of a chunk through a cache that holds it all: the
    ranges asked of the server cover the chunk exactly, with no overlap."""
    name, size = index_chunks(big_dataset)[3]
    srv = nginx(big_dataset)
    m = mount(srv.url, "--mem-cache=128M")
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(big_dataset, name))
    st = m.stats()
    assert m.unmount() == []          # every request has ended and is logged
    ranges = []
    for method, path, e in chunk_requests(srv, {name}):
        if method == "HEAD":
            continue
        assert method == "GET", e
        match = RANGE_RE.match(e["range"])
        assert match, "a chunk request without a single byte range: %s" % e
        assert e["status"] == "206", e
        lo, hi = int(match.group(1)), int(match.group(2)) + 1
        assert int(e["body_bytes_sent"]) == hi - lo, e
        ranges.append((lo, hi))
    ranges.sort()
    assert ranges, "no request for %s in the access log" % name
    for (lo1, hi1), (lo2, hi2) in zip(ranges, ranges[1:]):
        assert hi1 <= lo2, "bytes %d-%d were asked twice" % (lo2, min(hi1, hi2))
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert sum(hi - lo for lo, hi in ranges) == size
    assert st["bytes_fetched"] == size


def test_keepalive_connections_are_reused(nginx, mount):
    src = data_dir("litdata-mixed")
    names = {n for n, _ in index_chunks(src)}
    srv = nginx(src)
    m = mount(srv.url, "--max-connections=2", "--block-size=64K", "--mem-cache=4M")
    for name in sorted(names):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name)), name
    assert m.unmount() == []
    reqs = chunk_requests(srv, names)
    assert len(reqs) >= len(names)
    connections = {e["connection"] for _, _, e in reqs}
    assert len(connections) < len(reqs), "every request opened a new connection"
    assert max(int(e["connection_requests"]) for _, _, e in reqs) > 1


def max_parallel(entries):
    """Most requests in flight at one instant, from their end times (msec) and
    durations (request_time), both logged with millisecond resolution."""
    events = []
    for e in entries:
        end = float(e["msec"])
        start = end - float(e["request_time"])
        # shrink by the log's resolution so back-to-back requests do not overlap
        events += [(start + 0.0015, 1), (end - 0.0015, -1)]
    events.sort(key=lambda ev: (ev[0], ev[1]))
    cur = best = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


@pytest.mark.parametrize("limit,threads", [(1, 2), (3, 2), (5, 4)])
def test_max_connections_bounds_parallel_requests(nginx, mount, big_dataset, limit, threads):
    """Four readers at once: the server never has more requests in flight
    than --max-connections, however many fetch threads share them."""
    chunks = index_chunks(big_dataset)
    srv = nginx(big_dataset)
    m = mount(srv.url, "--max-connections=%d" % limit, "--fetch-threads=%d" % threads,
              "--mem-cache=64M")
    errors = []

    def reader(name):
        try:
            assert sha256_file(m.file(name)) == source_sha256(os.path.join(big_dataset, name))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n, _ in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(120))
    assert not any(t.is_alive() for t in threads), "readers hung"
    assert not errors, errors
    assert m.unmount() == []
    entries = [e for _, _, e in chunk_requests(srv, {n for n, _ in chunks})]
    assert entries
    assert max_parallel(entries) <= limit
