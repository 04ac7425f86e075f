"""What the kernel is asked to do: readahead raised on the mount's bdi, the page
cache kept across opens (objects are immutable), 1 MiB FUSE reads, a read-only
mount, and no direct_io on data files."""
import os

from cfsutil import MiB, index_chunks, mountinfo, source_sha256, sha256_file


def test_kernel_readahead_raised(nginx, mount, big_dataset):
    m = mount(nginx(big_dataset).url)
    name, _ = index_chunks(big_dataset)[0]
    os.stat(m.file(name))  # the first request after FUSE_INIT raises it
    info = mountinfo(m.path)
    assert info["fstype"] == "fuse.chunkfs"
    assert "ro" in info["mount_options"].split(",")
    major, minor = info["dev"]
    with open("/sys/class/bdi/%d:%d/read_ahead_kb" % (major, minor)) as f:
        assert int(f.read()) == 1024


def test_page_cache_kept_across_opens(nginx, mount, big_dataset):
    m = mount(nginx(big_dataset).url)
    name, size = index_chunks(big_dataset)[1]
    src = source_sha256(os.path.join(big_dataset, name))
    assert sha256_file(m.file(name)) == src
    first = m.stats()
    assert first["bytes_served"] >= size
    # A second open is served by the page cache: without keep_cache the open
    # would drop it and every read would come again. Not "no read at all":
    # these machines run a DAMON pageout scheme (kdamond, min age 12
    # aggregation intervals) that may evict pages read a moment ago.
    assert sha256_file(m.file(name)) == src
    second = m.stats()
    assert second["reads"] - first["reads"] <= first["reads"] // 4, (first, second)
    assert second["bytes_served"] - first["bytes_served"] <= size // 4


def test_reads_arrive_in_1mib_requests(nginx, mount, big_dataset):
    m = mount(nginx(big_dataset).url)
    name, size = index_chunks(big_dataset)[2]
    fd = os.open(m.file(name), os.O_RDONLY)
    try:
        for off in range(0, size, 4 * MiB):
            os.pread(fd, 4 * MiB, off)
    finally:
        os.close(fd)
    st = m.stats()
    assert st["bytes_served"] >= size
    # Without max_pages negotiated the kernel sends reads of at most 128 KiB:
    # 512 of them for 64 MiB. At 1 MiB it takes about 64.
    assert st["reads"] <= size // MiB * 2, st["reads"]
