"""The memory cap is hard: reading 256 MiB twice through a 32 MiB cache keeps
the daemon's peak RSS under the cap plus a small fixed overhead."""
import hashlib
import os
import threading

import pytest

from cfsutil import MiB, index_chunks, source_sha256, vm_hwm

CAP = 32 * MiB
OVERHEAD = 64 * MiB


class StatsSampler(threading.Thread):
    """Reads .chunkfs/stats every 50 ms while the test reads, remembering the
    largest mem_bytes and any sample above the cap."""

    def __init__(self, m):
        super().__init__(daemon=True)
        self.m = m
        self.stop = threading.Event()
        self.samples = 0
        self.max_mem_bytes = 0
        self.over = []
        self.error = None

    def run(self):
        try:
            for _ in range(100_000):  # bounded; stopped long before
                st = self.m.stats()
                self.samples += 1
                self.max_mem_bytes = max(self.max_mem_bytes, st["mem_bytes"])
                if st["mem_bytes"] > st["mem_cap"]:
                    self.over.append((st["mem_bytes"], st["mem_cap"]))
                if self.stop.wait(0.05):
                    return
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def read_pass(m, big_dataset):
    """Read every chunk sequentially, check its hash, then drop its pages from
    the kernel's page cache so the next pass is served by the daemon again."""
    for name, size in index_chunks(big_dataset):
        h, total = hashlib.sha256(), 0
        fd = os.open(m.file(name), os.O_RDONLY)
        try:
            for _ in range(size + 2):
                data = os.read(fd, MiB)
                if not data:
                    break
                h.update(data)
                total += len(data)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        assert total == size, name
        assert h.hexdigest() == source_sha256(os.path.join(big_dataset, name)), name


@pytest.mark.budget(120)
def test_memory_cap(nginx, mount, big_dataset, sanitized):
    m = mount(nginx(big_dataset).url, "--mem-cache=32M", "--disk-cache=0")
    total = sum(size for _, size in index_chunks(big_dataset))
    assert total >= 256 * MiB
    sampler = StatsSampler(m)
    sampler.start()
    try:
        read_pass(m, big_dataset)
        first = m.stats()
        read_pass(m, big_dataset)
        second = m.stats()
    finally:
        sampler.stop.set()
        sampler.join(30)
    assert sampler.error is None, sampler.error
    assert sampler.samples > 0
    assert not sampler.over, "mem_bytes above mem_cap: %s" % sampler.over[:5]
    for st in (first, second):
        assert st["mem_cap"] == CAP
        assert st["mem_bytes"] <= st["mem_cap"]
        assert st["read_errors"] == 0
    assert first["bytes_fetched"] >= total
    # The second pass went to the daemon (not the page cache) and, the cache
    # being far smaller than the data, to the server again.
    assert second["bytes_served"] - first["bytes_served"] >= total - CAP
    assert second["bytes_fetched"] - first["bytes_fetched"] >= total - CAP
    assert second["mem_evictions"] > 0
    hwm = vm_hwm(m.pid)
    print("daemon VmHWM %.1f MiB, max mem_bytes %.1f MiB%s" % (
        hwm / MiB, sampler.max_mem_bytes / MiB, " (not asserted: sanitizer build)" if sanitized else ""))
    if not sanitized:
        assert hwm < CAP + OVERHEAD, "daemon peak RSS %.1f MiB >= %d MiB" % (
            hwm / MiB, (CAP + OVERHEAD) // MiB)
