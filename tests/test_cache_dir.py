"""The cache directory (--cache-dir) as other users or a careless setup could
leave it: chunkfs makes its directories 0700, refuses with one clear line a
directory that is another user's or writable by group or others, never
follows a symlink in it (to delete or write files where it points), and never
waits on a FIFO where a block file should be. Without --cache-dir, the default
for root, for another user and for a service without HOME."""
import os
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from cfsutil import (Mount, chunkfs_env, data_dir, index_chunks, pid_alive, run_until_exit,
                     run_with_deadline, scaled, sha256_file, source_sha256, tear_down_mounts,
                     wait_for)
from spillutil import block_files, url_dir

SRC = data_dir("litdata-mixed")


def spill_all(mount, url, cache):
    """Read every chunk through a mount spilling to cache, and unmount (which spills
    what memory held)."""
    m = mount(url, "--cache-dir=" + cache)
    for name, _ in index_chunks(SRC):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(SRC, name)), name
    assert m.unmount() == []
    assert block_files(cache)


def check_chunks(m):
    for name, _ in index_chunks(SRC):
        got = run_with_deadline(lambda: sha256_file(m.file(name)), scaled(20), "read of " + name)
        assert got == source_sha256(os.path.join(SRC, name)), "WRONG BYTES in %s" % name


def refused(m, what):
    """m did not mount, and its log says why in one line naming what."""
    assert not m.ok, "chunkfs mounted with %s" % what
    lines = [line for line in m.read_log().splitlines() if line.strip()]
    assert len(lines) == 1, m.read_log()
    return lines[0]


def test_cache_directories_are_private(nginx, mount, tmp_path):
    """Every directory chunkfs makes, --cache-dir's missing parents included, is 0700."""
    cache = str(tmp_path / "a" / "b" / "cache")
    spill_all(mount, nginx(SRC).url, cache)
    root = url_dir(cache)
    for d in (tmp_path / "a", tmp_path / "a" / "b", cache, root, os.path.join(root, "blocks"),
              os.path.join(root, "tmp")):
        mode = stat.S_IMODE(os.stat(d).st_mode)
        assert mode == 0o700, "%s: mode %03o" % (d, mode)


SHARED = {
    "group-writable": lambda cache, root: os.chmod(cache, 0o770),
    "others-writable": lambda cache, root: os.chmod(cache, 0o703),
    "url-dir-others-writable": lambda cache, root: os.chmod(root, 0o777),
    "blocks-group-writable": lambda cache, root: os.chmod(os.path.join(root, "blocks"), 0o730),
    "other-owner": lambda cache, root: os.chown(cache, 65534, 65534),
    "url-dir-other-owner": lambda cache, root: os.chown(root, 65534, 65534),
}


@pytest.mark.parametrize("case", sorted(SHARED))
def test_shared_cache_directory_is_refused(nginx, mount, tmp_path, case):
    if "owner" in case and os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    cache = str(tmp_path / "cache")
    url = nginx(SRC).url
    spill_all(mount, url, cache)
    SHARED[case](cache, url_dir(cache))
    line = refused(mount(url, "--cache-dir=" + cache, expect_ok=False), case)
    assert "refusing the cache directory" in line and \
        ("owned by another user" in line or "writable by group or others" in line), line


def make_victim(tmp_path):
    """A directory of files that chunkfs must never touch; returns {path: bytes}."""
    victim = tmp_path / "victim"
    victim.mkdir()
    files = {}
    for i in range(3):
        p = victim / ("precious-%d" % i)
        p.write_bytes(b"keep me %d\n" % i * 100)
        files[str(p)] = p.read_bytes()
    return str(victim), files


def check_victim(files):
    for path, data in files.items():
        assert os.path.exists(path), "chunkfs deleted %s" % path
        with open(path, "rb") as f:
            assert f.read() == data, "chunkfs wrote into %s" % path


@pytest.mark.parametrize("entry", ["tmp", "blocks", "journal", "lock"])
def test_symlink_in_cache_is_never_followed(nginx, mount, tmp_path, entry):
    """tmp/, blocks/, journal or lock replaced by a symlink (to a directory of
    someone's files, or to one of them): the mount is refused with one line,
    and nothing where the symlink points is deleted or written."""
    cache = str(tmp_path / "cache")
    url = nginx(SRC).url
    spill_all(mount, url, cache)
    victim, files = make_victim(tmp_path)
    path = os.path.join(url_dir(cache), entry)
    if os.path.isdir(path):
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
        os.symlink(victim, path)
    else:
        os.unlink(path)
        os.symlink(sorted(files)[0], path)
    line = refused(mount(url, "--cache-dir=" + cache, expect_ok=False), entry)
    assert entry in line, line
    check_victim(files)


def test_symlinks_inside_tmp_are_deleted_not_followed(nginx, mount, tmp_path):
    cache = str(tmp_path / "cache")
    url = nginx(SRC).url
    spill_all(mount, url, cache)
    victim, files = make_victim(tmp_path)
    tmp = os.path.join(url_dir(cache), "tmp")
    os.symlink(victim, os.path.join(tmp, "dir-link"))
    os.symlink(sorted(files)[1], os.path.join(tmp, "file-link"))
    m = mount(url, "--cache-dir=" + cache)
    assert os.listdir(tmp) == []
    check_victim(files)
    check_chunks(m)


@pytest.mark.log_allow(r"^chunk-[\d-]+\.bin bytes \d+-\d+: spilled block \d+ \(\S+\): "
                       r"(not a regular file|Too many levels of symbolic links); discarded, "
                       r"fetching it again \(EIO\)$")
@pytest.mark.parametrize("kind", [
    "fifo", "symlink",
    # The directory stays: spilling that block again fails on it.
    pytest.param("directory", marks=pytest.mark.log_allow(
        r"^cannot spill to \S+: Is a directory; blocks are not spilled until writes work again$")),
])
def test_block_that_is_not_a_file(nginx, mount, tmp_path, kind):
    """Every block file replaced by a FIFO (an open without O_NONBLOCK would wait
    for a writer forever), a symlink to someone's file, or a directory: each read
    still returns the right bytes (the block is discarded and fetched again), the
    symlink's target is untouched."""
    cache = str(tmp_path / "cache")
    url = nginx(SRC).url
    spill_all(mount, url, cache)
    victim, files = make_victim(tmp_path)
    for path in block_files(cache):
        os.unlink(path)
        if kind == "fifo":
            os.mkfifo(path, 0o600)
        elif kind == "symlink":
            os.symlink(sorted(files)[2], path)
        else:
            os.mkdir(path, 0o700)
    m = mount(url, "--cache-dir=" + cache)
    check_chunks(m)
    assert m.stats()["disk_hits"] == 0
    check_victim(files)
    assert m.alive()


# --------------------------------------------------------------------------
# the default --cache-dir, for services and root mounts without HOME


def check_private_dirs(*dirs):
    for d in dirs:
        st = os.stat(d)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, \
            "%s: mode %03o" % (d, stat.S_IMODE(st.st_mode))


def test_default_cache_dir_is_xdg_cache_home(nginx, mount, tmp_path):
    """No --cache-dir and no HOME: the spill tier goes to $XDG_CACHE_HOME/chunkfs,
    made 0700 with its missing parents."""
    xdg = tmp_path / "xdg" / "cache"
    url = nginx(SRC).url
    m = mount(url, "--disk-cache=16M", env=chunkfs_env(XDG_CACHE_HOME=xdg, HOME=None))
    check_chunks(m)
    assert m.unmount() == []
    cache = str(xdg / "chunkfs")
    check_private_dirs(tmp_path / "xdg", xdg, cache, url_dir(cache))
    assert block_files(cache)


NOBODY = 65534


def as_nobody(argv):
    return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + argv


@pytest.fixture
def nobody_chunkfs(chunkfs_bin):
    """chunkfs_bin, after skipping the test unless it can run chunkfs as nobody
    (needs root, and a binary nobody can reach)."""
    if os.geteuid() != 0:
        pytest.skip("running chunkfs as another user needs root")
    if subprocess.run(as_nobody(["test", "-x", chunkfs_bin]), timeout=30).returncode != 0:
        pytest.skip("%s cannot be run by nobody" % chunkfs_bin)
    return chunkfs_bin


@pytest.fixture
def nobody_dir():
    """A directory of nobody's that nobody can reach (tmp_path's parents are
    root's alone); removed at teardown."""
    d = tempfile.mkdtemp(prefix="chunkfs-test-nobody.")
    os.chown(d, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def nobody_mkdir(path):
    os.mkdir(path, 0o700)
    os.chown(path, NOBODY, NOBODY)
    return path


def test_default_cache_dir_of_a_user_is_home_cache(nginx, nobody_chunkfs, nobody_dir):
    """A user other than root, with HOME and no XDG_CACHE_HOME, spills to
    ~/.cache/chunkfs, made 0700 with ~/.cache. Seen without a mount (nobody
    may not open /dev/fuse here): the spill tier is opened before the tree is
    built, so a URL with no dataset fails the mount after it."""
    home = nobody_mkdir(os.path.join(nobody_dir, "home"))
    mnt = nobody_mkdir(os.path.join(nobody_dir, "mnt"))
    url = nginx(SRC).url + "no-such-dataset/"
    rc, stderr, _ = run_until_exit(
        as_nobody([nobody_chunkfs, "-f", "--disk-cache=16M", "--retries=0", url, mnt]),
        chunkfs_env(HOME=home, XDG_CACHE_HOME=None), mnt)
    lines = stderr.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "no directory at '%s'" % url in lines[0], stderr
    cache = os.path.join(home, ".cache", "chunkfs")
    check_private_dirs(os.path.join(home, ".cache"), cache, url_dir(cache))
    st = os.stat(os.path.join(url_dir(cache), "lock"))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o600)


def test_no_default_cache_dir_without_home(nginx, nobody_chunkfs):
    """A user other than root with neither HOME nor XDG_CACHE_HOME (a service
    without them): one line saying what to give, exit 2; with --disk-cache=0
    no cache directory is needed and the options are taken."""
    chunkfs_bin = nobody_chunkfs
    env = chunkfs_env(HOME=None, XDG_CACHE_HOME=None)
    url = nginx(SRC).url
    rc, stderr, _ = run_until_exit(as_nobody([chunkfs_bin, "-f", url, "/"]), env, None)
    assert (rc, stderr.splitlines()) == (2, [
        "chunkfs: no --cache-dir given and no default for it: neither XDG_CACHE_HOME nor HOME "
        "is an absolute path (give --cache-dir=DIR, or --disk-cache=0)"])
    # "/" is refused as a mountpoint after every option was taken
    rc, stderr, _ = run_until_exit(as_nobody([chunkfs_bin, "-f", "--disk-cache=0", url, "/"]),
                                   env, None)
    assert (rc, stderr.splitlines()) == (2, ["chunkfs: mountpoint /: already a mount "
                                             "(unmount it first)"])


def in_private_var_cache(argv):
    """argv run in a mount namespace of its own where /var/cache is an empty
    tmpfs: what it writes there never reaches this machine's /var/cache, and
    goes when the process ends. unshare and sh exec, so the PID is argv's."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o mode=0755 chunkfs-test /var/cache && exec "$@"', "sh"] + argv


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace and tmpfs need root")
def test_default_cache_dir_of_root_is_var_cache(nginx, chunkfs_bin, tmp_path, _watchdog):
    """Root with neither HOME nor XDG_CACHE_HOME (a systemd unit, a boot-time
    mount) spills to /var/cache/chunkfs, made 0700. Run where /var/cache is a
    tmpfs of a private mount namespace; the mount and the cache are seen
    through /proc/PID/root."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    san_dir = tmp_path / "sanitizer"
    san_dir.mkdir()
    argv = in_private_var_cache([chunkfs_bin, "-f", "--disk-cache=16M", nginx(SRC).url, str(mnt)])
    m = Mount(argv, str(mnt), str(tmp_path / "chunkfs.log"), True, True, str(san_dir))
    had_var_cache = os.path.exists("/var/cache/chunkfs")
    with open(m.log, "wb") as logf:
        m.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                  env=chunkfs_env(HOME=None, XDG_CACHE_HOME=None))
    m.pid = m.proc.pid
    _watchdog.watch(m)
    try:
        root = "/proc/%d/root" % m.pid
        seen = "%s%s" % (root, mnt)
        wait_for(lambda: m.proc.poll() is not None or run_with_deadline(
            lambda: os.path.exists(os.path.join(seen, ".chunkfs", "stats")), scaled(10)),
            scaled(20), "the mount in the namespace")
        assert m.proc.poll() is None, m.read_log()
        m.ok = True
        for name, _ in index_chunks(SRC):
            assert sha256_file(os.path.join(seen, name)) == \
                source_sha256(os.path.join(SRC, name)), name
        cache = root + "/var/cache/chunkfs"
        check_private_dirs(cache, url_dir(cache))
        assert os.path.isfile(os.path.join(url_dir(cache), "lock"))
    finally:
        if pid_alive(m.pid):
            os.kill(m.pid, signal.SIGTERM)  # the mount goes with the namespace's last process
        tear_down_mounts([m])
    assert m.returncode == 0
    assert had_var_cache or not os.path.exists("/var/cache/chunkfs")
