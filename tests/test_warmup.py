"""`chunkfs warmup`: files of a mount fetched into its cache tiers ahead of a job
through the mount's virtual xattrs (user.chunkfs.warm, user.chunkfs.residency),
in the order given, within the caps; --check says where the bytes are.

Reads after a warm-up go through O_DIRECT (spillutil.read_direct), so that the
page cache never answers for the daemon, and the stats' bytes_fetched shows
what the server sent."""
import errno
import hashlib
import io
import mmap
import os
import re
import subprocess
import tarfile

import pytest

import formats
import litgen
from cfsutil import (KiB, MiB, chunkfs_env, data_dir, index_chunks, open_direct, scaled,
                     wait_for)
from spillutil import check_all, read_direct

CAPS = ("--mem-cache=8M", "--disk-cache=64M")
PROGRESS = re.compile(r"^chunkfs warmup: +\d+%, \d+/\d+ files, .* of .*, .*/s, ETA ")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A generated LitData dataset of 6 chunks of about 4 MiB (24 MiB): three
    times the memory tier of CAPS."""
    out = str(tmp_path_factory.mktemp("warmup-ds"))
    litgen.write_dataset(out, chunks=6, chunk_bytes=4 * MiB, seed=14)
    return out


def warmup(chunkfs_bin, *args, stdin=None, timeout=120):
    """Run `chunkfs warmup ARGS` to its end: (exit status, stdout, stderr)."""
    r = subprocess.run([chunkfs_bin, "warmup"] + [str(a) for a in args], input=stdin,
                       capture_output=True, text=True, timeout=scaled(timeout),
                       env=chunkfs_env(), stdin=None if stdin is not None else subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def check_lines(chunkfs_bin, *paths):
    """`chunkfs warmup --check PATHS`: {path or "total": (size, remote bytes)}."""
    rc, out, err = warmup(chunkfs_bin, "--check", *paths)
    assert rc == 0, err
    got = {}
    for line in out.splitlines():
        m = re.match(r"^(.*): .*, memory (\d+) .*, disk (\d+) .*, remote (\d+) .*, cached (\d+)%$",
                     line)
        assert m, "not a --check line: %r" % line
        got[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))
    return got


def fetched(m):
    return m.stats()["bytes_fetched"]


def test_warmed_dataset_is_read_without_fetching(nginx, mount, dataset, chunkfs_bin):
    """24 MiB warmed through 8 MiB of memory into the spill tier, then read whole
    with O_DIRECT: every byte right, and not one more byte from the server."""
    m = mount(nginx(dataset).url, *CAPS)
    rc, _, err = warmup(chunkfs_bin, m.path)
    assert rc == 0, err
    before = m.stats()
    check_all(m, dataset)
    after = m.stats()
    assert after["bytes_fetched"] == before["bytes_fetched"], (before, after)
    assert after["disk_hits"] > before["disk_hits"]


def test_check_before_and_after_a_remount(nginx, mount, dataset, chunkfs_bin, tmp_path):
    """--check: nothing cached on a fresh cache; all of it (remote 0) after a
    warm-up, and again after a remount on the same cache directory."""
    url = nginx(dataset).url
    cache = "--cache-dir=%s" % (tmp_path / "shared")
    m = mount(url, cache, *CAPS)
    total = check_lines(chunkfs_bin, m.path)["total"]
    assert total[2] > 0 and total[3] == 0, total
    rc, _, err = warmup(chunkfs_bin, m.path)
    assert rc == 0, err
    total = check_lines(chunkfs_bin, m.path)["total"]
    assert total[2] == 0 and total[3] == 100, total
    assert m.unmount() == []
    m2 = mount(url, cache, *CAPS)
    lines = check_lines(chunkfs_bin, m2.path)
    for name, size in index_chunks(dataset):
        mem, disk, remote, cached = lines[m2.file(name)]
        assert remote == 0 and disk >= size and cached == 100, (name, lines[m2.file(name)])
    before = fetched(m2)
    check_all(m2, dataset)
    assert fetched(m2) == before


def test_item_warms_its_range_only(nginx, mount, dataset, chunkfs_bin):
    """An item of .items/ warms the item's bytes, not its chunk's."""
    m = mount(nginx(dataset).url, *CAPS)
    items = m.file(".items")
    names = sorted(n for n in os.listdir(items) if not n.endswith(".d"))
    item = os.path.join(items, names[len(names) // 2])
    size = os.stat(item).st_size
    before = fetched(m)
    rc, _, err = warmup(chunkfs_bin, item)
    assert rc == 0, err
    got = fetched(m) - before
    assert size <= got <= size + 64 * KiB, (size, got)
    assert check_lines(chunkfs_bin, item)[item][3] == 100


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A tar of a 6 MiB member between two 5 MiB ones."""
    out = str(tmp_path_factory.mktemp("warmup-tar"))
    with tarfile.open(os.path.join(out, "shard.tar"), "w", format=tarfile.USTAR_FORMAT) as t:
        for name, size in (("a.bin", 5 * MiB), ("b.bin", 6 * MiB + 123), ("c.bin", 5 * MiB)):
            info = tarfile.TarInfo(name)
            info.size = size
            t.addfile(info, io.BytesIO(os.urandom(size)))
    return out


def test_tar_member_warms_its_range_only(nginx, mount, archive, chunkfs_bin):
    """A member of NAME.tar.d/ warms its bytes, not the archive's, and they are right."""
    m = mount(nginx(archive, extra_conf="        autoindex on;\n").url, *CAPS)
    member = m.file("shard.tar.d", "b.bin")
    size = os.stat(member).st_size     # the member index is built now
    before = fetched(m)
    rc, _, err = warmup(chunkfs_bin, member)
    assert rc == 0, err
    got = fetched(m) - before
    # the member index's 1 MiB windows of headers brought the member's first bytes already
    assert size - 2 * MiB <= got <= size + 64 * KiB, (size, got)
    with tarfile.open(os.path.join(archive, "shard.tar")) as t:
        want = t.extractfile("b.bin").read()
    assert read_direct(member, size) == hashlib.sha256(want).hexdigest()
    assert fetched(m) - before == got


def test_over_the_disk_cap_warms_what_fits_in_order(nginx, mount, dataset, chunkfs_bin):
    """Asked for 24 MiB with a 16 MiB disk cap: one line says so up front, the
    first chunks warm and the last is left alone."""
    m = mount(nginx(dataset).url, "--mem-cache=8M", "--disk-cache=16M")
    chunks = index_chunks(dataset)
    room, fits = 16 * MiB - MiB, []
    for name, size in chunks:
        if sum(s for _, s in fits) + size > room:
            break
        fits.append((name, size))
    assert 0 < len(fits) < len(chunks)
    paths = [m.file(name) for name, _ in chunks]
    rc, _, err = warmup(chunkfs_bin, *paths)
    assert rc == 1, err
    caps = [line for line in err.splitlines() if "cap holds" in line]
    assert len(caps) == 1 and "disk cap" in caps[0], err
    assert "%d skipped" % (len(chunks) - len(fits)) in err, err
    lines = check_lines(chunkfs_bin, *paths)
    for name, _ in fits:
        assert lines[m.file(name)][3] == 100, (name, lines)
    last = m.file(chunks[-1][0])
    assert lines[last][3] == 0, lines


def test_progress_lines_on_a_pipe(nginx, mount, tmp_path, chunkfs_bin):
    """stderr not a terminal: plain progress lines (files, bytes, rate, ETA),
    every 2 s while it runs and one at the end, no bar."""
    src = str(tmp_path / "slow")
    litgen.write_dataset(src, chunks=2, chunk_bytes=2 * MiB, seed=3)
    m = mount(nginx(src, limit_rate="768k").url, *CAPS)
    rc, _, err = warmup(chunkfs_bin, "--jobs", 1, m.path)
    assert rc == 0, err
    progress = [line for line in err.splitlines() if PROGRESS.match(line)]
    assert len(progress) >= 2, err
    assert "\r" not in err and "\033" not in err
    assert progress[-1].startswith("chunkfs warmup: 100%, 3/3 files"), progress


def test_path_outside_a_mount_is_refused(chunkfs_bin, tmp_path):
    """A file that is not inside a chunkfs mount: one line, exit status 2."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x" * 100)
    rc, out, err = warmup(chunkfs_bin, plain)
    assert rc == 2 and out == ""
    assert err.splitlines() == ["chunkfs warmup: %s: not inside a chunkfs mount" % plain], err


def test_paths_from_stdin(nginx, mount, dataset, chunkfs_bin):
    """`-` reads the paths, one a line: those are warmed, the others not."""
    m = mount(nginx(dataset).url, *CAPS)
    chunks = index_chunks(dataset)
    listed = [m.file(chunks[3][0]), m.file(chunks[1][0])]
    rc, _, err = warmup(chunkfs_bin, "-", stdin="\n".join(listed) + "\n")
    assert rc == 0, err
    lines = check_lines(chunkfs_bin, *[m.file(name) for name, _ in chunks])
    for name, _ in chunks:
        want = 100 if m.file(name) in listed else 0
        assert lines[m.file(name)][3] == want, (name, lines)


def test_decompressed_files_warm(nginx, mount, chunkfs_bin):
    """.decompressed/ of a zstd dataset: its files warm (decompressed, into the
    spill tier) and then read right without a byte from the server."""
    src = data_dir("litdata-mixed-zstd")
    m = mount(nginx(src).url, *CAPS)
    d = m.file(".decompressed")
    rc, _, err = warmup(chunkfs_bin, d)
    assert rc == 0, err
    before = fetched(m)
    for name in formats.load_index(src)["chunks"]:
        zname = name["filename"]
        want = formats.zstd_decompress(os.path.join(src, zname))
        path = os.path.join(d, zname[:-len(".zstd.bin")] + ".bin")
        assert read_direct(path, len(want)) == hashlib.sha256(want).hexdigest(), path
    assert fetched(m) == before


def test_check_on_items_fetches_only_headers(nginx, mount, dataset, chunkfs_bin):
    """--check on every item of a fresh mount, in order: at most the chunk
    headers that locate the items are fetched, no item's bytes and no
    prefetch of the next chunk (which opening the items in that order for
    reading starts)."""
    m = mount(nginx(dataset).url, *CAPS)
    items = m.file(".items")
    names = sorted(n for n in os.listdir(items) if not n.endswith(".d"))
    before = m.stats()
    lines = check_lines(chunkfs_bin, *[os.path.join(items, n) for n in names])
    after = m.stats()
    assert lines["total"][3] == 0, lines["total"]
    assert after["readahead_bytes"] == before["readahead_bytes"], (before, after)
    chunks = len(index_chunks(dataset))
    assert after["chunk_headers"] <= chunks, after
    got = after["bytes_fetched"] - before["bytes_fetched"]
    assert got <= chunks * 64 * KiB, (before, after)


def pread_direct(path, off, size=64 * KiB):
    """size bytes of path at off, read with one O_DIRECT pread (page-aligned buffer)."""
    buf = mmap.mmap(-1, size)
    fd = open_direct(path)
    try:
        n = os.preadv(fd, [buf], off)
        return bytes(buf[:n])
    finally:
        os.close(fd)
        buf.close()


def readable(path, off):
    """A read at off succeeds now."""
    try:
        pread_direct(path, off)
        return True
    except PermissionError:
        return False


@pytest.fixture
def big_file(tmp_path):
    """A directory holding big.bin, 8 MiB of random bytes."""
    root = tmp_path / "big"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(8 * MiB))
    return root


@pytest.mark.log_allow(r"big\.bin.*(403|[Pp]ermission denied)")
def test_old_failure_of_a_read_does_not_fail_a_warm(serve, mount, big_file, chunkfs_bin):
    """A read refused (403) at 2 MiB, the server restored, a read at 3 MiB served:
    a warm of the file then succeeds, the old failure being a read's, not the
    warm's; once the failed read is forgotten (mem.c's FAILED_READ_MS) every
    byte reads right without another byte from the server."""
    srv = serve(str(big_file), autoindex=True)
    m = mount(srv.url, *CAPS)
    path = m.file("big.bin")
    want = (big_file / "big.bin").read_bytes()
    srv.add_fault("big.bin", "status", code=403)
    with pytest.raises(OSError) as e:
        pread_direct(path, 2 * MiB)
    assert e.value.errno == errno.EACCES
    srv.clear_faults()
    assert pread_direct(path, 3 * MiB) == want[3 * MiB:3 * MiB + 64 * KiB]
    rc, _, err = warmup(chunkfs_bin, path)
    assert rc == 0, err
    before = fetched(m)
    wait_for(lambda: readable(path, 2 * MiB), scaled(10), "the failed read to be forgotten")
    assert read_direct(path, len(want)) == hashlib.sha256(want).hexdigest()
    assert fetched(m) == before


@pytest.mark.log_allow(r"big\.bin.*(403|[Pp]ermission denied)")
def test_failure_of_a_warm_request_fails_the_warm(serve, mount, big_file, chunkfs_bin):
    """The warm's own request refused (403): the file fails with that error, once."""
    srv = serve(str(big_file), autoindex=True)
    m = mount(srv.url, *CAPS)
    path = m.file("big.bin")
    srv.add_fault("big.bin", "status", code=403)
    rc, _, err = warmup(chunkfs_bin, path)
    assert rc == 1
    assert err.count("%s: Permission denied" % path) == 1, err


def residency(path):
    """The counts of path's user.chunkfs.residency: {"size": N, "mem": N, ...}."""
    text = os.getxattr(path, "user.chunkfs.residency").decode()
    return {k: int(v) for k, v in (f.split("=") for f in text.split())}


def test_counts_of_a_file_walked_in_batches(nginx, mount, tmp_path, chunkfs_bin):
    """A 40 MiB file of 4 KiB blocks, 10240 blocks, which warm.c walks in three
    batches of at most 4096 with the lock dropped between them: reads across
    the batch boundaries count in memory exactly the bytes fetched, and a
    warm-up warms every batch (all on disk, right, nothing fetched again)."""
    root = tmp_path / "batches"
    root.mkdir()
    want = os.urandom(40 * MiB)
    (root / "f.bin").write_bytes(want)
    m = mount(nginx(str(root), extra_conf="        autoindex on;\n").url, "--block-size=4K",
              "--mem-cache=64M", "--disk-cache=128M")
    path = m.file("f.bin")
    assert residency(path) == {"size": len(want), "mem": 0, "disk": 0, "remote": len(want),
                               "warm": 0}
    before = fetched(m)
    for off in (16 * MiB - 8 * KiB, 32 * MiB - 4 * KiB, 40 * MiB - 64 * KiB):
        assert pread_direct(path, off) == want[off:off + 64 * KiB]
    got = residency(path)
    assert got["mem"] == fetched(m) - before, (got, fetched(m) - before)
    assert got["mem"] + got["remote"] == len(want), got
    rc, _, err = warmup(chunkfs_bin, path)
    assert rc == 0, err
    got = residency(path)
    assert got["disk"] == got["warm"] == len(want) and got["remote"] == 0, got
    before = fetched(m)
    assert read_direct(path, len(want)) == hashlib.sha256(want).hexdigest()
    assert fetched(m) == before
