"""Readahead: sequential streams get it (tracked per stream, not per descriptor),
random access does not. O_DIRECT keeps the kernel's own readahead out of the
way, so the daemon sees the reads exactly as issued."""
import os
import random

from cfsutil import KiB, MiB, index_chunks, open_direct


def src_pread(src, length, off):
    with open(src, "rb") as f:
        f.seek(off)
        return f.read(length)


def test_sequential_stream_gets_readahead(nginx, mount, big_dataset):
    name, size = index_chunks(big_dataset)[0]
    src = os.path.join(big_dataset, name)
    m = mount(nginx(big_dataset).url, "--mem-cache=128M")
    fd = open_direct(m.file(name))
    try:
        step = 128 * KiB
        for off in range(0, 32 * MiB, step):
            assert os.pread(fd, step, off) == src_pread(src, step, off), off
    finally:
        os.close(fd)
    st = m.stats()
    # the window grows (to 16 MiB by default): most of a 32 MiB scan is readahead,
    # and no more than one window is fetched past the reads
    assert st["readahead_bytes"] >= 8 * MiB
    assert st["bytes_fetched"] <= 32 * MiB + 16 * MiB + MiB


def test_random_reads_get_no_readahead(nginx, mount, big_dataset):
    chunks = index_chunks(big_dataset)
    m = mount(nginx(big_dataset).url, "--block-size=256K")
    rng = random.Random(3)
    fds = {n: open_direct(m.file(n)) for n, _ in chunks}
    try:
        for _ in range(200):
            name, size = rng.choice(chunks)
            off = rng.randrange(0, size - 8192)
            length = rng.randint(1, 8192)
            assert os.pread(fds[name], length, off) == \
                src_pread(os.path.join(big_dataset, name), length, off)
    finally:
        for fd in fds.values():
            os.close(fd)
    st = m.stats()
    # A read continues a stream seen once only if it starts within a page of
    # where that stream stopped: among 200 random reads over 64 MiB that is
    # rare. Allow two first windows (128 KiB each) for such coincidences.
    assert st["readahead_bytes"] <= 2 * 128 * KiB
    # a read of at most 8 KiB touches at most two 256 KiB blocks
    assert st["bytes_fetched"] - st["readahead_bytes"] <= 200 * 2 * 256 * KiB


def test_interleaved_streams_on_one_descriptor(nginx, mount, big_dataset):
    """Two sequential streams read alternately through one descriptor (as
    forked DataLoader workers sharing it would): both are seen as streams."""
    name, size = index_chunks(big_dataset)[1]
    src = os.path.join(big_dataset, name)
    m = mount(nginx(big_dataset).url, "--mem-cache=128M")
    fd = open_direct(m.file(name))
    step = 128 * KiB
    starts = [0, size // 2 // step * step]
    try:
        for i in range(0, 16 * MiB, step):
            for base in starts:
                off = base + i
                assert os.pread(fd, step, off) == src_pread(src, step, off), off
    finally:
        os.close(fd)
    st = m.stats()
    # as much readahead as the two streams read (2 x 16 MiB): at least half of it
    assert st["readahead_bytes"] >= 16 * MiB
    assert st["bytes_fetched"] <= 2 * (16 * MiB + 16 * MiB + MiB)
