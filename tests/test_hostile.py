"""Hostile answers from a server: JSON nested deep enough to overflow a
recursive parser, S3 listings with sizes that are not numbers. Each is
refused with a clear error (a log line, EIO, or a mount error), the daemon
lives on, and what the server serves well is still served byte for byte.
And what an attacker could pick up afterwards: no core file holds secrets."""
import errno
import os
import resource
import shutil
import signal
import subprocess

import pytest

from cfsutil import (check_hidden, chunkfs_env, data_dir, force_unmount, is_mounted,
                      run_until_exit, scaled, sha256_file, stop_process, wait_for)
from itemutil import errname, errno_of, read_bytes
import formats

DEEP = 200000        # far past any stack: json-glib recurses once per level


def serve_file(uri, path, type="application/json"):
    """nginx configuration that answers GET uri with the file at path."""
    return ("        location = %s { default_type %s; root %s; rewrite ^ /%s break; }\n"
            % (uri, type, os.path.dirname(str(path)), os.path.basename(str(path))))


def deep_json(depth=DEEP):
    return b"[" * depth + b"]" * depth


@pytest.fixture(scope="module")
def deep_server(tmp_path_factory, module_nginx):
    """root/ok (litdata-mixed), root/deepindex (litdata-mixed with an index.json of
    200,000 '['), root/deeplist/ whose JSON listing is nested as deep, served
    with nginx's JSON autoindex."""
    root = tmp_path_factory.mktemp("deep")
    shutil.copytree(data_dir("litdata-mixed"), root / "ok")
    shutil.copytree(data_dir("litdata-mixed"), root / "deepindex")
    (root / "deepindex" / "index.json").write_bytes(deep_json())
    (root / "deeplist").mkdir()
    (root / "deeplist" / "x.bin").write_bytes(b"x" * 100)
    page = tmp_path_factory.mktemp("pages") / "deep.json"
    page.write_bytes(deep_json())
    conf = ("        autoindex on; autoindex_format json;\n" + serve_file("/deeplist/", page))
    return str(root), module_nginx(str(root), extra_conf=conf)


@pytest.mark.log_allow(r"^deepindex/index\.json: .*: not a dataset index: .*JSON nested deeper than 64 levels .*; showing the directory as it is \(EIO\)$")
def test_deep_index_in_subdirectory(mount, deep_server):
    root, srv = deep_server
    m = mount(srv.url)
    d = m.file("deepindex")
    objects = sorted(os.listdir(os.path.join(root, "deepindex")))
    assert sorted(os.listdir(d)) == objects
    e = errno_of(lambda: os.stat(os.path.join(d, ".items")), "stat of deepindex/.items")
    assert e == errno.ENOENT, "deepindex/.items: %s (want ENOENT)" % errname(e)
    assert sha256_file(os.path.join(d, "chunk-0-0.bin")) == \
        sha256_file(os.path.join(root, "deepindex", "chunk-0-0.bin"))
    assert read_bytes(m.file("ok", ".items", "000")) == \
        formats.dataset_items(data_dir("litdata-mixed"))[0].data
    lines = [line for line in m.read_log().splitlines() if "deepindex" in line]
    assert any("nested deeper than 64 levels" in line for line in lines), m.read_log()
    assert m.alive()


@pytest.mark.log_allow(r"^deeplist: not a JSON autoindex: JSON nested deeper than 64 levels .*\(EIO\)$")
def test_deep_json_listing(mount, deep_server):
    root, srv = deep_server
    m = mount(srv.url)
    e = errno_of(lambda: os.listdir(m.file("deeplist")), "listdir of deeplist")
    assert e == errno.EIO, "deeplist/: %s (want EIO)" % errname(e)
    assert "nested deeper than 64 levels" in m.read_log(), m.read_log()
    assert m.alive()
    assert read_bytes(m.file("ok", ".items", "001")) == \
        formats.dataset_items(data_dir("litdata-mixed"))[1].data
    assert sorted(os.listdir(m.file("ok"))) == sorted(os.listdir(os.path.join(root, "ok")))
    check_hidden(m.file("ok"), [".items"])


def test_deep_index_at_root(chunkfs_bin, nginx, tmp_path):
    """index.json at the root, no listing to fall back on: the mount fails with one
    line saying why."""
    src = tmp_path / "src"
    shutil.copytree(data_dir("litdata-mixed"), src)
    (src / "index.json").write_bytes(deep_json())
    srv = nginx(str(src))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = [chunkfs_bin, "-f", "--cache-dir=%s" % (tmp_path / "cache"), srv.url, str(mnt)]
    rc, stderr, _ = run_until_exit(argv, None, str(mnt))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc not in (0, -11, -6) and rc < 128, "chunkfs exited %d:\n%s" % (rc, stderr)
    assert len(lines) == 1 and "nested deeper than 64 levels" in lines[0], stderr


# --------------------------------------------------------------------------
# S3 listings: nginx plays an S3 endpoint with a fixed ListObjectsV2 answer


LISTING = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>"
           "<Name>bkt</Name><Prefix>p/</Prefix><IsTruncated>false</IsTruncated>"
           "<Contents><Key>p/good.bin</Key><ETag>\"a\"</ETag><Size>100</Size></Contents>"
           "<Contents><Key>p/bad.bin</Key><ETag>\"b\"</ETag><Size>%s</Size></Contents>"
           "</ListBucketResult>")


def run_on_s3_listing(chunkfs_bin, nginx, tmp_path, www, listing):
    """Mount s3://bkt/p/ of an nginx serving www, whose ListObjectsV2 answer
    for the prefix is the file listing, unsigned; the mount must end on its
    own: (exit status, stderr, seconds) of run_until_exit()."""
    srv = nginx(str(www), extra_conf=serve_file("/bkt/", listing, "application/xml"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = chunkfs_env(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    argv = [chunkfs_bin, "-f", "--cache-dir=%s" % (tmp_path / "cache"),
            "--endpoint=" + srv.url.rstrip("/"), "--region=us-east-1", "--s3-addressing=path",
            "--no-sign-request", "s3://bkt/p/", str(mnt)]
    return run_until_exit(argv, env, str(mnt))


@pytest.mark.parametrize("size", ["-2", "18446744073709551614", "1e3", " 100"])
def test_s3_listing_size_not_a_number(chunkfs_bin, nginx, tmp_path, size):
    """A Size that is not decimal digits of at most 2^63 - 1 fails the listing (here
    the root's: the mount fails with one line naming it) instead of showing a file
    of 2^64 - 2 bytes."""
    www = tmp_path / "www"
    (www / "bkt" / "p").mkdir(parents=True)
    (www / "bkt" / "p" / "good.bin").write_bytes(b"g" * 100)
    (www / "bkt" / "p" / "bad.bin").write_bytes(b"b" * 100)
    listing = tmp_path / "listing.xml"
    listing.write_text(LISTING % size)
    rc, stderr, _ = run_on_s3_listing(chunkfs_bin, nginx, tmp_path, www, listing)
    assert rc != 0, "chunkfs mounted a listing with Size %r:\n%s" % (size, stderr)
    assert "is not a number of bytes" in stderr, stderr


# --------------------------------------------------------------------------
# secrets: argv, headers and credentials never reach a core file


def test_no_core_file(chunkfs_bin, nginx, tmp_path, sanitized):
    """chunkfs makes itself non-dumpable (PR_SET_DUMPABLE 0) before reading its
    options. Checked by its effect: a SIGQUIT, whose default action dumps core,
    with RLIMIT_CORE of one page (a core of at most 4 KiB) and the kernel
    writing cores to the working directory (libfuse moves it to /), leaves no
    new core file there. (Ownership of /proc/PID files or ptrace checks say
    nothing when the suite runs as root.)"""
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    with open("/proc/sys/kernel/core_uses_pid") as f:
        uses_pid = f.read().strip() != "0"
    if pattern != "core" or uses_pid:
        pytest.skip("cores are written as %r (core_uses_pid %d), not as ./core"
                    % (pattern, uses_pid))
    if sanitized:
        pytest.skip("the sanitizers turn core files off themselves")
    src = data_dir("litdata-mixed")
    srv = nginx(src)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    argv = [chunkfs_bin, "-f", "--cache-dir=%s" % (tmp_path / "cache"),
            "--header=X-Api-Key: s3cr3t", srv.url, mnt]

    def small_core():
        page = os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_CORE, (page, page))

    with open(tmp_path / "log", "wb") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             cwd=str(tmp_path), env=chunkfs_env(), preexec_fn=small_core)
    core = None
    try:
        wait_for(lambda: p.poll() is not None or is_mounted(mnt), scaled(20), "the mount")
        assert p.poll() is None, "chunkfs exited %s" % p.returncode
        assert sha256_file(os.path.join(mnt, "chunk-0-0.bin")) == \
            sha256_file(os.path.join(src, "chunk-0-0.bin"))
        core = os.path.join(os.readlink("/proc/%d/cwd" % p.pid), "core")
        if os.path.lexists(core):
            core = None
            pytest.skip("%s exists already: a new one could not be told apart" % core)
        os.kill(p.pid, signal.SIGQUIT)
        assert p.wait(timeout=scaled(20)) == -signal.SIGQUIT
        assert not os.path.lexists(core), "chunkfs dumped core (with its secrets) to " + core
    finally:
        stop_process(p)
        force_unmount(mnt)
        if core and os.path.lexists(core):
            os.unlink(core)


def test_server_text_is_escaped_in_messages(chunkfs_bin, nginx, tmp_path):
    """Text the server chose (here a listing's Size, quoted by the error) reaches
    stderr with its control characters as \\xNN: no escape sequence for the
    terminal, no forged line."""
    www = tmp_path / "www"
    (www / "bkt" / "p").mkdir(parents=True)
    listing = tmp_path / "listing.xml"
    listing.write_bytes((LISTING % "\x1b[2J\x1b[31m-2\nchunkfs[info]: forged").encode())
    srv = nginx(str(www), extra_conf=serve_file("/bkt/", listing, "application/xml"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = [chunkfs_bin, "-f", "--cache-dir=%s" % (tmp_path / "cache"),
            "--endpoint=" + srv.url.rstrip("/"), "--region=us-east-1", "--s3-addressing=path",
            "--no-sign-request", "s3://bkt/p/", str(mnt)]
    rc, stderr, _ = run_until_exit(argv, None, str(mnt))
    assert rc != 0, stderr
    assert "\\x1b[2J\\x1b[31m-2\\x0achunkfs[info]: forged" in stderr, repr(stderr)
    assert "\x1b" not in stderr and len(stderr.splitlines()) == 1, repr(stderr)
