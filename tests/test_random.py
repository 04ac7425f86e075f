"""Seeded random preads across block boundaries equal the source; EOF reads are empty."""
import os
import random

import pytest

from cfsutil import KiB, MiB, index_chunks, open_direct

BLOCK = 256 * KiB


def plan_reads(rng, sizes, count, max_len=3 * MiB):
    """count (name, offset, length) reads, most of them crossing block boundaries."""
    names = sorted(sizes)
    reads = []
    for i in range(count):
        name = rng.choice(names)
        size = sizes[name]
        kind = i % 5
        if kind == 0:    # ends just past a boundary
            boundary = rng.randrange(1, size // BLOCK + 1) * BLOCK
            off = max(0, boundary - rng.randint(1, 64 * KiB))
            length = boundary - off + rng.randint(1, 64 * KiB)
        elif kind == 1:  # starts exactly on a boundary
            off = rng.randrange(0, size // BLOCK + 1) * BLOCK
            length = rng.randint(1, max_len)
        elif kind == 2:  # tiny read straddling a boundary
            boundary = rng.randrange(1, size // BLOCK + 1) * BLOCK
            off = boundary - rng.randint(1, 16)
            length = rng.randint(17, 64)
        elif kind == 3:  # spans many blocks from an odd offset
            off = rng.randrange(0, size)
            length = rng.randint(2 * BLOCK, max_len)
        else:            # anywhere, any size, sometimes past the end
            off = rng.randrange(0, size)
            length = rng.randint(1, max_len)
        reads.append((name, off, length))
    return reads


def check_reads(m, src, reads, direct):
    sizes = dict(index_chunks(src))
    src_fds = {n: os.open(os.path.join(src, n), os.O_RDONLY) for n in sizes}
    mnt_fds = {}
    try:
        for n in sizes:
            mnt_fds[n] = open_direct(m.file(n)) if direct else os.open(m.file(n), os.O_RDONLY)
        for i, (name, off, length) in enumerate(reads):
            want = os.pread(src_fds[name], length, off)
            got = os.pread(mnt_fds[name], length, off)
            if got != want:
                first = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                             min(len(got), len(want)))
                pytest.fail("read %d of %s at %d length %d: got %d bytes, want %d; first "
                            "difference at +%d" % (i, name, off, length, len(got), len(want),
                                                   first))
        for name, size in sizes.items():
            fd = mnt_fds[name]
            assert os.pread(fd, 4096, size) == b"", "read at EOF of %s" % name
            assert os.pread(fd, 4096, size + 1) == b"", "read past EOF of %s" % name
            assert os.pread(fd, MiB, size + BLOCK + 3) == b"", "read past EOF of %s" % name
            assert os.pread(fd, 1, 1 << 40) == b"", "read far past EOF of %s" % name
            tail = os.pread(src_fds[name], 1000, size - 10)
            assert len(tail) == 10
            assert os.pread(fd, 1000, size - 10) == tail, "read across EOF of %s" % name
    finally:
        for fd in list(src_fds.values()) + list(mnt_fds.values()):
            os.close(fd)


@pytest.mark.parametrize("direct", [False, True], ids=["cached", "direct"])
def test_random_preads(nginx, mount, big_dataset, direct):
    """1000 seeded preads (O_DIRECT: the daemon sees the unaligned offsets as they are)."""
    m = mount(nginx(big_dataset).url, "--block-size=256K")
    sizes = dict(index_chunks(big_dataset))
    reads = plan_reads(random.Random(20240601 + direct), sizes, 1000)
    check_reads(m, big_dataset, reads, direct)
    st = m.stats()
    assert st["read_errors"] == 0
    assert st["mem_bytes"] <= st["mem_cap"]


def test_random_preads_small_cache(nginx, mount, big_dataset):
    """Random reads through a cache far smaller than the data: blocks are
    evicted and fetched again, bytes stay right."""
    m = mount(nginx(big_dataset).url, "--block-size=256K", "--mem-cache=8M")
    sizes = dict(index_chunks(big_dataset))
    reads = plan_reads(random.Random(7), sizes, 300)
    check_reads(m, big_dataset, reads, direct=True)
    st = m.stats()
    assert st["mem_cap"] == 8 * MiB
    assert st["mem_bytes"] <= st["mem_cap"]
    assert st["mem_evictions"] > 0
