"""A read waits for its own bytes only: with the server limited to 2 MiB/s, the
first 64 KiB of a 64 MiB chunk arrive long before the chunk could have."""
import os
import time

import pytest

import litgen
from cfsutil import KiB, MiB, scaled

RATE = 2 * MiB        # nginx "limit_rate 2m", per connection
READ = 64 * KiB


@pytest.fixture(scope="module")
def one_chunk(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("one-chunk"))
    names = litgen.write_dataset(out, chunks=1, chunk_bytes=64 * MiB)
    return out, names[0]


def timed_read(path, off, length):
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.monotonic()
        data = b""
        for _ in range(length + 1):  # bounded; a read returns >= 1 byte before EOF
            piece = os.pread(fd, length - len(data), off + len(data))
            if not piece:
                break
            data += piece
            if len(data) == length:
                break
        return data, time.monotonic() - t0
    finally:
        os.close(fd)


def source(path, off, length):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(length)


@pytest.mark.parametrize("offset_mib", [0, 40])
def test_first_bytes_without_the_whole_chunk(nginx, mount, one_chunk, offset_mib):
    src_dir, name = one_chunk
    size = os.path.getsize(os.path.join(src_dir, name))
    assert size >= 64 * MiB
    whole_chunk_seconds = size / RATE                   # about 32 s
    m = mount(nginx(src_dir, limit_rate="2m").url)      # a fresh mount: nothing cached
    assert m.stats()["bytes_fetched"] == 0
    off = offset_mib * MiB
    data, elapsed = timed_read(m.file(name), off, READ)
    st = m.stats()
    assert data == source(os.path.join(src_dir, name), off, READ)
    assert st["bytes_fetched"] < 8 * MiB, \
        "%d bytes fetched when the first 64 KiB were answered" % st["bytes_fetched"]
    # At 2 MiB/s, 8 MiB take 4 s; the whole chunk 32 s.
    assert elapsed < min(scaled(8), whole_chunk_seconds / 2), \
        "the read took %.1f s (the whole chunk takes %.0f s)" % (elapsed, whole_chunk_seconds)
