"""Bad input fails cleanly; a missing chunk gives EIO; the mount is read-only."""
import errno
import json
import os
import shutil

import pytest

from cfsutil import (NginxServer, check_erofs, check_hidden, data_dir, dataset_listing,
                      dataset_names, dataset_views, free_port, index_chunks, is_mounted,
                      run_until_exit, run_with_deadline, scaled, sha256_file, source_sha256)

BAD_INDEXES = {
    "notjson": b"this is not json\n",
    "hello": b'{"hello": 1}\n',
    "array": b"[]\n",
    "chunks-not-list": b'{"chunks": 5, "config": {}}\n',
    "chunk-no-filename": b'{"chunks": [{"chunk_bytes": 10, "chunk_size": 1}], "config": {}}\n',
    "chunk-bad-bytes": b'{"chunks": [{"filename": "a.bin", "chunk_bytes": -3, "chunk_size": 1}],'
                       b' "config": {}}\n',
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One nginx for the module: /mixed/ (litdata-mixed), /empty/ (no index.json),
    /<name>/ for each BAD_INDEXES entry."""
    root = tmp_path_factory.mktemp("errors-root")
    os.symlink(data_dir("litdata-mixed"), root / "mixed")
    (root / "empty").mkdir()
    for name, text in BAD_INDEXES.items():
        (root / name).mkdir()
        (root / name / "index.json").write_bytes(text)
    srv = NginxServer(root, tmp_path_factory.mktemp("errors-nginx"))
    srv.start()
    yield srv
    srv.stop()


def expect_failure(chunkfs_bin, args, mountpoint, timeout=30):
    """Run chunkfs; assert a non-zero exit, one line on stderr and no mount."""
    argv = [chunkfs_bin] + args
    rc, stderr, _ = run_until_exit(argv, None, mountpoint, timeout)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc != 0, "chunkfs exited 0 on bad input %s" % argv
    assert len(lines) == 1, "expected one line on stderr, got %d:\n%s" % (len(lines), stderr)
    return lines[0]


# id -> function(server_url, mnt) -> (options, url, mountpoint); mnt is an empty
# directory, mnt + "-file" a regular file.
def _url(base, sub):
    return base + sub + "/"


CASES = {
    "unknown-option": lambda u, t: (["--no-such-option"], _url(u, "mixed"), t),
    "unknown-short-option": lambda u, t: (["-Z"], _url(u, "mixed"), t),
    "size-bad-suffix": lambda u, t: (["--mem-cache=12Q"], _url(u, "mixed"), t),
    "size-negative": lambda u, t: (["--mem-cache=-1"], _url(u, "mixed"), t),
    "size-fraction": lambda u, t: (["--mem-cache=1.5G"], _url(u, "mixed"), t),
    "size-empty": lambda u, t: (["--mem-cache="], _url(u, "mixed"), t),
    "size-overflow": lambda u, t: (["--mem-cache=99999999999999T"], _url(u, "mixed"), t),
    "size-words": lambda u, t: (["--mem-cache=lots"], _url(u, "mixed"), t),
    "cache-below-4MiB": lambda u, t: (["--mem-cache=1M"], _url(u, "mixed"), t),
    "cache-below-4-blocks": lambda u, t: (["--mem-cache=4M", "--block-size=2M"],
                                          _url(u, "mixed"), t),
    "block-not-power-of-two": lambda u, t: (["--block-size=3K"], _url(u, "mixed"), t),
    "block-bad-size": lambda u, t: (["--block-size=12Q"], _url(u, "mixed"), t),
    "readahead-bad-size": lambda u, t: (["--readahead=12Q"], _url(u, "mixed"), t),
    "disk-cache-bad-size": lambda u, t: (["--disk-cache=lots"], _url(u, "mixed"), t),
    "eviction-unknown": lambda u, t: (["--eviction=mru"], _url(u, "mixed"), t),
    "views-unknown": lambda u, t: (["--views=shown"], _url(u, "mixed"), t),
    "cache-dir-is-file": lambda u, t: (["--cache-dir=" + t + "-file"], _url(u, "mixed"), t),
    "connections-not-number": lambda u, t: (["--max-connections=abc"], _url(u, "mixed"), t),
    "fetch-threads-zero": lambda u, t: (["--fetch-threads=0"], _url(u, "mixed"), t),
    "fetch-threads-too-many": lambda u, t: (["--fetch-threads=17"], _url(u, "mixed"), t),
    "timeout-not-number": lambda u, t: (["--timeout=soon"], _url(u, "mixed"), t),
    "url-not-a-url": lambda u, t: ([], "not a url", t),
    "url-no-host": lambda u, t: ([], "http://", t),
    "url-no-scheme": lambda u, t: ([], u[len("http://"):] + "mixed/", t),
    "url-broken-scheme": lambda u, t: ([], "http//" + u[len("http://"):] + "mixed/", t),
    "url-bad-ipv6": lambda u, t: ([], "http://[::1/mixed/", t),
    "scheme-ftp": lambda u, t: ([], "ftp://127.0.0.1:%d/mixed/" % free_port(), t),
    "scheme-file": lambda u, t: ([], "file://" + data_dir("litdata-mixed") + "/", t),
    "server-unreachable": lambda u, t: ([], "http://127.0.0.1:%d/" % free_port(), t),
    "no-index-404": lambda u, t: ([], _url(u, "empty"), t),
    "no-such-directory-404": lambda u, t: ([], _url(u, "does-not-exist"), t),
    **{"index-" + name: (lambda name: lambda u, t: ([], _url(u, name), t))(name)
       for name in BAD_INDEXES},
    "mountpoint-missing": lambda u, t: ([], _url(u, "mixed"), t + "-missing"),
    "mountpoint-is-file": lambda u, t: ([], _url(u, "mixed"), t + "-file"),
}


@pytest.mark.parametrize("mode", ["foreground", "daemon"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(chunkfs_bin, server, tmp_path, case, mode):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (tmp_path / "mnt-file").write_bytes(b"not a directory\n")
    args, url, mountpoint = CASES[case](server.url, str(mnt))
    fg = ["-f"] if mode == "foreground" else []
    line = expect_failure(chunkfs_bin, fg + args + [url, mountpoint], str(mnt))
    assert not is_mounted(mountpoint)
    assert len(line) < 1000


@pytest.mark.parametrize("args", [[], ["URLONLY"], ["URL", "MNT", "EXTRA"]],
                         ids=["no-arguments", "url-only", "extra-argument"])
def test_bad_arguments(chunkfs_bin, server, tmp_path, args):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subst = {"URL": server.url + "mixed/", "URLONLY": server.url + "mixed/", "MNT": str(mnt),
             "EXTRA": str(tmp_path)}
    expect_failure(chunkfs_bin, [subst.get(a, a) for a in args], str(mnt))
    assert not is_mounted(str(mnt))


@pytest.mark.log_allow(r"^chunk-[\d-]+\.bin bytes \d+-\d+: HTTP 404 \(ENOENT\)$")
def test_missing_chunk_gives_eio(nginx, mount, tmp_path):
    """A chunk listed in the index but missing on the server: EIO on read, no
    hang, again on every read; the other chunks keep working."""
    src = tmp_path / "dataset"
    shutil.copytree(data_dir("litdata-mixed"), src)
    missing = "chunk-0-1.bin"
    os.unlink(src / missing)
    m = mount(nginx(src).url)
    sizes = dict(index_chunks(str(src)))
    assert os.stat(m.file(missing)).st_size == sizes[missing]

    def read_whole():
        with open(m.file(missing), "rb") as f:
            return f.read()

    def pread_middle():
        fd = os.open(m.file(missing), os.O_RDONLY)
        try:
            return os.pread(fd, 100, sizes[missing] // 2)
        finally:
            os.close(fd)

    for attempt, fn in enumerate([read_whole, pread_middle, read_whole]):
        with pytest.raises(OSError) as exc:
            run_with_deadline(fn, scaled(30), "read of the missing chunk (attempt %d)" % attempt)
        assert exc.value.errno == errno.EIO, exc.value
    for name in dataset_names(str(src)):
        if name != missing:
            assert sha256_file(m.file(name)) == source_sha256(
                os.path.join(data_dir("litdata-mixed"), name)), name
    st = m.stats()
    assert st["read_errors"] >= 1
    assert st["requests_failed"] >= 1
    assert missing in m.read_log(), "no log line names the missing chunk"


@pytest.mark.log_allow(r"^/: skipping \".*\": (contains '/'|'\.' or '\.\.'|empty name|"
                       r"contains a control character|longer than 255 bytes|not valid UTF-8)$")
def test_bad_chunk_names_are_skipped(nginx, mount, tmp_path):
    """Names that cannot be file names are skipped with a log line; the rest mounts."""
    src = tmp_path / "dataset"
    shutil.copytree(data_dir("litdata-mixed"), src)
    with open(src / "index.json") as f:
        index = json.load(f)
    good = [c["filename"] for c in index["chunks"]]
    template = dict(index["chunks"][0])
    for bad in ["../escape.bin", "sub/dir.bin", "..", ".", "", "ctl\x01.bin", "nl\n.bin",
                "x" * 300]:
        index["chunks"].append(dict(template, filename=bad))
    with open(src / "index.json", "w") as f:
        json.dump(index, f)
    m = mount(nginx(src).url)
    assert sorted(os.listdir(m.path)) == sorted(good + ["index.json"])
    check_hidden(m.path, [".items", ".chunkfs"])
    for name in good:
        assert sha256_file(m.file(name)) == source_sha256(src / name), name
    assert sha256_file(m.file("index.json")) == source_sha256(src / "index.json")
    assert m.read_log().strip(), "no log line about the skipped names"


def test_read_only(nginx, mount):
    """Every kind of write gives EROFS, and nothing changes."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url)
    chunk = m.file("chunk-0-0.bin")
    stats = m.file(".chunkfs", "stats")
    new = m.file("new-file")
    ops = {
        "open r+b": lambda: open(chunk, "r+b"),
        "open wb (truncating)": lambda: open(chunk, "wb"),
        "open ab": lambda: open(chunk, "ab"),
        "os.open O_WRONLY": lambda: os.open(chunk, os.O_WRONLY),
        "os.open O_RDWR": lambda: os.open(chunk, os.O_RDWR),
        "open index.json for write": lambda: open(m.file("index.json"), "r+b"),
        "open stats for write": lambda: open(stats, "wb"),
        "create": lambda: open(new, "xb"),
        "os.open O_CREAT": lambda: os.open(new, os.O_CREAT | os.O_WRONLY, 0o644),
        "create in .chunkfs": lambda: os.open(m.file(".chunkfs", "x"), os.O_CREAT | os.O_WRONLY),
        "truncate": lambda: os.truncate(chunk, 0),
        "rename": lambda: os.rename(chunk, m.file("renamed.bin")),
        "rename onto": lambda: os.rename(chunk, m.file("chunk-0-1.bin")),
        "mkdir": lambda: os.mkdir(m.file("dir")),
        "rmdir": lambda: os.rmdir(m.file(".chunkfs")),
        "unlink": lambda: os.unlink(chunk),
        "unlink stats": lambda: os.unlink(stats),
        "chmod": lambda: os.chmod(chunk, 0o666),
        "chmod root": lambda: os.chmod(m.path, 0o777),
        "chown": lambda: os.chown(chunk, 1, 1),
        "utime": lambda: os.utime(chunk, (0, 0)),
        "symlink": lambda: os.symlink("chunk-0-0.bin", m.file("link")),
        "link": lambda: os.link(chunk, m.file("hardlink")),
        "mknod": lambda: os.mkfifo(m.file("fifo")),
    }
    check_erofs(ops)
    assert sorted(os.listdir(m.path)) == sorted(dataset_listing(src))
    check_hidden(m.path, dataset_views(src) + [".chunkfs"])
    for name in dataset_names(src):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name)), name
    assert m.stats()["mem_cap"] > 0
