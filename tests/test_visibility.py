"""Failures visible where users look: .chunkfs/errors lists the newest failed
objects and ranges (time, object, range, errno, cause), bounded; --log-file
receives the log lines of a daemon (no syslog in a container), is created 0600
and is never opened through a symbolic link; text the server chose reaches
both escaped."""
import errno
import json
import os
import shutil
import stat

import pytest

import formats
import litgen
from cfsutil import (chunkfs_env, data_dir, is_mounted, open_direct, run_until_exit,
                      run_with_deadline, scaled, sha256_file, wait_for)
from itemutil import errname, errno_of

KiB = 1 << 10
MiB = 1 << 20
RING = 100                          # CFS_ERRORS_KEPT
COLUMNS = ["time", "object", "range", "errno", "cause"]
SMALL = "chunk-0-1.bin"             # the chunk the faults hit in litdata-mixed
OTHER = "chunk-1-2.bin"
BIG = "chunk-0-0.bin"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """One chunk of about 2 MiB: 500 blocks of 4 KiB to fail one by one."""
    root = tmp_path_factory.mktemp("visibility-big")
    litgen.write_dataset(str(root), chunks=1, chunk_bytes=2 * MiB,
                         item_min=64 * KiB, item_max=128 * KiB, seed=11)
    return str(root)


def errors_of(m):
    """The rows of .chunkfs/errors as dicts, checking its shape: the header
    line, then five tab-separated columns per line."""
    with open(m.file(".chunkfs", "errors"), "rb") as f:
        text = f.read().decode()
    lines = text.split("\n")
    assert lines[-1] == "", "the file does not end with a newline: %r" % text[-200:]
    assert lines[0].split("\t") == COLUMNS, lines[0]
    rows = []
    for line in lines[1:-1]:
        cols = line.split("\t")
        assert len(cols) == len(COLUMNS), "not %d columns: %r" % (len(COLUMNS), line)
        assert cols[0].endswith("Z") and "T" in cols[0] and len(cols[0]) == 24, cols[0]
        rows.append(dict(zip(COLUMNS, cols)))
    return rows


def byte_range(row):
    first, _, last = row["range"].partition("-")
    return int(first), int(last)


def pread_errno(path, off, size, direct=False):
    """The errno of one pread of [off, off + size) of path (0 on success), within
    a deadline; with direct, through O_DIRECT so the daemon sees this exact read."""
    def call():
        fd = open_direct(path) if direct else os.open(path, os.O_RDONLY)
        try:
            os.pread(fd, size, off)
            return 0
        except OSError as e:
            return e.errno
        finally:
            os.close(fd)
    return run_with_deadline(call, scaled(30), "pread of %s at %d" % (path, off))


def log_lines(path, needle):
    with open(path, errors="replace") as f:
        return [line for line in f.read().splitlines() if needle in line]


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 503; giving up after 2 attempts \(EIO\)$",
                       r"^chunk-1-2\.bin bytes \d+-\d+: HTTP 404 \(ENOENT\)$")
def test_failed_read_is_listed_and_logged_to_file(serve, mount, small, tmp_path):
    """A 503 on every attempt: the read fails with EIO, .chunkfs/errors names the
    object, the range read, EIO and the status; the daemon (no stderr, no
    syslog needed) writes the same failure to --log-file, which it created
    0600. A 404 is listed as ENOENT. The other chunks still read right."""
    os.unlink(os.path.join(small, OTHER))
    srv = serve(small)
    srv.set_fault(SMALL, "status", code=503)
    log = tmp_path / "chunkfs.log"
    m = mount(srv.url, "--retries=1", "--timeout=5", "--log-file=%s" % log, foreground=False)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    size = os.path.getsize(os.path.join(small, SMALL))
    e = pread_errno(m.file(SMALL), 0, size)
    assert e == errno.EIO, "read of %s: %s (want EIO)" % (SMALL, errname(e))
    assert pread_errno(m.file(OTHER), 0, 4096) != 0
    rows = errors_of(m)
    failed = [r for r in rows if r["object"] == SMALL]
    assert failed, "no row names %s:\n%r" % (SMALL, rows)
    assert failed[0]["errno"] == "EIO"
    assert "HTTP 503" in failed[0]["cause"], failed[0]
    first, last = byte_range(failed[0])
    assert first == 0 and last == size - 1, failed[0]
    gone = [r for r in rows if r["object"] == OTHER]
    assert gone and gone[0]["errno"] == "ENOENT" and "HTTP 404" in gone[0]["cause"], rows
    assert m.stats()["errors"] == len(rows)
    lines = log_lines(log, SMALL)
    assert any("HTTP 503" in line and "(EIO)" in line and "bytes 0-%d" % (size - 1) in line
               for line in lines), lines
    assert all(" chunkfs[%d] " % m.pid in line for line in lines), lines
    name = "chunk-1-0.bin"
    assert sha256_file(m.file(name)) == sha256_file(os.path.join(small, name))


@pytest.mark.log_allow(r"^chunk-0-0\.bin bytes \d+-\d+: HTTP 503; giving up after 1 attempts \(EIO\)$")
def test_errors_file_keeps_the_newest(serve, mount, big):
    """More failures than the ring holds: .chunkfs/errors keeps the newest 100,
    oldest first; the stats count them all."""
    srv = serve(big)
    srv.set_fault(BIG, "status", code=503)
    m = mount(srv.url, "--retries=0", "--block-size=4K", "--readahead=0")
    reads = RING + 30
    for i in range(reads):
        e = pread_errno(m.file(BIG), i * 8 * KiB, 4 * KiB, direct=True)
        assert e == errno.EIO, "read %d: %s (want EIO)" % (i, errname(e))
    rows = errors_of(m)
    assert len(rows) == RING, "%d rows, want the ring's %d" % (len(rows), RING)
    want = [(i * 8 * KiB, i * 8 * KiB + 4 * KiB - 1) for i in range(reads - RING, reads)]
    assert [byte_range(r) for r in rows] == want
    assert all(r["object"] == BIG and r["errno"] == "EIO" for r in rows), rows[:3]
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert m.stats()["errors"] == reads


@pytest.mark.log_allow(r'^chunk-0-1\.bin: ETag changed from "[^"]*" to "[^"]*-changed\\x1b\[31m\\x09forged"; the object changed on the server \(EIO\)$')
def test_server_text_is_escaped(serve, mount, small, tmp_path):
    """An ETag with an escape sequence and a tab: the ETag-change failure quotes
    it as \\x1b and \\x09 in .chunkfs/errors (its columns stay five) and in the
    log file; neither holds the raw bytes."""
    srv = serve(small)
    srv.set_fault(SMALL, "etag_change", after=1, tag="\x1b[31m\tforged")
    log = tmp_path / "chunkfs.log"
    m = mount(srv.url, "--block-size=4K", "--readahead=0", "--log-file=%s" % log)
    assert pread_errno(m.file(SMALL), 0, 4096, direct=True) == 0
    e = pread_errno(m.file(SMALL), 8192, 4096, direct=True)
    assert e == errno.EIO, "read after the ETag changed: %s (want EIO)" % errname(e)
    rows = [r for r in errors_of(m) if r["object"] == SMALL]
    assert rows and "ETag changed" in rows[0]["cause"], rows
    assert "-changed\\x1b[31m\\x09forged" in rows[0]["cause"], rows[0]
    with open(log, "rb") as f:
        text = f.read()
    assert b"-changed\\x1b[31m\\x09forged" in text, text
    with open(m.file(".chunkfs", "errors"), "rb") as f:
        assert b"\x1b" not in f.read()
    assert b"\x1b" not in text


def refused_log_file(chunkfs_bin, srv, tmp_path, log):
    """Mount srv with --log-file=log, which must be refused: the mount exits
    non-zero and mounts nothing. Returns its non-empty stderr lines."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = [chunkfs_bin, "-f", "--cache-dir=%s" % (tmp_path / "cache"), "--log-file=%s" % log,
            srv.url, str(mnt)]
    rc, stderr, _ = run_until_exit(argv, chunkfs_env(), str(mnt))
    assert rc != 0, stderr
    assert not is_mounted(str(mnt))
    return [line for line in stderr.splitlines() if line.strip()]


def test_log_file_symlink_is_refused(chunkfs_bin, small, serve, tmp_path):
    """--log-file naming a symbolic link: the mount is refused with one line
    naming the file, and the link's target is not created or written."""
    srv = serve(small)
    target = tmp_path / "target"
    link = tmp_path / "link.log"
    os.symlink(target, link)
    lines = refused_log_file(chunkfs_bin, srv, tmp_path, link)
    assert len(lines) == 1 and str(link) in lines[0] and "symbolic link" in lines[0], lines
    assert not os.path.lexists(target)
    assert srv.requests() == [], "chunkfs asked the server before refusing the log file"


def test_log_file_fifo_is_refused(chunkfs_bin, small, serve, tmp_path):
    """--log-file naming a FIFO that nobody reads: refused at once with one
    line (opened blocking, it would hang the mount before it starts)."""
    srv = serve(small)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    lines = refused_log_file(chunkfs_bin, srv, tmp_path, fifo)
    assert len(lines) == 1 and str(fifo) in lines[0], lines


def test_log_file_appends(serve, mount, small, tmp_path):
    """An existing log file is appended to, not truncated, and keeps its mode."""
    srv = serve(small)
    log = tmp_path / "chunkfs.log"
    log.write_bytes(b"earlier line\n")
    os.chmod(log, 0o640)
    m = mount(srv.url, "--log-file=%s" % log)
    wait_for(lambda: len(log.read_bytes().splitlines()) > 1, scaled(10), "a line in the log file")
    assert log.read_bytes().startswith(b"earlier line\n")
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o640
    assert sha256_file(m.file(SMALL)) == sha256_file(os.path.join(small, SMALL))


@pytest.mark.log_allow(r"^ds/chunk-0-1\.bin bytes \d+-\d+: bad chunk header: .*; its items give EIO \(EIO\)$",
                       r"^badidx/index\.json: .*: not a dataset index: not JSON: .*; showing the directory as it is \(EIO\)$",
                       r"^locked: \S+/locked/: HTTP 403 \(EACCES\)$")
def test_view_index_and_listing_failures_are_listed(nginx, mount, tmp_path):
    """Failures that are not a fetch of bytes are listed too: a chunk header the
    item view refuses (the chunk, from byte 0, EIO), an index.json that is not
    an index (no range), a directory whose listing is forbidden (EACCES)."""
    root = tmp_path / "www"
    shutil.copytree(data_dir("litdata-mixed"), root / "ds")
    header = root / "ds" / SMALL
    with open(header, "r+b") as f:             # offsets 5 and 6 swapped: they decrease
        f.seek(4 + 4 * 5)
        a, b = f.read(4), f.read(4)
        f.seek(4 + 4 * 5)
        f.write(b + a)
    (root / "badidx").mkdir()
    (root / "badidx" / "index.json").write_bytes(b"not json\n")
    (root / "badidx" / "x.bin").write_bytes(b"x" * 100)
    (root / "locked").mkdir()
    srv = nginx(str(root), extra_conf="        autoindex on;\n"
                                      "        location /locked/ { return 403; }\n")
    m = mount(srv.url)
    item = formats.item_names(sum(n for _, n in index_sizes(root / "ds")))[16]  # in SMALL
    e = errno_of(lambda: os.stat(m.file("ds", ".items", item)), "stat of item 16")
    assert e == errno.EIO, "item 16: %s (want EIO)" % errname(e)
    assert sorted(os.listdir(m.file("badidx"))) == ["index.json", "x.bin"]
    e = errno_of(lambda: os.listdir(m.file("locked")), "listing of locked/")
    assert e == errno.EACCES, "locked/: %s (want EACCES)" % errname(e)
    rows = {r["object"]: r for r in errors_of(m)}
    chunk = rows.get("ds/" + SMALL)
    assert chunk and chunk["errno"] == "EIO" and "bad chunk header" in chunk["cause"], rows
    assert byte_range(chunk)[0] == 0, chunk
    index = rows.get("badidx/index.json")
    assert index and index["range"] == "-" and "not a dataset index" in index["cause"], rows
    assert index["errno"] == "EIO", index
    locked = rows.get("locked")
    assert locked and locked["errno"] == "EACCES" and locked["range"] == "-", rows


def index_sizes(dataset):
    """(chunk, item count) of a LitData dataset's index.json, in order."""
    with open(os.path.join(dataset, "index.json")) as f:
        return [(c["filename"], c["chunk_size"]) for c in json.load(f)["chunks"]]
