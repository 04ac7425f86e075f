"""Reads are served by inode: the kernel opens and closes files without asking the
daemon (FUSE no-open support, Linux 4.20), so a loader that opens its shard for every
sample (MosaicML's MDS reader, LitData's PyTreeLoader) pays no round trip per open;
and a rendered file (.chunkfs/stats) still reads one rendering per open."""
import json
import os
import platform
import random
import struct
import threading

import pytest

import formats

from cfsutil import data_dir, index_chunks, scaled, wait_for

SAMPLES = 400


def kernel_has_no_open():
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    return (major, minor) >= (4, 20)


def read_sample(path, i):
    """What both loaders do per sample: open, pread the offset pair at 4 * (1 + i),
    pread the sample, close."""
    fd = os.open(path, os.O_RDONLY)
    try:
        begin, end = struct.unpack("<II", os.pread(fd, 8, 4 * (1 + i)))
        return os.pread(fd, end - begin, begin)
    finally:
        os.close(fd)


@pytest.mark.parametrize("dataset", ["litdata-mixed", "mds-plain"])
def test_per_sample_opens_do_not_reach_the_daemon(mount, nginx, dataset):
    if not kernel_has_no_open():
        pytest.skip("Linux %s has no FUSE no-open support (4.20 and later)" % platform.release())
    src = data_dir(dataset)
    m = mount(nginx(src).url)
    # (shard, position in it, bytes) of every sample, by the suite's own parser.
    plan, seen = [], {}
    for item in formats.dataset_items(src):
        plan.append((item.chunk, seen.setdefault(item.chunk, 0), item.data))
        seen[item.chunk] += 1
    for name, i, want in random.Random(11).choices(plan, k=SAMPLES):
        assert read_sample(m.file(name), i) == want, (name, i)
    # The first OPEN is answered ENOSYS; the kernel opens every file by itself after it.
    assert m.stats()["opens"] <= 1


def test_rendered_file_reads_one_rendering_per_open(mount, nginx):
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url)
    chunk = m.file(index_chunks(src)[0][0])
    stop = threading.Event()

    def change_the_counters():
        for _ in range(100000):
            if stop.is_set():
                return
            with open(chunk, "rb") as f:
                f.read()
                # Out of the page cache: the next read is the daemon's, and moves its counters.
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)

    worker = threading.Thread(target=change_the_counters, daemon=True)
    worker.start()
    try:
        with open(m.file(".chunkfs", "stats"), "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            first = f.read(7)
            # Reads at growing offsets, while the counters move, come from one rendering.
            pieces = [first] + [f.read(7) for _ in range(size)]
        text = b"".join(pieces)
        assert len(text) == size
        held = json.loads(text)
        # The counters did move: a later open reads a later rendering.
        wait_for(lambda: m.stats()["bytes_served"] > held["bytes_served"], scaled(30),
                 "a rendering of .chunkfs/stats newer than the one held open")
    finally:
        stop.set()
        worker.join(scaled(30))
    assert not worker.is_alive()
