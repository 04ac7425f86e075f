"""The memory tier's default cap follows the memory limit of the daemon's control
group (src/util/memlimit.c): an eighth of it where that is less than an eighth of
RAM, as in a container or a systemd unit with MemoryMax=."""
from cfsutil import MiB, scaled, wait_for
from spillutil import check_all

LIMIT = 512 * MiB


def started_in(group, mount, url, *args):
    """A mount whose daemon runs in group (checked in the group's cgroup.procs)."""
    with group.joined():
        m = mount(url, *args)
    assert m.pid in group.pids(), "chunkfs (PID %d) is not in %s" % (m.pid, group.path)
    return m


def test_default_cap_is_an_eighth_of_the_group_limit(memory_cgroup, nginx, mount, small):
    group = memory_cgroup(LIMIT)
    m = started_in(group, mount, nginx(small).url)
    st = m.stats()
    assert st["mem_cap"] == LIMIT // 8
    # The fault-ahead stops at the cap, inside the group's memory.
    wait_for(lambda: m.stats()["mem_idle_bytes"] == LIMIT // 8, scaled(30),
             "the memory tier faulted in up to its cap")
    check_all(m, small)


def test_a_given_cap_is_kept_in_a_limited_group(memory_cgroup, nginx, mount, small):
    group = memory_cgroup(LIMIT)
    m = started_in(group, mount, nginx(small).url, "--mem-cache=128M")
    assert m.stats()["mem_cap"] == 128 * MiB
    check_all(m, small)
