"""mmap of chunks (Python mmap and numpy.memmap) reads the right bytes."""
import gc
import hashlib
import mmap
import os
import random
import struct

import numpy as np

from cfsutil import data_dir, index_chunks, source_sha256


def source_bytes(path, off, length):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(length)


def test_mmap_chunks(nginx, mount, big_dataset):
    m = mount(nginx(big_dataset).url)
    rng = random.Random(99)
    for name, size in index_chunks(big_dataset)[:2]:
        src = os.path.join(big_dataset, name)
        with open(m.file(name), "rb") as f, \
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            assert len(mm) == size
            # slices first, in random order, while the mapping is cold
            for _ in range(200):
                off = rng.randrange(0, size)
                length = rng.randint(1, 2 << 20)
                assert mm[off:off + length] == source_bytes(src, off, length), (name, off, length)
            assert hashlib.sha256(mm).hexdigest() == source_sha256(src), name


def test_mmap_small_chunks(nginx, mount):
    """Chunks whose size is not a multiple of the page size."""
    src_dir = data_dir("litdata-mixed")
    m = mount(nginx(src_dir).url)
    for name, size in index_chunks(src_dir):
        src = os.path.join(src_dir, name)
        with open(m.file(name), "rb") as f, \
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            assert len(mm) == size
            assert mm[size - 100:] == source_bytes(src, size - 100, 100), name
            assert hashlib.sha256(mm).hexdigest() == source_sha256(src), name


def check_litgen_items(arr, src, first_index):
    """Walk the chunk's items through the memmap: the LitData header, and each
    item's leaves (int64 global index, then random bytes)."""
    n = int(arr[:4].view("<u4")[0])
    offsets = arr[4:4 + 4 * (n + 1)].view("<u4").astype(np.int64)
    with open(src, "rb") as f:
        head = f.read(4 + 4 * (n + 1))
    assert struct.unpack("<I", head[:4])[0] == n
    assert offsets.tolist() == list(struct.unpack("<%dI" % (n + 1), head[4:]))
    assert offsets[-1] == len(arr)
    for i in range(n):
        item = arr[offsets[i]:offsets[i + 1]]
        sizes = item[:8].view("<u4")
        assert int(sizes[0]) == 8
        assert 8 + int(sizes[0]) + int(sizes[1]) == len(item)
        assert int(item[8:16].view("<i8")[0]) == first_index + i
    return n


def test_numpy_memmap(nginx, mount, big_dataset):
    m = mount(nginx(big_dataset).url)
    first_index = 0
    rng = random.Random(5)
    for name, size in index_chunks(big_dataset):
        src = os.path.join(big_dataset, name)
        arr = np.memmap(m.file(name), dtype=np.uint8, mode="r")
        try:
            assert arr.shape == (size,)
            for _ in range(50):
                off = rng.randrange(0, size)
                length = rng.randint(1, 1 << 20)
                assert arr[off:off + length].tobytes() == source_bytes(src, off, length)
            first_index += check_litgen_items(arr, src, first_index)
            assert hashlib.sha256(arr).hexdigest() == source_sha256(src), name
        finally:
            # the mapping goes with the last reference (closing it under the
            # array's buffer export would raise BufferError)
            arr = None
            gc.collect()
