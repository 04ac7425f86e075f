""".chunkfs/metrics: the counters of .chunkfs/stats in the Prometheus text
exposition format 0.0.4, parsed with prometheus_client's own parser."""
import os
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cfsutil import (free_port, index_chunks, is_mounted, run_with_deadline, scaled,
                     source_sha256, wait_for)
from spillutil import read_direct

# (sample name, tier label or None) -> the .chunkfs/stats key with its value.
COUNTERS = {
    ("chunkfs_reads_total", None): "reads",
    ("chunkfs_read_errors_total", None): "read_errors",
    ("chunkfs_served_bytes_total", None): "bytes_served",
    ("chunkfs_fetched_bytes_total", None): "bytes_fetched",
    ("chunkfs_readahead_bytes_total", None): "readahead_bytes",
    ("chunkfs_requests_total", None): "requests",
    ("chunkfs_requests_failed_total", None): "requests_failed",
    ("chunkfs_retries_total", None): "retries",
    ("chunkfs_cache_hits_total", "memory"): "mem_hits",
    ("chunkfs_cache_hits_total", "disk"): "disk_hits",
    ("chunkfs_cache_misses_total", "memory"): "mem_misses",
    ("chunkfs_cache_misses_total", "disk"): "disk_misses",
    ("chunkfs_evictions_total", "memory"): "mem_evictions",
    ("chunkfs_evictions_total", "disk"): "disk_evictions",
    ("chunkfs_decompressed_bytes_total", None): "decompressed_bytes",
    ("chunkfs_chunk_headers_total", None): "chunk_headers",
    ("chunkfs_spills_total", None): "spills",
    ("chunkfs_spill_errors_total", None): "spill_errors",
    ("chunkfs_checksum_failures_total", None): "checksum_failures",
    ("chunkfs_validations_total", None): "validations",
    ("chunkfs_errors_total", None): "errors",
    ("chunkfs_opens_total", None): "opens",
    ("chunkfs_cache_hits_total", "shared"): "shared_hits",
    ("chunkfs_cache_misses_total", "shared"): "shared_misses",
    ("chunkfs_shared_stores_total", None): "shared_stores",
    ("chunkfs_shared_store_failures_total", None): "shared_store_failures",
    ("chunkfs_shared_store_drops_total", None): "shared_store_drops",
    ("chunkfs_shared_checksum_failures_total", None): "shared_checksum_failures",
    ("chunkfs_shared_timeouts_total", None): "shared_timeouts",
    ("chunkfs_shared_read_bytes_total", None): "shared_bytes_read",
}
GAUGES = {
    ("chunkfs_cache_bytes", "memory"): "mem_bytes",
    ("chunkfs_cache_bytes", "disk"): "disk_bytes",
    ("chunkfs_cache_blocks", "memory"): "mem_blocks",
    ("chunkfs_cache_blocks", "disk"): "disk_blocks",
    ("chunkfs_cache_capacity_bytes", "memory"): "mem_cap",
    ("chunkfs_cache_capacity_bytes", "disk"): "disk_cap",
    ("chunkfs_mem_idle_bytes", None): "mem_idle_bytes",
    ("chunkfs_reads_parked", None): "reads_parked",
    ("chunkfs_zstd_streams", None): "zstd_streams",
    ("chunkfs_nodes", None): "nodes",
    ("chunkfs_objects", None): "objects",
    ("chunkfs_views", None): "views",
    ("chunkfs_view_bytes", None): "view_bytes",
}
# Keys of .chunkfs/stats derived from the others: Prometheus computes them from the series.
DERIVED = {"version", "ttfb_ms_p50", "ttfb_ms_p99", "read_amplification", "mem_hit_ratio",
           "disk_hit_ratio", "shared_hit_ratio"}
TTFB = "chunkfs_time_to_first_byte_seconds"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def read_metrics(m):
    """{(sample name, tier or le label or None): value} and {family name: type} of
    .chunkfs/metrics; the parser raises on any line the format does not allow."""
    with open(m.file(".chunkfs", "metrics"), encoding="utf-8") as f:
        return parse_metrics(f.read())


def parse_metrics(text):
    """read_metrics' result for the text of .chunkfs/metrics or of a scrape."""
    assert text.endswith("\n")
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, "no HELP for %s" % family.name
        types[family.name] = family.type
        for s in family.samples:
            label = s.labels.get("tier", s.labels.get("le"))
            assert (s.name, label) not in samples, "%s%s twice" % (s.name, s.labels)
            samples[(s.name, label)] = s.value
    return samples, types


def read_quiet(m):
    """.chunkfs/stats and .chunkfs/metrics read between two equal reads of
    .chunkfs/stats, so that no counter or gauge moved while metrics was read;
    tries until scaled(20) s pass (readahead and spills finish in the background)."""
    def attempt():
        before = m.stats()
        samples, types = read_metrics(m)
        return (before, samples, types) if m.stats() == before else None
    return wait_for(attempt, scaled(20), "stats holding still around a read of metrics")


def read_chunk(m, src, name, size):
    assert read_direct(m.file(name), size) == source_sha256(os.path.join(src, name)), \
        "WRONG BYTES in %s" % name
    return size


def test_metrics_match_stats(nginx, mount, big_dataset):
    """Every counter and gauge of .chunkfs/stats has its series, equal to it,
    after a chunk was read twice through a memory tier too small for it (so
    both tiers' series count something), and the bytes served are the bytes
    the test read, each byte checked against the source."""
    m = mount(nginx(big_dataset).url, "--mem-cache=16M", "--disk-cache=1G")
    name, size = index_chunks(big_dataset)[0]
    served = read_chunk(m, big_dataset, name, size) + read_chunk(m, big_dataset, name, size)
    stats, samples, types = read_quiet(m)

    covered = set(COUNTERS.values()) | set(GAUGES.values()) | DERIVED
    assert covered == set(stats), "stats keys without a series: %s" % (set(stats) - covered)
    for key, stat in list(COUNTERS.items()) + list(GAUGES.items()):
        assert samples[key] == stats[stat], (key, samples[key], stat, stats[stat])
    for (sample, _), _ in COUNTERS.items():
        assert types[sample[:-len("_total")]] == "counter", sample
    for (sample, _), _ in GAUGES.items():
        assert types[sample] == "gauge", sample
    assert samples[("chunkfs_served_bytes_total", None)] == served
    assert samples[("chunkfs_cache_hits_total", "disk")] > 0
    assert samples[("chunkfs_evictions_total", "memory")] > 0
    assert samples[("chunkfs_build_info", None)] == 1
    check_ttfb(samples, types, stats)


def check_ttfb(samples, types, stats):
    """The histogram is cumulative, ends at +Inf with its count, and puts
    .chunkfs/stats' median in the bucket where half the count is reached."""
    assert types[TTFB] == "histogram"
    bounds = sorted((float(le), v) for (n, le), v in samples.items() if n == TTFB + "_bucket")
    counts = [v for _, v in bounds]
    assert bounds[-1][0] == float("inf")
    assert counts == sorted(counts), "buckets are not cumulative: %s" % bounds
    count = samples[(TTFB + "_count", None)]
    assert counts[-1] == count
    assert 0 < count <= stats["requests"]
    assert samples[(TTFB + "_sum", None)] > 0
    rank = min(max(int(count * 0.5 + 0.5), 1), count)
    i = next(i for i, c in enumerate(counts) if c >= rank)
    p50 = stats["ttfb_ms_p50"] / 1000
    assert p50 <= bounds[i][0], (p50, bounds)
    assert i == 0 or p50 > bounds[i - 1][0], (p50, bounds)


def test_counters_bracketed_while_reading(nginx, mount, big_dataset):
    """Read while a chunk streams in: each counter in .chunkfs/metrics lies
    between .chunkfs/stats read just before and just after it (counters only
    grow); the caps, which nothing changes, are equal."""
    m = mount(nginx(big_dataset).url, "--mem-cache=16M", "--disk-cache=1G")
    name, size = index_chunks(big_dataset)[1]
    failures = []

    def reader():
        try:
            read_chunk(m, big_dataset, name, size)
        except AssertionError as e:
            failures.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    for _ in range(1000):
        before = m.stats()
        samples, _ = read_metrics(m)
        after = m.stats()
        for key, stat in COUNTERS.items():
            assert before[stat] <= samples[key] <= after[stat], (key, before[stat],
                                                                 samples[key], after[stat])
        for key in [("chunkfs_cache_capacity_bytes", "memory"),
                    ("chunkfs_cache_capacity_bytes", "disk")]:
            assert samples[key] == before[GAUGES[key]] == after[GAUGES[key]], key
        if not t.is_alive():
            break
    t.join(scaled(60))
    assert not t.is_alive(), "the read of %s did not finish" % name
    assert not failures, failures


# --------------------------------------------------------------------------
# --metrics-addr: GET /metrics over HTTP

# No proxy from the environment between the test and 127.0.0.1.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(port, path="/metrics", method="GET", data=None, host="127.0.0.1",
                 timeout=None):
    """(status, headers, body) of one request to the metrics server of a mount."""
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), data=data,
                                 method=method)
    try:
        with HTTP.open(req, timeout=timeout or scaled(10)) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def listening_ports(pid):
    """The TCP ports that process pid listens on: its socket descriptors found
    in LISTEN state (0A) in its network namespace's /proc/PID/net/tcp and tcp6."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = []
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def scrape_quiet(m, port):
    """(.chunkfs/stats, the text of .chunkfs/metrics, the scrape's status,
    headers and body), all between two equal reads of .chunkfs/stats."""
    def attempt():
        before = m.stats()
        with open(m.file(".chunkfs", "metrics"), encoding="utf-8") as f:
            text = f.read()
        status, headers, body = http_request(port)
        return (before, text, status, headers, body) if m.stats() == before else None
    return wait_for(attempt, scaled(20), "stats holding still around a scrape")


def test_http_scrape_matches_stats(nginx, mount, small):
    """A daemon (it forked after binding) serves GET /metrics on the port of
    --metrics-addr: the body is the text of .chunkfs/metrics, with the
    format's Content-Type, and every series equals .chunkfs/stats read around
    the scrape, after the test read chunks whose bytes it checked against
    the source. The daemon listens on that port and no other."""
    port = free_port()
    m = mount(nginx(small).url, "--metrics-addr=127.0.0.1:%d" % port, foreground=False)
    served = sum(read_chunk(m, small, name, size) for name, size in index_chunks(small)[:3])
    stats, text, status, headers, body = scrape_quiet(m, port)

    assert status == 200
    assert headers["Content-Type"] == METRICS_TYPE
    assert body.decode("utf-8") == text
    samples, _ = parse_metrics(body.decode("utf-8"))
    for key, stat in list(COUNTERS.items()) + list(GAUGES.items()):
        assert samples[key] == stats[stat], (key, samples[key], stat, stats[stat])
    assert samples[("chunkfs_served_bytes_total", None)] == served
    assert listening_ports(m.pid) == [port]


def test_http_paths_and_methods(nginx, mount, small):
    """-o metrics-addr=:PORT listens on 127.0.0.1: HEAD /metrics answers the
    headers of GET without a body, another path 404, another method 405 with
    Allow (RFC 9110 section 15.5.6); the server still answers GET after them."""
    port = free_port()
    m = mount(nginx(small).url, "-o", "metrics-addr=:%d" % port)
    status, headers, body = http_request(port, method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Type"] == METRICS_TYPE
    assert int(headers["Content-Length"]) > 0
    for path in ("/other", "/", "/metrics/", "/metricsx", "/.chunkfs/metrics"):
        assert http_request(port, path)[0] == 404, path
    for method, data in (("POST", b"x=1"), ("PUT", b"x"), ("DELETE", None), ("OPTIONS", None)):
        status, headers, _ = http_request(port, method=method, data=data)
        assert status == 405, method
        assert headers["Allow"] == "GET, HEAD", method
    status, _, body = http_request(port)
    assert status == 200
    parse_metrics(body.decode("utf-8"))
    assert listening_ports(m.pid) == [port]


def test_no_metrics_addr_listens_nowhere(nginx, mount, small):
    """Without --metrics-addr the daemon has no listening socket."""
    m = mount(nginx(small).url, foreground=False)
    assert listening_ports(m.pid) == []


def test_http_port_in_use_refuses_to_mount(nginx, mount, small):
    """A port another socket listens on fails the mount before it contacts
    the server: the command exits non-zero with one line naming the address,
    and nothing is mounted. So does an address that is not one."""
    server = nginx(small)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        m = mount(server.url, "--metrics-addr=127.0.0.1:%d" % port, foreground=False,
                  expect_ok=False)
    bad = mount(server.url, "--metrics-addr=localhost:%d" % port, foreground=False,
                expect_ok=False)
    for mnt, line in ((m, "chunkfs: --metrics-addr 127.0.0.1:%d: Address already in use" % port),
                      (bad, "chunkfs: --metrics-addr 'localhost:%d': not [HOST:]PORT" % port)):
        assert mnt.returncode not in (0, None)
        assert not is_mounted(mnt.path)
        lines = mnt.read_log().splitlines()
        assert len(lines) == 1 and lines[0].startswith(line), lines
    assert server.requests() == []


@pytest.mark.budget(90)
def test_http_idle_clients(nginx, mount, small):
    """Clients that connect and send nothing (slowloris), more of them than
    the server takes at once (8), do not hold up reads through the mount,
    and leave no room for a scrape until they go; one
    does not keep another client from scraping; the server closes it after
    its idle timeout (10 s); one connected at the unmount does not hold up
    the unmount, and the port is closed after it."""
    port = free_port()
    m = mount(nginx(small).url, "--metrics-addr=127.0.0.1:%d" % port)
    name, size = index_chunks(small)[0]
    flood = [socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
             for _ in range(20)]
    try:
        read_chunk(m, small, name, size)
        # the 8 connections the server takes at once are held: no room for a scrape
        with pytest.raises((urllib.error.URLError, ConnectionError, TimeoutError)):
            http_request(port, timeout=scaled(3))
    finally:
        for s in flood:
            s.close()
    idle = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
    with idle:
        # within the idle timeout: the scrape is served beside the idle client, not after it
        wait_for(lambda: http_request(port, timeout=scaled(3))[0] == 200, scaled(20),
                 "a scrape beside an idle client")
        idle.settimeout(scaled(10) + 10)
        assert idle.recv(1) == b"", "the idle client got bytes"
    late = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
    with late:
        problems = run_with_deadline(m.unmount, scaled(30), "unmount beside an idle client")
        assert problems == []
        assert late.recv(1) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=scaled(5)).close()


@pytest.mark.log_allow(r"^--metrics-addr 0\.0\.0\.0:\d+: the metrics are reachable from the "
                       r"network")
def test_http_any_address_warns(nginx, mount, small):
    """--metrics-addr=0.0.0.0:PORT serves, and says once that the metrics are
    reachable from the network; a loopback address does not (the teardown of
    the other tests fails on any warning)."""
    port = free_port()
    m = mount(nginx(small).url, "--metrics-addr=0.0.0.0:%d" % port)
    assert http_request(port)[0] == 200
    assert m.read_log().count("reachable from the network") == 1


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_http_ipv6(nginx, mount, small):
    """--metrics-addr=[::1]:PORT serves over IPv6, on ::1 only."""
    port = free_port()
    m = mount(nginx(small).url, "--metrics-addr=[::1]:%d" % port)
    status, _, body = http_request(port, host="[::1]")
    assert status == 200
    parse_metrics(body.decode("utf-8"))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=scaled(5)).close()
    assert listening_ports(m.pid) == [port]
