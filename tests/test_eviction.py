"""Eviction policies (--eviction=lru|lfu|fifo), which order both tiers: every
policy keeps both caps and serves the right bytes, and a cyclic scan larger than
the memory tier shows how they differ (LRU and FIFO lose every block before it
comes round again; LFU keeps most of the first ones)."""
import mmap
import os
import random

import pytest

import litgen
from conftest import KiB, MiB, index_chunks, open_direct
from spillutil import DuSampler, block_files, check_all, check_block_file, du_command

POLICIES = ("lru", "lfu", "fifo")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """4 chunks of about 8 MiB."""
    out = str(tmp_path_factory.mktemp("eviction"))
    litgen.write_dataset(out, chunks=4, chunk_bytes=8 * MiB, seed=31)
    return out


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    """One chunk of 24 blocks of 1 MiB (the last one short)."""
    out = str(tmp_path_factory.mktemp("scan"))
    litgen.write_dataset(out, chunks=1, chunk_bytes=23 * MiB + 512 * KiB, seed=32)
    (name, size), = index_chunks(out)
    assert (size + MiB - 1) // MiB == 24, size
    return out, name, size


def mixed_workload(m, src, rng):
    """Sequential passes, seeded random preads, and a hot set read again and
    again in between (so that blocks differ in use counts and recency); every
    read is compared with the source."""
    sizes = dict(index_chunks(src))
    names = sorted(sizes)
    srcs = {n: open(os.path.join(src, n), "rb") for n in names}
    fds = {n: open_direct(m.file(n)) for n in names}
    hot = [(rng.choice(names), rng.randrange(0, 6 * MiB), rng.randint(1, 300 * KiB))
           for _ in range(6)]

    def check(name, off, length):
        got = os.pread(fds[name], length, off)
        srcs[name].seek(off)
        want = srcs[name].read(length)
        assert got == want, "WRONG BYTES: %s at [%d, +%d): %d bytes, want %d" % (
            name, off, length, len(got), len(want))

    try:
        for name in names:
            for off in range(0, sizes[name], MiB):
                check(name, off, MiB)
        for i in range(400):
            if i % 4 == 0:
                check(*hot[i // 4 % len(hot)])
            name = rng.choice(names)
            off = rng.randrange(0, sizes[name])
            check(name, off, rng.randint(1, 2 * MiB))
        for name in reversed(names):
            for off in range(0, sizes[name], 3 * MiB):
                check(name, off, 3 * MiB)
    finally:
        for f in srcs.values():
            f.close()
        for fd in fds.values():
            os.close(fd)


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_keeps_caps_and_bytes(nginx, mount, dataset, tmp_path, policy):
    """A mixed workload with 256 KiB blocks through 8 MiB of memory and 24 MiB of
    disk: mem_bytes and du of the cache stay under their caps all along, every
    byte is right, the spilled files hold the right bytes, and a remount
    serves the right bytes from them."""
    cache = str(tmp_path / "spill")
    cap = 24 * MiB
    args = ("--mem-cache=8M", "--disk-cache=24M", "--block-size=256K", "--eviction=" + policy,
            "--cache-dir=" + cache)
    srv = nginx(dataset)
    m = mount(srv.url, *args)
    with DuSampler(cache, cap, m, stats_every=5) as sampler:
        mixed_workload(m, dataset, random.Random(5))
    print(policy, sampler.check())
    st = m.stats()
    print("%s: mem hit ratio %.3f, disk hit ratio %.3f, mem evictions %d, disk evictions %d, "
          "spills %d" % (policy, st["mem_hit_ratio"], st["disk_hit_ratio"], st["mem_evictions"],
                         st["disk_evictions"], st["spills"]))
    assert st["mem_bytes"] <= st["mem_cap"] == 8 * MiB
    assert st["disk_bytes"] <= st["disk_cap"] == cap
    assert st["read_errors"] == st["spill_errors"] == 0
    assert st["checksum_failures"] == 0, "block files refused (none was damaged):\n%s" % "\n".join(
        line for line in m.read_log().splitlines() if "spilled block" in line)
    assert st["mem_evictions"] > 0 and st["disk_evictions"] > 0 and st["disk_hits"] > 0
    assert m.unmount() == []
    assert max(du_command(cache)) <= cap
    for path in block_files(cache):
        check_block_file(path, dataset, 256 * KiB)
    m2 = mount(srv.url, *args)
    with DuSampler(cache, cap, m2) as sampler:
        check_all(m2, dataset)
    sampler.check()
    st = m2.stats()
    assert st["disk_hits"] > 0 and st["read_errors"] == st["checksum_failures"] == 0


def scan_hit_ratios(m, name, size, passes):
    """Read name passes times from start to end with 1 MiB O_DIRECT preads; the
    memory tier's hit ratio of each pass."""
    buf = mmap.mmap(-1, MiB)
    fd = open_direct(m.file(name))
    ratios = []
    try:
        for _ in range(passes):
            before = m.stats()
            for off in range(0, size, MiB):
                assert os.preadv(fd, [buf], off) == min(MiB, size - off)
            after = m.stats()
            hits = after["mem_hits"] - before["mem_hits"]
            misses = after["mem_misses"] - before["mem_misses"]
            ratios.append(hits / (hits + misses))
    finally:
        os.close(fd)
        buf.close()
    return ratios


def test_cyclic_scan_hit_ratios(nginx, mount, scan_file):
    """A 24 MiB file read 4 times in order through a 16 MiB memory tier (1 MiB
    blocks, no readahead, no spill tier). LRU and FIFO evict each block before
    the scan comes back to it: later passes hit almost never. LFU evicts the
    newest of the least used, so 15 of the 16 blocks that filled the cache stay
    and later passes hit about 15/24 of the time."""
    src, name, size = scan_file
    url = nginx(src).url
    nblocks = (size + MiB - 1) // MiB
    measured = {}
    for policy in POLICIES:
        m = mount(url, "--disk-cache=0", "--mem-cache=16M", "--block-size=1M", "--readahead=0",
                  "--eviction=" + policy)
        measured[policy] = scan_hit_ratios(m, name, size, 4)
        st = m.stats()
        assert st["mem_bytes"] <= st["mem_cap"] == 16 * MiB
        assert st["bytes_fetched"] >= size
        assert m.unmount() == []
    for policy, ratios in measured.items():
        print("%-4s mem hit ratio per pass: %s (later passes: %.3f)"
              % (policy, " ".join("%.3f" % r for r in ratios), sum(ratios[1:]) / 3))
    expect_lfu = (16 - 1) / nblocks
    for policy in POLICIES:
        assert measured[policy][0] < 0.05, "%s: hits in the first pass" % policy
    for policy in ("lru", "fifo"):
        assert max(measured[policy][1:]) < 0.05, "%s: %s" % (policy, measured[policy])
    for r in measured["lfu"][1:]:
        assert expect_lfu - 0.1 < r < expect_lfu + 0.1, "lfu: %s, expected about %.3f" % (
            measured["lfu"], expect_lfu)
    assert min(measured["lfu"][1:]) > max(measured["lru"][1:]) + 0.4
    assert min(measured["lfu"][1:]) > max(measured["fifo"][1:]) + 0.4
