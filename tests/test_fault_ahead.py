"""The memory tier's block memory is faulted in ahead of use, up to the cap,
right after mounting (src/cache/faultahead.c), and blocks then take it;
--lazy-memory leaves the faulting to the reads."""
from cfsutil import KiB, MiB, scaled, vm_rss, wait_for
from spillutil import check_all

CAP = 8 * MiB
# Small blocks, so that the fixture's 25 KB chunks fill whole blocks of the arena too.
ARGS = ("--mem-cache=8M", "--block-size=16K", "--disk-cache=0")


def test_memory_is_faulted_in_ahead(nginx, mount, small):
    m = mount(nginx(small).url, *ARGS)
    wait_for(lambda: m.stats()["mem_idle_bytes"] == CAP, scaled(30),
             "the memory tier faulted in up to its cap")
    assert vm_rss(m.pid) >= CAP  # resident, not only counted
    check_all(m, small)
    st = m.stats()
    assert st["mem_cap"] == CAP
    assert st["mem_bytes"] >= 16 * KiB
    # The blocks took idle memory: together they stay within the cap.
    assert st["mem_bytes"] + st["mem_idle_bytes"] <= CAP
    assert st["read_errors"] == 0


def test_lazy_memory_grows_with_use(nginx, mount, small):
    m = mount(nginx(small).url, *ARGS, "--lazy-memory")
    check_all(m, small)
    st = m.stats()
    assert st["mem_bytes"] >= 16 * KiB
    assert st["mem_idle_bytes"] == 0  # nothing evicted, nothing faulted in ahead
