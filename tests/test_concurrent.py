"""Concurrent readers (processes and threads) over the same and different chunks."""
import hashlib
import os
import random
import subprocess
import sys
import threading

import pytest

from cfsutil import (KiB, MiB, SANITIZED, data_dir, dataset_names, index_chunks, scaled,
                      source_sha256, vm_hwm)

# A reader process: argv MODE SEED PATH...; prints "<sha256> <bytes>" per file, in order.
# seq: sequential 1 MiB reads; shuffled: pieces of an odd size in a seeded random
# order; items: sequential reads of random odd sizes.
READER = r"""
import hashlib, os, random, sys

def read_one(path, mode, rng):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    if mode == "shuffled":
        piece = 300_007
        buf = bytearray(size)
        order = list(range(0, size, piece))
        rng.shuffle(order)
        for off in order:
            data = os.pread(fd, piece, off)
            assert len(data) == min(piece, size - off), (path, off, len(data))
            buf[off:off + len(data)] = data
        os.close(fd)
        return hashlib.sha256(buf).hexdigest(), len(buf)
    h, total = hashlib.sha256(), 0
    for _ in range(size + 2):
        data = os.read(fd, (1 << 20) if mode == "seq" else rng.randint(1, 400_000))
        if not data:
            break
        h.update(data)
        total += len(data)
    os.close(fd)
    return h.hexdigest(), total

mode, rng = sys.argv[1], random.Random(int(sys.argv[2]))
for path in sys.argv[3:]:
    print(*read_one(path, mode, rng), flush=True)
"""


def run_readers(jobs, timeout):
    """jobs: list of (paths, mode, seed), one process each, all started at once.
    Checks every file read against its source: source_of(path) gives the source."""
    procs = [subprocess.Popen([sys.executable, "-c", READER, mode, str(seed)] + list(paths),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for paths, mode, seed in jobs]
    results, errors = [], []
    try:
        for (paths, mode, seed), p in zip(jobs, procs):
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                errors.append("reader %s of %s did not finish within %d s" % (mode, paths, timeout))
                continue
            if p.returncode != 0:
                errors.append("reader %s failed (%d): %s" % (mode, p.returncode, err.strip()))
                continue
            lines = out.splitlines()
            assert len(lines) == len(paths)
            for path, line in zip(paths, lines):
                digest, total = line.split()
                results.append((path, mode, digest, int(total)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    assert not errors, "\n".join(errors)
    return results


def check_results(results, src_dir):
    for path, mode, digest, total in results:
        src = os.path.join(src_dir, os.path.basename(path))
        assert total == os.path.getsize(src), (path, mode)
        assert digest == source_sha256(src), (path, mode)


def big_jobs(m, names):
    """8 readers: the same chunk read by several, different chunks in parallel."""
    plan = [(0, "seq"), (0, "shuffled"), (0, "items"), (1, "seq"), (1, "shuffled"),
            (2, "items"), (2, "seq"), (3, "shuffled")]
    return [([m.file(names[i])], mode, k) for k, (i, mode) in enumerate(plan)]


@pytest.mark.budget(120)
@pytest.mark.parametrize("threads", [2, 4])
def test_eight_readers_single_pass(nginx, mount, big_dataset, threads):
    """One cold pass with a cache big enough for everything: each block is
    fetched once, whatever number of readers want it and however many fetch
    threads receive it."""
    m = mount(nginx(big_dataset).url, "--mem-cache=512M", "--fetch-threads=%d" % threads)
    chunks = index_chunks(big_dataset)
    total = sum(size for _, size in chunks)
    check_results(run_readers(big_jobs(m, [n for n, _ in chunks]), scaled(240)), big_dataset)
    st = m.stats()
    assert st["read_errors"] == 0
    assert st["bytes_fetched"] <= total, \
        "fetched %d bytes for %d bytes of objects: some bytes were fetched twice" % (
            st["bytes_fetched"], total)
    assert st["bytes_fetched"] >= total
    assert st["mem_bytes"] <= st["mem_cap"]


@pytest.mark.budget(120)
def test_eight_readers_small_cache(nginx, mount, big_dataset):
    """8 readers through a 16 MiB cache: readers wait for room, nobody deadlocks,
    bytes stay right and the cap holds."""
    m = mount(nginx(big_dataset).url, "--mem-cache=16M")
    names = [n for n, _ in index_chunks(big_dataset)]
    check_results(run_readers(big_jobs(m, names), scaled(240)), big_dataset)
    st = m.stats()
    assert st["mem_cap"] == 16 * MiB
    assert st["mem_bytes"] <= st["mem_cap"]
    assert st["read_errors"] == 0
    if not SANITIZED:
        hwm = vm_hwm(m.pid)
        assert hwm < 16 * MiB + 64 * MiB, "VmHWM %.1f MiB" % (hwm / MiB)


def test_readers_over_small_chunks(nginx, mount):
    """8 processes each reading every file of litdata-mixed, in different orders,
    through a cache smaller than the dataset."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, "--block-size=64K", "--mem-cache=4M")
    names = dataset_names(src)
    jobs = []
    for k in range(8):
        order = list(names)
        random.Random(k).shuffle(order)
        jobs.append(([m.file(n) for n in order], ("seq", "shuffled", "items")[k % 3], k))
    results = run_readers(jobs, scaled(120))
    assert len(results) == 8 * len(names)
    check_results(results, src)


def test_threads_share_one_descriptor(nginx, mount, big_dataset):
    """8 threads preading interleaved stripes of one chunk through one shared
    descriptor (like forked DataLoader workers)."""
    m = mount(nginx(big_dataset).url)
    name, size = index_chunks(big_dataset)[1]
    stripe = 192 * KiB + 5
    buf = bytearray(size)
    errors = []
    fd = os.open(m.file(name), os.O_RDONLY)

    def worker(k):
        try:
            for off in range(k * stripe, size, 8 * stripe):
                data = os.pread(fd, stripe, off)
                if len(data) != min(stripe, size - off):
                    errors.append("short read at %d: %d bytes" % (off, len(data)))
                    return
                buf[off:off + len(data)] = data
        except OSError as e:
            errors.append("thread %d: %s" % (k, e))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(120))
        assert not any(t.is_alive() for t in threads), "reader threads hung"
    finally:
        if not any(t.is_alive() for t in threads):
            os.close(fd)
    assert not errors, errors
    assert hashlib.sha256(buf).hexdigest() == source_sha256(os.path.join(big_dataset, name))
