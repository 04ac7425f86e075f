"""The memory tier's default cap follows the memory limit of the daemon's control
group (src/util/memlimit.c): an eighth of it where that is less than an eighth of
RAM, as in a container or a systemd unit with MemoryMax=, and never under the
minimum of 4 blocks."""
import pytest

from cfsutil import MiB, scaled, wait_for
from spillutil import check_all

LIMIT = 512 * MiB


def started_in(group, mount, url, *args):
    """A mount whose daemon runs in group (checked in the group's cgroup.procs)."""
    with group.joined():
        m = mount(url, *args)
    assert m.pid in group.pids(), "chunkfs (PID %d) is not in %s" % (m.pid, group.path)
    return m


def cap_outside(mount, url):
    """The default cap of a daemon in this process's own group."""
    return mount(url).stats()["mem_cap"]


def test_default_cap_is_an_eighth_of_the_group_limit(memory_cgroup, nginx, mount, small):
    url = nginx(small).url
    outside = cap_outside(mount, url)
    if outside <= LIMIT // 8:
        pytest.skip("the default cap here is already %d MiB (RAM or this process's own "
                    "groups): a %d MiB group would not change it" % (outside // MiB, LIMIT // MiB))
    m = started_in(memory_cgroup(LIMIT), mount, url)
    assert m.stats()["mem_cap"] == LIMIT // 8
    # The fault-ahead stops at the cap, inside the group's memory.
    wait_for(lambda: m.stats()["mem_idle_bytes"] == LIMIT // 8, scaled(30),
             "the memory tier faulted in up to its cap")
    check_all(m, small)


def test_default_cap_holds_four_blocks(memory_cgroup, nginx, mount, small):
    """An eighth of the limit (64 MiB) under 4 blocks of 32 MiB: the default is the
    minimum, not a usage error about a --mem-cache the user never gave."""
    m = started_in(memory_cgroup(LIMIT), mount, nginx(small).url, "--block-size=32M",
                   "--lazy-memory")
    assert m.stats()["mem_cap"] == 4 * 32 * MiB
    check_all(m, small)


def test_a_given_cap_is_kept_in_a_limited_group(memory_cgroup, nginx, mount, small):
    m = started_in(memory_cgroup(LIMIT), mount, nginx(small).url, "--mem-cache=128M")
    assert m.stats()["mem_cap"] == 128 * MiB
    check_all(m, small)
