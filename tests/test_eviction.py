"""Eviction policies (--eviction=lru|lfu|fifo), which order both tiers: every
policy keeps both caps and serves the right bytes, and a cyclic scan larger than
the memory tier shows how they differ (LRU and FIFO lose every block before it
comes round again; LFU keeps most of the first ones)."""
import mmap
import os
import random

import pytest

import litgen
from cfsutil import KiB, MiB, index_chunks, open_direct
from spillutil import (DuSampler, block_files, check_all, check_block_file, du_command,
                       parse_block)

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
    newest of the least used, so the blocks that filled the cache first stay:
    14 or 15 of them (room for the blocks in flight is reserved before their
    requests go out), and later passes hit about 14.5/24 of the time."""
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
    expect_lfu = 14.5 / nblocks
    for policy in POLICIES:
        assert measured[policy][0] < 0.05, "%s: hits in the first pass" % policy
    for policy in ("lru", "fifo"):
        assert max(measured[policy][1:]) < 0.05, "%s: %s" % (policy, measured[policy])
    for r in measured["lfu"][1:]:
        assert expect_lfu - 0.1 < r < expect_lfu + 0.1, "lfu: %s, expected about %.3f" % (
            measured["lfu"], expect_lfu)
    assert min(measured["lfu"][1:]) > max(measured["lru"][1:]) + 0.4
    assert min(measured["lfu"][1:]) > max(measured["fifo"][1:]) + 0.4


def block_objects(cache):
    """{block file path: the object it is of}, from the files' headers."""
    out = {}
    for path in block_files(cache):
        with open(path, "rb") as f:
            out[path] = parse_block(f.read(4096 * 4))["name"]
    return out


@pytest.mark.parametrize("policy", POLICIES)
def test_eviction_order_survives_remounts(nginx, mount, dataset, tmp_path, policy):
    """The spill tier's eviction order outlives its mounts. Mount 1 spills
    chunks A then B; mount 2 reads A back from disk (a use, unrecorded until
    the unmount saves the order); mounts 3 and 4 only mount and unmount (the
    order must survive being saved and replayed, LFU's ties included: a
    replay that reversed them would show after an odd number of mounts);
    mount 5 has a cap that holds A's blocks and no more, so it evicts at
    mount: LRU and LFU keep A (used last, used more), FIFO keeps B (spilled
    last)."""
    cache = str(tmp_path / "spill")
    url = nginx(dataset).url
    args = ("--mem-cache=4M", "--eviction=" + policy, "--cache-dir=" + cache)
    (a, a_size), (b, b_size) = index_chunks(dataset)[:2]
    m = mount(url, "--disk-cache=64M", *args)
    check_all(m, dataset, names=[a])
    check_all(m, dataset, names=[b])
    assert m.unmount() == []
    first = block_objects(cache)
    count = {name: sum(1 for o in first.values() if o == name) for name in (a, b)}
    assert count == {a: (a_size + MiB - 1) // MiB, b: (b_size + MiB - 1) // MiB}, count
    m = mount(url, "--disk-cache=64M", *args)
    check_all(m, dataset, names=[a])
    st = m.stats()
    assert st["bytes_fetched"] == 0 and st["disk_hits"] >= count[a]
    assert m.unmount() == []
    for _ in range(2):
        m = mount(url, "--disk-cache=64M", *args)
        assert m.unmount() == []
    a_bytes = sum(os.stat(p).st_blocks * 512 for p, o in first.items() if o == a)
    m = mount(url, "--disk-cache=%dK" % ((a_bytes + 128 * KiB) // KiB), *args)
    assert m.stats()["disk_evictions"] > 0
    assert m.unmount() == []
    kept = list(block_objects(cache).values())
    keep, lose = (b, a) if policy == "fifo" else (a, b)
    print("%s: kept %d of %s's %d blocks, %d of %s's %d" % (
        policy, kept.count(keep), keep, count[keep], kept.count(lose), lose, count[lose]))
    assert kept.count(keep) == min(len(kept), count[keep]), \
        "%s evicted %s's blocks before %s's" % (policy, keep, lose)
    assert kept.count(keep) > 0
