"""The memory tier's block memory is faulted in ahead of use, up to the cap,
right after mounting (src/cache/faultahead.c), and blocks then take it;
--lazy-memory leaves the faulting to the reads."""
import os

from cfsutil import KiB, MiB, index_chunks, scaled, sha256_file, source_sha256, vm_rss, wait_for

CAP = 8 * MiB
# Small blocks, so that the fixture's 25 KB chunks fill whole blocks of the arena too.
ARGS = ("--mem-cache=8M", "--block-size=16K", "--disk-cache=0")


def read_all(m, root):
    """Read every chunk through the mount and check it against the source."""
    for name, _ in index_chunks(root):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(root, name)), name


def test_memory_is_faulted_in_ahead(nginx, mount, small):
    m = mount(nginx(small).url, *ARGS)
    wait_for(lambda: m.stats()["mem_idle_bytes"] == CAP, scaled(30),
             "the memory tier faulted in up to its cap")
    assert vm_rss(m.pid) >= CAP  # resident, not only counted
    read_all(m, small)
    st = m.stats()
    assert st["mem_cap"] == CAP
    assert st["mem_bytes"] >= 16 * KiB
    # The blocks took idle memory: together they stay within the cap.
    assert st["mem_bytes"] + st["mem_idle_bytes"] <= CAP
    assert st["read_errors"] == 0


def test_lazy_memory_grows_with_use(nginx, mount, small):
    m = mount(nginx(small).url, *ARGS, "--lazy-memory")
    read_all(m, small)
    st = m.stats()
    assert st["mem_bytes"] >= 16 * KiB
    assert st["mem_idle_bytes"] == 0  # nothing evicted, nothing faulted in ahead
