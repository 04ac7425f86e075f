""".chunkfs/metrics: the counters of .chunkfs/stats in the Prometheus text
exposition format 0.0.4, parsed with prometheus_client's own parser."""
import os
import threading

from prometheus_client.parser import text_string_to_metric_families

from cfsutil import index_chunks, scaled, source_sha256, wait_for
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
}
GAUGES = {
    ("chunkfs_cache_bytes", "memory"): "mem_bytes",
    ("chunkfs_cache_bytes", "disk"): "disk_bytes",
    ("chunkfs_cache_blocks", "memory"): "mem_blocks",
    ("chunkfs_cache_blocks", "disk"): "disk_blocks",
    ("chunkfs_cache_capacity_bytes", "memory"): "mem_cap",
    ("chunkfs_cache_capacity_bytes", "disk"): "disk_cap",
    ("chunkfs_reads_parked", None): "reads_parked",
    ("chunkfs_zstd_streams", None): "zstd_streams",
    ("chunkfs_nodes", None): "nodes",
    ("chunkfs_objects", None): "objects",
    ("chunkfs_views", None): "views",
    ("chunkfs_view_bytes", None): "view_bytes",
}
# Keys of .chunkfs/stats derived from the others: Prometheus computes them from the series.
DERIVED = {"version", "ttfb_ms_p50", "ttfb_ms_p99", "read_amplification", "mem_hit_ratio",
           "disk_hit_ratio"}
TTFB = "chunkfs_time_to_first_byte_seconds"


def read_metrics(m):
    """{(sample name, tier or le label or None): value} and {family name: type} of
    .chunkfs/metrics; the parser raises on any line the format does not allow."""
    with open(m.file(".chunkfs", "metrics"), encoding="utf-8") as f:
        text = f.read()
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
