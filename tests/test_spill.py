"""The spill tier (--cache-dir, --disk-cache): blocks that leave memory are written
to a local directory under a hard cap, read back checked, and reused by the next
mount of the same URL.

Reads go through O_DIRECT (spillutil.read_direct) so that the page cache, which
chunkfs asks the kernel to keep across opens, never answers for the daemon.
"""
import errno
import hashlib
import mmap
import os
import random
import re
import shutil
import struct
import subprocess
import threading
import time

import pytest

import litgen
from cfsutil import (KiB, MiB, chunkfs_env, data_dir, force_unmount, index_chunks, open_direct,
                      run_until_exit, scaled, sha256_file, source_sha256, stop_process, wait_for)
from spillutil import (DuSampler, block_files, check_all, check_block_file, dataset_bytes, du,
                       du_command, journal_header, journal_record, parse_block, read_direct,
                       tmp_files, url_dir)


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """A generated LitData dataset of 4 chunks of about 24 MiB (96 MiB)."""
    out = str(tmp_path_factory.mktemp("spill-medium"))
    litgen.write_dataset(out, chunks=4, chunk_bytes=24 * MiB, seed=11)
    return out


@pytest.fixture(scope="module")
def dataset_512m(tmp_path_factory):
    """A generated LitData dataset of 8 chunks of about 64 MiB (512 MiB)."""
    out = str(tmp_path_factory.mktemp("spill-512m"))
    litgen.write_dataset(out, chunks=8, chunk_bytes=64 * MiB, seed=5)
    return out


def read_segments(m, src, name, size, rng, seg=4 * MiB):
    """Read name in seg-byte pieces in a seeded random order (O_DIRECT), each
    compared with the source."""
    offsets = list(range(0, size, seg))
    rng.shuffle(offsets)
    buf = mmap.mmap(-1, seg)
    fd = open_direct(m.file(name))
    try:
        with open(os.path.join(src, name), "rb") as f:
            for off in offsets:
                n = os.preadv(fd, [buf], off)
                want_len = min(seg, size - off)
                assert n == want_len, "%s at %d: %d bytes, expected %d" % (name, off, n, want_len)
                f.seek(off)
                assert buf[:n] == f.read(n), "WRONG BYTES in %s at [%d, +%d)" % (name, off, n)
    finally:
        os.close(fd)
        buf.close()


def random_preads(m, src, rng, count, max_len=3 * MiB):
    """count seeded preads anywhere in the chunks of src (O_DIRECT, unaligned,
    1 byte to max_len), each compared with the source."""
    sizes = dict(index_chunks(src))
    names = sorted(sizes)
    fds = {n: open_direct(m.file(n)) for n in names}
    srcs = {n: open(os.path.join(src, n), "rb") for n in names}
    try:
        for _ in range(count):
            name = rng.choice(names)
            off = rng.randrange(0, sizes[name])
            length = rng.randint(1, max_len)
            got = os.pread(fds[name], length, off)
            srcs[name].seek(off)
            assert got == srcs[name].read(length), \
                "WRONG BYTES in %s at [%d, +%d)" % (name, off, length)
    finally:
        for fd in fds.values():
            os.close(fd)
        for f in srcs.values():
            f.close()


# --------------------------------------------------------------------------
# 1. the cap is hard


@pytest.mark.budget(90)
def test_disk_cap_is_never_exceeded(nginx, mount, dataset_512m, tmp_path):
    """512 MiB read twice (whole files in order, then the chunks backwards in
    shuffled 4 MiB pieces, which revisit what was spilled), then 300 seeded
    random preads (partial blocks), through 16 MiB of memory and 64 MiB of
    disk: du of the cache directory, sampled every few ms, never exceeds
    64 MiB, and every byte is right."""
    cache = str(tmp_path / "spill")
    cap = 64 * MiB
    m = mount(nginx(dataset_512m).url, "--mem-cache=16M", "--disk-cache=64M",
              "--cache-dir=" + cache)
    total = dataset_bytes(dataset_512m)
    chunks = index_chunks(dataset_512m)
    rng = random.Random(2024)
    with DuSampler(cache, cap, m) as sampler:
        for name, size in chunks:
            assert read_direct(m.file(name), size) == \
                source_sha256(os.path.join(dataset_512m, name)), "WRONG BYTES in %s" % name
        first = m.stats()
        for name, size in reversed(chunks):
            read_segments(m, dataset_512m, name, size, rng)
        second = m.stats()
        random_preads(m, dataset_512m, rng, 300)
        third = m.stats()
        alloc, apparent = du_command(cache)
        assert alloc <= cap and apparent <= cap, (alloc, apparent)
        sampler.drop_mount()
        assert m.unmount() == []      # the flush at unmount stays under the cap too
    print(sampler.check())
    for st in (first, second, third):
        assert st["disk_cap"] == cap
        assert st["disk_bytes"] <= cap
        assert st["mem_bytes"] <= st["mem_cap"]
        assert st["read_errors"] == 0
        assert st["spill_errors"] == 0
        assert st["checksum_failures"] == 0
    assert first["bytes_fetched"] >= total
    assert first["spills"] > 0 and first["disk_evictions"] > 0
    assert second["disk_hits"] > 0, "the second pass read nothing back from disk"
    assert second["disk_evictions"] > first["disk_evictions"]
    assert second["bytes_served"] - first["bytes_served"] >= total
    print("pass 1: fetched %.1f MiB, spills %d, disk evictions %d; pass 2: fetched %.1f MiB, "
          "disk hits %d" % (first["bytes_fetched"] / MiB, first["spills"],
                            first["disk_evictions"],
                            (second["bytes_fetched"] - first["bytes_fetched"]) / MiB,
                            second["disk_hits"]))
    alloc, apparent = du_command(cache)
    assert alloc <= cap and apparent <= cap, (alloc, apparent)


# --------------------------------------------------------------------------
# 2. a second pass, and a later mount, read from disk


def test_second_pass_and_remount_read_from_disk(nginx, mount, medium, tmp_path):
    """96 MiB through 16 MiB of memory and a 1 GiB spill tier: the first pass
    fetches everything, the second nothing (it reads back from disk); after a
    remount on the same directory a pass fetches nothing either (one HEAD per
    object learns the ETags the listing lacks), and the bytes are right."""
    cache = str(tmp_path / "spill")
    args = ("--mem-cache=16M", "--disk-cache=1G", "--cache-dir=" + cache)
    srv = nginx(medium)
    m = mount(srv.url, *args)
    total = dataset_bytes(medium)
    nchunks = len(index_chunks(medium))
    check_all(m, medium)
    first = m.stats()
    assert first["bytes_fetched"] >= total
    assert first["spills"] > 0
    check_all(m, medium)
    second = m.stats()
    assert second["bytes_fetched"] == first["bytes_fetched"], \
        "the second pass fetched %d bytes" % (second["bytes_fetched"] - first["bytes_fetched"])
    assert second["disk_hits"] > first["disk_hits"]
    assert second["disk_hit_ratio"] > 0
    for st in (first, second):
        assert st["read_errors"] == st["spill_errors"] == st["checksum_failures"] == 0
        assert st["disk_evictions"] == 0
    assert m.unmount() == []
    # the flush at unmount left every block of every chunk on disk, whole
    blocks = {}
    for path in block_files(cache):
        b = check_block_file(path, medium, MiB)
        blocks[(b["name"], b["index"])] = b
    for name, size in index_chunks(medium):
        for i in range((size + MiB - 1) // MiB):
            b = blocks.get((name, i))
            assert b is not None, "block %d of %s is not on disk" % (i, name)
            assert b["extents"] == [(0, min(MiB, size - i * MiB))], (name, i, b["extents"])
    before = len(srv.requests())
    m2 = mount(srv.url, *args)
    assert tmp_files(cache) == []
    check_all(m2, medium)
    third = m2.stats()
    print("pass 1: fetched %.1f MiB, %d spills; pass 2: %d disk hits; after remount: fetched %d "
          "bytes, %d validations, %d disk hits"
          % (first["bytes_fetched"] / MiB, first["spills"],
             second["disk_hits"] - first["disk_hits"], third["bytes_fetched"],
             third["validations"], third["disk_hits"]))
    assert third["bytes_fetched"] == 0
    assert 1 <= third["validations"] <= nchunks
    assert third["disk_hits"] >= total // MiB
    assert third["read_errors"] == third["checksum_failures"] == 0
    # what the server saw after the remount: HEADs (one per chunk at most), no body of a chunk
    chunk_reqs = [r for r in srv.requests()[before:] if ".bin" in r["request"]]
    heads = [r for r in chunk_reqs if r["request"].startswith("HEAD ")]
    assert len(heads) == len(chunk_reqs), "chunk bodies fetched after the remount: %s" % chunk_reqs
    assert len(heads) == third["validations"]
    assert len({r["request"] for r in heads}) == len(heads), "an object was HEADed twice"


@pytest.mark.budget(60)
def test_no_spill_writes_while_memory_has_room(nginx, mount, medium, tmp_path):
    """96 MiB read through 256 MiB of memory: nothing is written to the spill
    tier while the reads run (the writes would slow them, and memory has
    room); the unmount writes every block, and a remount reads it all back
    without fetching a byte."""
    cache = str(tmp_path / "spill")
    args = ("--mem-cache=256M", "--disk-cache=1G", "--cache-dir=" + cache)
    srv = nginx(medium)
    m = mount(srv.url, *args)
    check_all(m, medium)
    st = m.stats()
    assert st["bytes_fetched"] >= dataset_bytes(medium)
    assert st["spills"] == 0, "%d blocks spilled while memory had room" % st["spills"]
    assert block_files(cache) == []
    assert m.unmount() == []
    names = {parse_block(open(p, "rb").read())["name"] for p in block_files(cache)}
    assert names == {name for name, _ in index_chunks(medium)}
    m2 = mount(srv.url, *args)
    check_all(m2, medium)
    again = m2.stats()
    assert again["bytes_fetched"] == 0
    assert again["disk_hits"] >= dataset_bytes(medium) // MiB
    assert again["read_errors"] == again["checksum_failures"] == 0


# --------------------------------------------------------------------------
# 3. one mount per cache


def test_cache_is_locked_by_its_mount(nginx, mount, chunkfs_bin, tmp_path):
    """While a mount (a daemon) uses a cache, a second mount of the same URL on
    the same --cache-dir is refused with one line naming the daemon's PID; with
    another --cache-dir, or without a spill tier, it mounts; after the first
    unmount the cache can be used again."""
    src = data_dir("litdata-mixed")
    url = nginx(src).url
    cache = str(tmp_path / "spill")
    m = mount(url, "--cache-dir=" + cache, foreground=False)
    with open(os.path.join(url_dir(cache), "lock")) as f:
        assert f.read().strip() == str(m.pid), "the lock does not hold the daemon's PID"
    for fg in (["-f"], []):
        mnt = str(tmp_path / ("refused%d" % len(fg)))
        os.mkdir(mnt)
        argv = [chunkfs_bin] + fg + ["--cache-dir=" + cache, url, mnt]
        rc, stderr, _ = run_until_exit(argv, None, mnt)
        assert rc != 0, "a second mount of the same cache was not refused"
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, "expected one line on stderr, got:\n%s" % stderr
        assert "in use by another chunkfs mount" in lines[0], lines[0]
        assert re.search(r"\b%d\b" % m.pid, lines[0]), "the PID %d is not named: %s" % (m.pid,
                                                                                         lines[0])
    name = "chunk-0-1.bin"
    want = source_sha256(os.path.join(src, name))
    assert sha256_file(m.file(name)) == want, "the first mount suffered"
    other = mount(url, "--cache-dir=" + str(tmp_path / "other"))
    assert sha256_file(other.file(name)) == want
    nodisk = mount(url, "--cache-dir=" + cache, "--disk-cache=0")
    assert sha256_file(nodisk.file(name)) == want
    assert m.unmount() == []
    again = mount(url, "--cache-dir=" + cache)
    assert sha256_file(again.file(name)) == want
    with open(os.path.join(url_dir(cache), "lock")) as f:
        assert f.read().strip() == str(again.pid)


# --------------------------------------------------------------------------
# 4. bad block files are refused


@pytest.mark.log_allow(r"^chunk-[\d-]+\.bin bytes \d+-\d+: spilled block \d+ \(\S+\): (truncated or malformed \(.*\)|header checksum mismatch|payload checksum mismatch|not a chunkfs block file|holds another block \(.*\)); discarded, fetching it again \(EIO\)$")
def test_corrupt_block_files_are_refused(nginx, mount, medium, tmp_path):
    """After a spilled pass and an unmount, five block files are spoiled in place:
    a payload byte flipped, a header byte flipped, one truncated, one overwritten
    with random bytes, one replaced by another block's (valid) file. A remount
    serves the right bytes, counts five checksum failures, logs each path,
    deletes the files, fetches those blocks again and spills them anew."""
    cache = str(tmp_path / "spill")
    args = ("--mem-cache=16M", "--disk-cache=1G", "--cache-dir=" + cache)
    srv = nginx(medium)
    m = mount(srv.url, *args)
    check_all(m, medium)
    assert m.unmount() == []
    files = block_files(cache)
    assert len(files) >= dataset_bytes(medium) // MiB
    rng = random.Random(99)
    victims = rng.sample(files, 6)
    flip, header_flip, trunc, noise, foreign, donor = victims
    sizes = {}
    refetch = 0      # bytes of the five blocks
    for path in victims[:5]:
        sizes[path] = os.path.getsize(path)
        refetch += check_block_file(path, medium, MiB)["block_len"]
    with open(flip, "r+b") as f:
        f.seek(sizes[flip] // 2)
        byte = f.read(1)
        f.seek(sizes[flip] // 2)
        f.write(bytes([byte[0] ^ 0x40]))
    with open(header_flip, "r+b") as f:
        f.seek(24)                     # the object size
        byte = f.read(1)
        f.seek(24)
        f.write(bytes([byte[0] ^ 0x01]))
    os.truncate(trunc, sizes[trunc] // 2)
    with open(noise, "wb") as f:
        f.write(rng.randbytes(sizes[noise]))
    with open(donor, "rb") as f:
        donor_bytes = f.read()
    with open(foreign, "wb") as f:
        f.write(donor_bytes)
    spoiled = {}
    for path in victims[:5]:
        with open(path, "rb") as f:
            spoiled[path] = f.read()
    m2 = mount(srv.url, *args)
    check_all(m2, medium)
    st = m2.stats()
    log = m2.read_log()
    print("after the remount: checksum_failures %d, fetched %d bytes, disk hits %d"
          % (st["checksum_failures"], st["bytes_fetched"], st["disk_hits"]))
    assert st["checksum_failures"] == 5
    assert st["read_errors"] == 0
    # the five blocks were fetched again, and (readahead aside) little else
    assert refetch <= st["bytes_fetched"] <= refetch + 16 * MiB, (st["bytes_fetched"], refetch)
    for path in victims[:5]:
        assert any(path in line for line in log.splitlines()), "no log line names %s" % path
        assert not (os.path.exists(path) and open(path, "rb").read() == spoiled[path]), \
            "%s is still there" % path
    assert m2.unmount() == []
    for path in victims[:5]:
        if os.path.exists(path):
            check_block_file(path, medium, MiB)
    m3 = mount(srv.url, *args)
    check_all(m3, medium)
    st = m3.stats()
    assert st["bytes_fetched"] == 0 and st["checksum_failures"] == 0


# --------------------------------------------------------------------------
# 5. a crash leaves a usable cache


@pytest.mark.budget(90)
# A kill between deleting an evicted block's file and recording it leaves a record without
# its file (src/spill/room.c, disk_delete_files): the next mount finds out on reading it back.
@pytest.mark.log_allow(r"^chunk-[\d-]+\.bin bytes \d+-\d+: spilled block \d+ \(\S+\): No such file "
                       r"or directory; discarded, fetching it again \(ENOENT\)$")
def test_crash_while_spilling(nginx, mount, medium, tmp_path):
    """kill -9 of the daemon while it reads 96 MiB through 16 MiB of memory into
    a 48 MiB spill tier (the writer busy), three times at different points;
    each time the next mount on the same directory finds tmp/ empty and du
    under the cap; the last one reads every byte right."""
    cache = str(tmp_path / "spill")
    cap = 48 * MiB
    args = ("--mem-cache=16M", "--disk-cache=48M", "--cache-dir=" + cache)
    srv = nginx(medium)
    chunks = index_chunks(medium)
    for round_, spills in enumerate((4, 12, 24)):
        m = mount(srv.url, *args)
        assert tmp_files(cache) == [], "tmp/ not emptied at mount (round %d)" % round_
        assert max(du(cache)) <= cap
        errors, wrong = [], []

        def reader():
            try:
                for _ in range(5):   # until the daemon is killed
                    for name, size in chunks[round_:] + chunks[:round_]:
                        assert read_direct(m.file(name), size) == \
                            source_sha256(os.path.join(medium, name)), "WRONG BYTES in %s" % name
            except OSError as e:   # ENOTCONN or ECONNABORTED once the daemon is gone
                errors.append(e)
            except AssertionError as e:   # a short read of the dying mount is not wrong bytes
                (wrong if "WRONG BYTES" in str(e) else errors).append(e)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        wait_for(lambda: m.stats()["spills"] >= spills or not t.is_alive(), scaled(30),
                 "%d spills" % spills)
        assert t.is_alive(), "the reader ended before %d spills: %s" % (spills, errors)
        m.kill()
        t.join(scaled(30))
        assert not t.is_alive(), "a reader stayed blocked on the dead mount"
        assert not wrong, wrong
        assert force_unmount(m.path)
        leftover = tmp_files(cache)
        print("round %d: killed after >= %d spills; %d file(s) left in tmp/; reader: %s"
              % (round_, spills, len(leftover), errors or "finished"))
        alloc, apparent = du_command(cache)
        assert alloc <= cap and apparent <= cap, (alloc, apparent)
    # what a crash between the journal's record and the rename leaves: a torn
    # temporary, and blocks the journal lists without their file
    with open(os.path.join(url_dir(cache), "tmp", "0123456789abcdef-3.XXXXXX"), "wb") as f:
        f.write(b"CFSBLK\r\n" + bytes(5000))
    for path in block_files(cache)[:2]:
        os.unlink(path)
    m = mount(srv.url, *args)
    assert tmp_files(cache) == []
    with DuSampler(cache, cap, m) as sampler:
        check_all(m, medium)
    print(sampler.check())
    st = m.stats()
    assert st["read_errors"] == 0
    assert m.unmount() == []
    assert max(du_command(cache)) <= cap
    for path in block_files(cache):
        check_block_file(path, medium, MiB)


# --------------------------------------------------------------------------
# 5b. a block spilled again


@pytest.fixture
def delay_renames(tmp_path):
    """Factory: delay_renames(pid, usec) attaches strace to pid, delaying each
    rename it makes by usec microseconds; returns the path of strace's log.
    strace is stopped by its PID (which detaches it) at teardown."""
    tracers = []

    def start(pid, usec):
        if not shutil.which("strace"):
            pytest.skip("no strace")
        log = str(tmp_path / ("strace%d.log" % len(tracers)))
        calls = "rename,renameat,renameat2"
        p = subprocess.Popen(["strace", "-f", "-qq", "-o", log, "-p", str(pid), "-e",
                              "trace=" + calls, "-e", "inject=%s:delay_enter=%d" % (calls, usec)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        tracers.append(p)

        def attached():
            if p.poll() is not None:
                pytest.skip("strace cannot attach to PID %d" % pid)
            with open("/proc/%d/status" % pid) as f:
                return "TracerPid:\t0\n" not in f.read()
        wait_for(attached, scaled(10), "strace to attach to PID %d" % pid)
        return log

    yield start
    for p in tracers:
        stop_process(p)


def is_block_of(path, name):
    """The block file at path holds a block of the object name; False once the
    spill writer has evicted it (it still writes while the test lists)."""
    try:
        with open(path, "rb") as f:
            return parse_block(f.read())["name"] == name
    except FileNotFoundError:
        return False


def test_respill_counts_both_files(nginx, mount, medium, tmp_path, delay_renames):
    """A block spilled again (it gained bytes since) is written beside its older
    file, which stays until the new one is renamed over it: the cap must count
    both meanwhile. The disk is filled to its cap with small blocks (LRU evicts
    them one by one, so the room left is small), then a 252 KiB block gains its
    last 4 KiB and is spilled again while every rename of the daemon is held
    50 ms (strace): du, sampled every 2 ms, never exceeds the cap."""
    cache = str(tmp_path / "spill")
    cap, bs = 2 * MiB, 256 * KiB
    srv = nginx(medium)
    m = mount(srv.url, "--mem-cache=4M", "--disk-cache=2M", "--block-size=256K",
              "--readahead=0", "--cache-dir=" + cache)
    chunks = index_chunks(medium)
    srcs = [open(os.path.join(medium, name), "rb") for name, _ in chunks]
    fds = [open_direct(m.file(name)) for name, _ in chunks]
    buf = mmap.mmap(-1, bs)
    view = memoryview(buf)

    def read(k, index, lo, hi):
        fd, f = fds[k], srcs[k]
        n = os.preadv(fd, [view[:hi - lo]], index * bs + lo)
        f.seek(index * bs + lo)
        assert n == hi - lo and buf[:n] == f.read(n), "WRONG BYTES in %s" % chunks[k][0]

    small = iter([(k, i) for k in range(1, len(chunks)) for i in range(chunks[k][1] // bs)])
    try:
        for i in range(4):                      # four big blocks, all but their last 4 KiB
            read(0, i, 0, bs - 4 * KiB)
        for _ in range(40):                     # out of memory, onto the disk
            read(*next(small), 0, 4 * KiB)
        for i in range(4):                      # read back: the most recently used on disk
            read(0, i, 0, 4 * KiB)
        for _ in range(40):
            read(*next(small), 0, 4 * KiB)
        for _ in range(300):                    # small blocks up to the cap
            if m.stats()["disk_evictions"] >= 3:
                break
            read(*next(small), 0, 4 * KiB)
        st = m.stats()
        assert st["disk_evictions"] >= 3 and st["disk_hits"] >= 4, st
        big = [p for p in block_files(cache) if p.endswith("-0") and is_block_of(p, chunks[0][0])]
        assert len(big) == 1
        log = delay_renames(m.pid, 50000)
        with DuSampler(cache, cap, m, interval=0.002, stats_every=1000) as sampler:
            read(0, 0, bs - 4 * KiB, bs)        # block 0 gains its last bytes...
            for _ in range(40):                 # ...and leaves memory: spilled again
                read(*next(small), 0, 4 * KiB)
            # renameat(tmp/ fd, "<name>.<random>", blocks/ fd, "<name>")
            moved = '"%s")' % os.path.basename(big[0])
            wait_for(lambda: any(moved in line for line in open(log)), scaled(10),
                     "the second spill of %s" % big[0])
        print(sampler.check())
    finally:
        for fd in fds:
            os.close(fd)
        for f in srcs:
            f.close()
        view.release()
        buf.close()
    b = check_block_file(big[0], medium, bs)
    assert b["extents"] == [(0, bs)], b["extents"]


# --------------------------------------------------------------------------
# 6. a full disk


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 24 MiB tmpfs (unmounted at teardown; list it before `mount`), mode 0700 (a
    cache directory writable by others is refused)."""
    path = str(tmp_path / "tmpfs")
    os.mkdir(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", path],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.strip())
    yield path
    r = subprocess.run(["umount", path], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)
        pytest.fail("umount %s: %s" % (path, r.stderr.strip()), pytrace=False)


def fill_up(path):
    """Write path until the file system is full; returns its size."""
    block = bytes(MiB)
    size = 0
    with open(path, "wb", buffering=0) as f:
        for n in (MiB, 64 * 1024, 4096, 512, 1):
            for _ in range(1 << 20):
                try:
                    size += f.write(block[:n])
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    return size


def read_prefix(m, src, name, nbytes):
    """Read the first nbytes of name (O_DIRECT, 1 MiB preads) and compare them with the source."""
    buf = mmap.mmap(-1, MiB)
    fd = open_direct(m.file(name))
    try:
        with open(os.path.join(src, name), "rb") as f:
            for off in range(0, nbytes, MiB):
                n = os.preadv(fd, [buf], off)
                assert buf[:n] == f.read(MiB), "WRONG BYTES in %s at %d" % (name, off)
    finally:
        os.close(fd)
        buf.close()


def log_lines(m, needle):
    return [line for line in m.read_log().splitlines() if needle in line]


@pytest.mark.log_allow(r"^cannot spill to \S+: No space left on device; blocks are not spilled until writes work again$")
def test_full_disk(nginx, small_tmpfs, mount, medium, tmp_path):
    """A spill tier on a full 24 MiB tmpfs (cap 64 MiB, larger than the space):
    writes fail with ENOSPC, yet every read is right; spill_errors counts them,
    one log line says so. Once space is freed, spilling works again (and one
    log line says that)."""
    cache = os.path.join(small_tmpfs, "cache")
    srv = nginx(medium)
    m = mount(srv.url, "--mem-cache=8M", "--disk-cache=64M", "--cache-dir=" + cache)
    chunks = index_chunks(medium)
    filler = os.path.join(small_tmpfs, "filler")
    fill_up(filler)
    check_all(m, medium, names=[chunks[0][0]])
    st = m.stats()
    print("full: spills %d, spill_errors %d" % (st["spills"], st["spill_errors"]))
    assert st["read_errors"] == 0
    assert st["spill_errors"] > 0
    assert st["spills"] == 0
    failing = log_lines(m, "cannot spill")
    assert len(failing) == 1, "expected one log line about the failing writes:\n%s" % m.read_log()
    assert "No space left on device" in failing[0]
    assert not log_lines(m, "works again")
    os.unlink(filler)
    read_prefix(m, medium, chunks[1][0], 12 * MiB)   # less than the space freed, more than memory
    wait_for(lambda: m.stats()["spills"] >= 4, scaled(10), "spills once space is back")
    st2 = m.stats()
    print("freed: spills %d, spill_errors %d" % (st2["spills"], st2["spill_errors"]))
    assert st2["read_errors"] == 0
    assert len(log_lines(m, "works again")) == 1, m.read_log()
    assert len(log_lines(m, "cannot spill")) == 1, m.read_log()
    check_all(m, medium)     # fills the tmpfs again: more failures, right bytes
    assert m.stats()["read_errors"] == 0
    assert m.unmount() == []


@pytest.mark.log_allow(r"^cannot spill to \S+: No space left on device; blocks are not spilled until writes work again$",
                       r"^cannot append to \S+/journal: No space left on device$")
def test_full_disk_keeps_the_journal_whole(nginx, small_tmpfs, mount, medium, tmp_path):
    """The spill tier's journal must survive a full disk: enough failed writes
    on a full tmpfs that the journal reaches the end of its page (a record
    appended across it is written short), then space comes back and blocks are
    spilled again. The next mount must know those blocks: it reads them back
    without fetching them, and a smaller cap holds for every file there."""
    cache = os.path.join(small_tmpfs, "cache")
    srv = nginx(medium)
    args = ("--mem-cache=8M", "--cache-dir=" + cache)
    m = mount(srv.url, "--disk-cache=64M", *args)
    chunks = index_chunks(medium)
    filler = os.path.join(small_tmpfs, "filler")
    fill_up(filler)
    check_all(m, medium)       # about 90 failed writes, two journal records each
    journal = os.path.join(url_dir(cache), "journal")
    st = m.stats()
    print("full: spill_errors %d, journal %d bytes"
          % (st["spill_errors"], os.path.getsize(journal)))
    assert os.path.getsize(journal) >= 4096 - 32, "the journal did not reach its page's end"
    os.unlink(filler)
    name = chunks[0][0]
    read_prefix(m, medium, name, 8 * MiB)
    assert m.unmount() == []   # the flush writes what memory holds
    size = os.path.getsize(journal)
    spilled = block_files(cache)
    print("after the unmount: %d block files, journal %d bytes ((size - 24) %% 32 = %d)"
          % (len(spilled), size, (size - 24) % 32))
    assert spilled
    m2 = mount(srv.url, "--disk-cache=64M", *args)
    st = m2.stats()
    assert st["disk_blocks"] == len(spilled), \
        "the remount knows %d of the %d block files" % (st["disk_blocks"], len(spilled))
    read_prefix(m2, medium, name, 8 * MiB)
    assert m2.stats()["bytes_fetched"] == 0, "blocks on disk were fetched again"
    assert m2.unmount() == []
    m3 = mount(srv.url, "--disk-cache=2M", *args)
    alloc, apparent = du_command(cache)
    assert max(alloc, apparent) <= 2 * MiB, "du %d/%d bytes over a cap of 2 MiB" % (alloc,
                                                                                   apparent)
    assert m3.stats()["read_errors"] == 0


# --------------------------------------------------------------------------
# 7. an object that changed between two mounts


def test_changed_object_is_fetched_again(nginx, mount, tmp_path):
    """A chunk replaced on the server (same size, new mtime, so a new ETag)
    between two mounts: the remount serves its new bytes and reads the other
    chunks from disk; a third mount reads the new bytes from disk."""
    src = str(tmp_path / "ds")
    litgen.write_dataset(src, chunks=4, chunk_bytes=8 * MiB, seed=21)
    cache = str(tmp_path / "spill")
    args = ("--mem-cache=8M", "--disk-cache=1G", "--cache-dir=" + cache)
    srv = nginx(src)
    chunks = index_chunks(src)
    sums = {name: sha256_file(os.path.join(src, name)) for name, _ in chunks}

    def check(m):
        for name, size in chunks:
            assert read_direct(m.file(name), size) == sums[name], "WRONG BYTES in %s" % name

    m = mount(srv.url, *args)
    check(m)
    assert m.unmount() == []
    name, size = chunks[1]
    path = os.path.join(src, name)
    st = os.stat(path)
    with open(path, "wb") as f:
        f.write(random.Random(77).randbytes(size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))
    sums[name] = sha256_file(path)
    m2 = mount(srv.url, *args)
    check(m2)
    st2 = m2.stats()
    print("after the change: fetched %d bytes (the chunk is %d), disk hits %d, validations %d"
          % (st2["bytes_fetched"], size, st2["disk_hits"], st2["validations"]))
    assert st2["bytes_fetched"] == size
    assert st2["read_errors"] == st2["checksum_failures"] == 0
    assert st2["disk_hits"] >= sum(s for n, s in chunks if n != name) // MiB
    assert any("changed" in line and name in line for line in m2.read_log().splitlines()), \
        m2.read_log()
    assert m2.unmount() == []
    m3 = mount(srv.url, *args)
    check(m3)
    assert m3.stats()["bytes_fetched"] == 0


# --------------------------------------------------------------------------
# 8. --spill-compress


def test_spill_compress(nginx, mount, tmp_path):
    """Compressible chunks spilled with --spill-compress take less room than
    their bytes (zstd frames that decompress to the source's bytes), and a
    remount reads them back right from disk."""
    src = str(tmp_path / "text")
    litgen.write_dataset(src, chunks=4, chunk_bytes=8 * MiB, seed=8, alphabet=b"abcdefghijklmnop")
    total = dataset_bytes(src)
    cache = str(tmp_path / "spill")
    args = ("--mem-cache=8M", "--disk-cache=1G", "--spill-compress", "--cache-dir=" + cache)
    srv = nginx(src)
    m = mount(srv.url, *args)
    check_all(m, src)
    assert m.unmount() == []
    alloc, apparent = du_command(cache)
    print("%.1f MiB of data take %.1f MiB on disk (%.1f MiB apparent)"
          % (total / MiB, alloc / MiB, apparent / MiB))
    assert alloc < 0.75 * total and apparent < 0.75 * total
    files = block_files(cache)
    assert len(files) >= total // MiB
    parsed = [check_block_file(p, src, MiB) for p in files]
    assert all(b["zstd"] for b in parsed)
    for b in parsed[:3]:
        r = subprocess.run(["zstd", "-dc"], input=b["payload"], capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(src, b["name"]), "rb") as f:
            f.seek(b["index"] * MiB)
            assert r.stdout == f.read(b["block_len"]), "%s %d" % (b["name"], b["index"])
    m2 = mount(srv.url, *args)
    check_all(m2, src)
    st = m2.stats()
    assert st["bytes_fetched"] == 0
    assert st["disk_hits"] >= total // MiB
    assert st["checksum_failures"] == 0


# --------------------------------------------------------------------------
# more: decompressed views, another block size, the defaults


def test_changed_compressed_chunk_drops_its_decompressed_blocks(nginx, mount, tmp_path):
    """The blocks of a .decompressed/ view are spilled too, and checked against
    the ETag of the compressed object they come from: after a remount they are
    read back without a fetch; once the compressed chunk changed on the
    server, its view serves the new decompressed bytes, not the spilled ones."""
    src = str(tmp_path / "zst")
    shutil.copytree(data_dir("litdata-mixed-zstd"), src)
    cache = str(tmp_path / "spill")
    srv = nginx(src)
    m = mount(srv.url, "--cache-dir=" + cache)
    names = sorted(n for n in os.listdir(m.file(".decompressed")) if n != "index.json")
    assert names
    sums = {n: sha256_file(m.file(".decompressed", n)) for n in names}
    assert m.unmount() == []
    spilled = [parse_block(open(p, "rb").read())["name"] for p in block_files(cache)]
    assert {".decompressed/" + n for n in names} <= set(spilled), spilled
    m2 = mount(srv.url, "--cache-dir=" + cache)
    for n in names:
        assert sha256_file(m2.file(".decompressed", n)) == sums[n], n
    st = m2.stats()
    assert st["bytes_fetched"] == 0 and st["disk_hits"] >= len(names)
    assert m2.unmount() == []
    # chunk-0-3: the same decompressed length, other bytes at its end, compressed anew
    name = names[3]
    zpath = os.path.join(src, name.replace(".bin", ".zstd.bin"))
    plain = bytearray(subprocess.run(["zstd", "-dc", zpath], capture_output=True, check=True,
                                     timeout=30).stdout)
    plain[-64:] = bytes(b ^ 0x5A for b in plain[-64:])
    old = os.stat(zpath)
    with open(zpath, "wb") as f:
        f.write(subprocess.run(["zstd", "-q", "-c", "-3"], input=bytes(plain), capture_output=True,
                               check=True, timeout=30).stdout)
    os.utime(zpath, ns=(old.st_atime_ns, old.st_mtime_ns - 3600 * 10**9))
    sums[name] = hashlib.sha256(plain).hexdigest()
    m3 = mount(srv.url, "--cache-dir=" + cache)
    for n in names:
        assert sha256_file(m3.file(".decompressed", n)) == sums[n], "stale bytes in %s" % n
    st = m3.stats()
    print("after the change: fetched %d bytes (the new compressed chunk is %d)"
          % (st["bytes_fetched"], os.path.getsize(zpath)))
    assert 0 < st["bytes_fetched"] <= 2 * os.path.getsize(zpath)
    assert st["read_errors"] == st["checksum_failures"] == 0


def spill_first_chunk(mount, url, src, cache, disk_cache):
    """Read the first chunk of src through a mount with 8 MiB of memory and
    spill it to cache; unmount (which writes what memory held). Its name."""
    name, size = index_chunks(src)[0]
    m = mount(url, "--mem-cache=8M", disk_cache, "--cache-dir=" + cache)
    check_all(m, src, names=[name])
    assert m.unmount() == []
    assert len(block_files(cache)) >= size // MiB
    return name


def test_smaller_cap_at_remount(nginx, mount, medium, tmp_path):
    """A remount with a smaller cap evicts down to it before anything else
    (du is under the new cap at once), quietly, and the blocks kept are read
    back without a fetch."""
    cache = str(tmp_path / "spill")
    srv = nginx(medium)
    name = spill_first_chunk(mount, srv.url, medium, cache, "--disk-cache=64M")
    m2 = mount(srv.url, "--mem-cache=8M", "--disk-cache=8M", "--readahead=0",
               "--cache-dir=" + cache)
    alloc, apparent = du_command(cache)
    st = m2.stats()
    assert max(alloc, apparent) <= 8 * MiB, (alloc, apparent)
    assert st["disk_evictions"] > 0 and st["disk_bytes"] <= 8 * MiB
    files = block_files(cache)
    kept = sorted(check_block_file(p, medium, MiB)["index"] for p in files)
    assert 0 < len(kept) == st["disk_blocks"]
    # the blocks kept (an order that no spill of this mount can evict first)
    buf = mmap.mmap(-1, MiB)
    fd = open_direct(m2.file(name))
    try:
        with open(os.path.join(medium, name), "rb") as f:
            for i in kept:
                n = os.preadv(fd, [buf], i * MiB)
                f.seek(i * MiB)
                assert buf[:n] == f.read(MiB), "WRONG BYTES in block %d" % i
    finally:
        os.close(fd)
        buf.close()
    st = m2.stats()
    assert st["bytes_fetched"] == 0 and st["disk_hits"] == len(kept)
    check_all(m2, medium, names=[name])
    st = m2.stats()
    assert st["read_errors"] == st["checksum_failures"] == 0
    assert not log_lines(m2, "cannot append"), m2.read_log()


def mount_seconds(mount, url, *args):
    """Seconds from starting chunkfs until the mount is ready, and the Mount."""
    t0 = time.monotonic()
    m = mount(url, *args)
    return time.monotonic() - t0, m


def test_mount_time_does_not_grow_with_the_cache(nginx, mount, medium, tmp_path):
    """A cache whose journal lists 50,000 blocks mounts about as fast as an
    empty one: the journal is replayed, no block file is looked at (none of
    these 50,000 exists, yet all are counted), and it is rewritten compact."""
    url = nginx(medium).url
    empty, full = str(tmp_path / "empty"), str(tmp_path / "full")
    args = ("--mem-cache=16M", "--disk-cache=1G")
    m = mount(url, *args, "--cache-dir=" + full)
    assert m.unmount() == []
    journal = os.path.join(url_dir(full), "journal")
    with open(journal, "rb") as f:
        block_size = struct.unpack_from("<Q", f.read(24), 16)[0]
    count, cost = 50000, 4096 + 64
    with open(journal, "wb") as f:
        f.write(journal_header(block_size))
        f.write(b"".join(journal_record(0x5eed0000 + i // 100, i % 100, 7, cost)
                         for i in range(count)))
    times = {"empty": [], "full": []}
    for _ in range(3):
        for kind, cache in (("empty", empty), ("full", full)):
            seconds, m = mount_seconds(mount, url, *args, "--cache-dir=" + cache)
            times[kind].append(seconds)
            blocks = m.stats()["disk_blocks"]
            assert blocks == (count if kind == "full" else 0), (kind, blocks)
            assert m.unmount() == []
    assert os.path.getsize(journal) == 24 + 32 * count
    assert os.listdir(os.path.join(url_dir(full), "blocks")) == []
    t_empty, t_full = sorted(times["empty"])[1], sorted(times["full"])[1]
    print("mount: empty cache %.3f s, 50,000 blocks %.3f s (medians of 3)" % (t_empty, t_full))
    assert t_full < 2 * t_empty + scaled(0.5), times


def test_other_block_size_starts_afresh(nginx, mount, medium, tmp_path):
    """A cache written with 1 MiB blocks is emptied by a mount with 256 KiB
    blocks (its files could not be used), which then spills its own."""
    cache = str(tmp_path / "spill")
    srv = nginx(medium)
    name = spill_first_chunk(mount, srv.url, medium, cache, "--disk-cache=1G")
    size = os.path.getsize(os.path.join(medium, name))
    m2 = mount(srv.url, "--mem-cache=8M", "--disk-cache=1G", "--block-size=256K",
               "--cache-dir=" + cache)
    assert block_files(cache) == []
    st = m2.stats()
    assert st["disk_blocks"] == 0
    check_all(m2, medium, names=[name])
    st = m2.stats()
    assert st["bytes_fetched"] >= size and st["checksum_failures"] == 0
    assert m2.unmount() == []
    files = block_files(cache)
    assert len(files) >= size // (256 * KiB)
    for path in files:
        assert check_block_file(path, medium, 256 * KiB)["block_len"] <= 256 * KiB


def test_defaults(nginx, small_tmpfs, mount, tmp_path):
    """Without --disk-cache the cap is a tenth of the free space of --cache-dir
    (and of the few KiB a new cache's directories and journal take);
    without --cache-dir the cache is $XDG_CACHE_HOME/chunkfs (the other
    defaults, /var/cache/chunkfs for root and ~/.cache/chunkfs, are
    test_cache_dir.py's: the suite runs as root and must not write
    /var/cache); --disk-cache=0 writes nothing."""
    src = data_dir("litdata-mixed")
    url = nginx(src).url
    sv = os.statvfs(small_tmpfs)
    free = sv.f_bavail * sv.f_frsize
    m = mount(url, "--cache-dir=" + small_tmpfs)
    cap = m.stats()["disk_cap"]
    assert free // 10 <= cap <= (free + 64 * KiB) // 10, (free, cap)
    m = mount(url, "--disk-cache=8M", env=chunkfs_env(XDG_CACHE_HOME=str(tmp_path / "xdg")))
    check_all(m, src)
    assert m.stats()["disk_cap"] == 8 * MiB
    top = url_dir(str(tmp_path / "xdg/chunkfs"))
    assert sorted(os.listdir(top)) == ["blocks", "journal", "lock", "tmp"]
    assert m.unmount() == []
    assert len(block_files(str(tmp_path / "xdg/chunkfs"))) == len(index_chunks(src))
    off = tmp_path / "off"
    m = mount(url, "--disk-cache=0", "--cache-dir=" + str(off))
    check_all(m, src)
    st = m.stats()
    assert st["disk_cap"] == st["spills"] == st["disk_bytes"] == 0
    assert m.unmount() == []
    assert not off.exists()


def test_default_cap_holds_across_remounts(nginx, small_tmpfs, mount, medium):
    """The default cap counts what the cache holds as room it has: a cache
    filled to that cap and mounted again keeps its cap and every block
    (were the cap a tenth of what is left free, each mount would lower it
    and evict). 64 KiB blocks, so that a few KiB of cap make a difference."""
    url = nginx(medium).url
    args = ("--cache-dir=" + small_tmpfs, "--mem-cache=8M", "--block-size=64K")
    m = mount(url, *args)
    cap = m.stats()["disk_cap"]
    check_all(m, medium)
    assert m.unmount() == []
    kept = len(block_files(small_tmpfs))
    alloc, _ = du_command(small_tmpfs)
    assert alloc > 0.8 * cap, "the cache was not filled: du %d of a cap of %d" % (alloc, cap)
    for _ in range(2):
        m = mount(url, *args)
        st = m.stats()
        print("cap %d, remounted %d; blocks %d, remounted %d" % (cap, st["disk_cap"], kept,
                                                                 st["disk_blocks"]))
        assert abs(st["disk_cap"] - cap) <= 64 * KiB, (cap, st["disk_cap"])
        assert st["disk_evictions"] == 0 and st["disk_blocks"] == kept
        assert m.unmount() == []
        assert len(block_files(small_tmpfs)) == kept


def test_uncounted_files_are_swept(nginx, mount, medium, tmp_path):
    """Files in blocks/ that the journal does not count (left by a crash
    between a deletion and its record, or put there by someone else) would
    take room the cap does not see: the first job of the next mount's writer
    deletes them; the blocks the journal counts stay and are read back."""
    cache = str(tmp_path / "spill")
    srv = nginx(medium)
    name = spill_first_chunk(mount, srv.url, medium, cache, "--disk-cache=1G")
    blocks = os.path.join(url_dir(cache), "blocks")
    kept = sorted(os.listdir(blocks))
    strays = ["%016x-%d" % (0x5eed, 3), "notes.txt", ".hidden"]
    for stray in strays:
        with open(os.path.join(blocks, stray), "wb") as f:
            f.write(os.urandom(10000))
    m = mount(srv.url, "--mem-cache=8M", "--disk-cache=1G", "--cache-dir=" + cache)
    wait_for(lambda: sorted(os.listdir(blocks)) == kept, scaled(10), "the strays to go")
    assert log_lines(m, "deleted 3 files the journal did not count"), m.read_log()
    check_all(m, medium, names=[name])
    st = m.stats()
    assert st["bytes_fetched"] == 0 and st["disk_hits"] == len(kept), st
