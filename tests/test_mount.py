"""Mounting like every mature FUSE file system: long options as -o items,
mount.fuse3 and fstab lines, the mount table's source and type, refused
mountpoints, and --version.

mount(8) runs its helper without PATH, and mount.fuse3's /bin/sh then finds
chunkfs on the shell's default PATH (/usr/local/bin among it): the fstab line
of type fuse.chunkfs is run in a mount namespace whose /usr/local/bin holds
the built binary. The other fstab line names the binary as mount.fuse(8)
documents for programs not on PATH (type fuse, source PROGRAM#URL), and
mount.fuse3 is also run directly with the binary first on PATH."""
import ctypes
import os
import re
import shutil
import signal
import subprocess

import pytest

from cfsutil import (MiB, Mount, check_erofs, chunkfs_env, data_dir, dataset_names,
                     force_unmount, index_visible, is_mounted, mountinfo, pid_alive, run_chunkfs,
                     sanitizer_env, scaled, sha256_file, source_sha256, tear_down_mounts,
                     wait_for)

MOUNT_FUSE3 = shutil.which("mount.fuse3") or "/usr/sbin/mount.fuse3"


def check_all_bytes(path, src):
    for name in dataset_names(src):
        assert sha256_file(os.path.join(path, name)) == source_sha256(os.path.join(src, name)), name


def daemon_argv(mountpoint):
    """argv of the chunkfs process serving mountpoint (a path unique to the
    test), or None."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                args = f.read().decode(errors="replace").split("\0")[:-1]
        except OSError:
            continue
        if args and os.path.basename(args[0]) == "chunkfs" and mountpoint in args:
            return int(entry), args
    return None, None


@pytest.fixture
def mount_cmd(request, tmp_path, _watchdog):
    """Factory: mount_cmd(cmd, mountpoint, env) runs a command that mounts
    chunkfs in daemon mode (chunkfs itself, mount.fuse3 or mount(8)) and
    returns a Mount for the daemon it left (ok when it serves the mountpoint).
    Teardown unmounts, waits for the daemon by PID (SIGKILL if it stays) and
    checks its log and sanitizer reports."""
    mounts = []
    allow = [p for mark in request.node.iter_markers("log_allow") for p in mark.args]

    def run(cmd, mountpoint, env):
        n = len(mounts)
        san_dir = str(tmp_path / ("sanitizer-cmd%d" % n))
        os.mkdir(san_dir)
        m = Mount(list(cmd), mountpoint, str(tmp_path / ("mount-cmd%d.log" % n)), False, True,
                  san_dir, log_allow=allow)
        mounts.append(m)
        with open(m.log, "wb") as logf:
            m.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                      env=sanitizer_env(env, san_dir), close_fds=True)
        try:
            m.returncode = m.proc.wait(timeout=scaled(30))
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait(timeout=10)
        m.pid, argv = daemon_argv(mountpoint)
        if argv:
            m.argv = argv
            _watchdog.watch(m)
        if is_mounted(mountpoint):
            m.record_connection()
            m.ok = m.returncode == 0 and index_visible(m)
        return m

    yield run
    tear_down_mounts(mounts)


@pytest.fixture
def path_with_chunkfs(tmp_path, chunkfs_bin):
    """A PATH whose first directory holds a chunkfs symlink to the built binary."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(chunkfs_bin, bindir / "chunkfs")
    return "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin"))


def run_refused(chunkfs_bin, args, mountpoint):
    """Run chunkfs in the foreground where it must refuse to mount; a chunkfs
    mount it made anyway is unmounted before the test goes on."""
    before = mount_entries(mountpoint)
    try:
        return run_chunkfs(chunkfs_bin, ["-f"] + args, timeout=15)
    except AssertionError:
        return None
    finally:
        for _ in range(mount_entries(mountpoint) - before):
            subprocess.run(["umount", "-l", mountpoint], timeout=30, check=False)


def mount_entries(path):
    """How many entries the mount table has at path (mounts stack)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == path)


def fresh_dir(tmp_path, name):
    path = str(tmp_path / name)
    os.mkdir(path)
    return path


def test_mount_fuse3_type_fuse_chunkfs(nginx, mount_cmd, tmp_path, path_with_chunkfs):
    """What `mount -t fuse.chunkfs URL MNT -o ...` execs: mount.fuse3 runs
    chunkfs from PATH with mount(8)'s options mixed with ours and FUSE's."""
    src = data_dir("litdata-mixed")
    url = nginx(src).url
    mnt = fresh_dir(tmp_path, "mnt")
    opts = ("mem-cache=40M,block-size=64K,allow_other,_netdev,nofail,rw,defaults,"
            "cache-dir=%s,log-file=%s" % (tmp_path / "cache", tmp_path / "chunkfs.log"))
    m = mount_cmd([MOUNT_FUSE3, url, mnt, "-t", "fuse.chunkfs", "-o", opts], mnt,
                  chunkfs_env(PATH=path_with_chunkfs))
    assert m.ok, m.read_log()
    check_all_bytes(mnt, src)
    assert m.stats()["mem_cap"] == 40 * MiB
    info = mountinfo(mnt)
    assert info["fstype"] == "fuse.chunkfs"
    assert info["source"] == url
    assert "allow_other" in info["super_options"].split(",")
    assert info["mount_options"].split(",")[0] == "ro", "rw must not make the mount writable"
    check_erofs({"open for writing": lambda: open(os.path.join(mnt, dataset_names(src)[0]), "r+b"),
                 "create": lambda: open(os.path.join(mnt, "new"), "wb")})


def test_fstab_line(nginx, mount_cmd, tmp_path, chunkfs_bin):
    """An fstab line with mount(8)'s options and ours mounts with mount --fstab."""
    src = data_dir("litdata-mixed")
    url = nginx(src).url
    mnt = fresh_dir(tmp_path, "mnt")
    fstab = tmp_path / "fstab"
    fstab.write_text("%s#%s %s fuse _netdev,nofail,noauto,user,defaults,dev,suid,exec,"
                     "mem-cache=48M,cache-dir=%s,log-file=%s 0 0\n"
                     % (chunkfs_bin, url, mnt, tmp_path / "cache", tmp_path / "chunkfs.log"))
    m = mount_cmd(["mount", "--fstab", str(fstab), mnt], mnt, chunkfs_env())
    assert m.ok, m.read_log()
    check_all_bytes(mnt, src)
    assert m.stats()["mem_cap"] == 48 * MiB
    info = mountinfo(mnt)
    assert (info["fstype"], info["source"]) == ("fuse.chunkfs", url)
    assert info["mount_options"].split(",")[0] == "ro"


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_fstab_line_of_type_fuse_chunkfs(nginx, tmp_path, chunkfs_bin):
    """The fstab line README gives, `URL MNT fuse.chunkfs OPTIONS`, mounts with
    mount(8) once chunkfs is installed in /usr/local/bin: mount(8) runs
    mount.fuse3 without PATH, and its /bin/sh finds chunkfs on the shell's
    default PATH. Run in a mount namespace of its own whose /usr/local/bin
    holds only the built binary, so nothing is installed on this machine; the
    mount is read through /proc/PID/root of the daemon, which holds the
    namespace."""
    src = data_dir("litdata-mixed")
    url = nginx(src).url
    mnt = fresh_dir(tmp_path, "mnt")
    bindir = fresh_dir(tmp_path, "usr-local-bin")
    shutil.copy(chunkfs_bin, os.path.join(bindir, "chunkfs"))
    fstab = tmp_path / "fstab"
    fstab.write_text("%s %s fuse.chunkfs _netdev,nofail,mem-cache=48M,cache-dir=%s,log-file=%s "
                     "0 0\n" % (url, mnt, tmp_path / "cache", tmp_path / "chunkfs.log"))
    script = 'mount --bind "$1" /usr/local/bin && exec mount --fstab "$2" "$3"'
    pid = None
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               script, "sh", bindir, str(fstab), mnt],
                              env=chunkfs_env(PATH="/usr/bin:/bin"), capture_output=True,
                              timeout=scaled(30))
        pid, argv = daemon_argv(mnt)
        assert done.returncode == 0, done.stderr
        assert argv[0] == "chunkfs", argv  # run by name, found on the shell's PATH
        seen = "/proc/%d/root%s" % (pid, mnt)
        check_all_bytes(seen, src)
        with open("/proc/%d/mountinfo" % pid) as f:
            entry = [line.split() for line in f if line.split()[4] == mnt]
        assert len(entry) == 1
        fstype, source = entry[0][entry[0].index("-") + 1:][:2]
        assert (fstype, source) == ("fuse.chunkfs", url)
    finally:
        if pid is not None:
            subprocess.run(["nsenter", "-t", str(pid), "-m", "fusermount3", "-u", mnt],
                           timeout=scaled(30), check=False)
            try:
                wait_for(lambda: not pid_alive(pid), scaled(20), "the daemon to exit")
            finally:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_long_options_as_o_items(nginx, mount, tmp_path):
    """-o takes any long option, a flag as its bare name, and several -o add up."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, "-o", "spill-compress", "-omem-cache=24M",
              "--options=max-connections=2,block-size=64K")
    check_all_bytes(m.path, src)
    assert m.stats()["mem_cap"] == 24 * MiB


def test_o_header_value_hidden(nginx, mount):
    """A header given as an -o item is masked in the process title, as --header is."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, "-o", "header=Authorization: Bearer s3cr3tT0ken,ro")
    check_all_bytes(m.path, src)
    with open("/proc/%d/cmdline" % m.pid, "rb") as f:
        cmdline = f.read()
    assert b"s3cr3tT0ken" not in cmdline
    assert b"header=Authorization:" in cmdline


def test_unknown_o_item_goes_to_fuse(nginx, chunkfs_bin, tmp_path):
    """An item that is no option of ours reaches libfuse, which refuses what it does not know."""
    src = data_dir("litdata-mixed")
    mnt = fresh_dir(tmp_path, "mnt")
    r = run_chunkfs(chunkfs_bin, ["-f", "-o", "no-such-option", nginx(src).url, mnt,
                                  "--cache-dir=%s" % (tmp_path / "cache")])
    assert r.returncode != 0
    assert "no-such-option" in r.stderr
    assert not is_mounted(mnt)


def test_source_is_redacted_url(nginx, mount, tmp_path):
    """The mount table's source is the URL with its userinfo redacted; a comma in it survives."""
    root = tmp_path / "srv"
    root.mkdir()
    shutil.copytree(data_dir("litdata-mixed"), root / "set,one")
    server = nginx(str(root))
    url = "http://reader:pa55word@127.0.0.1:%d/set,one/" % server.port
    m = mount(url)
    check_all_bytes(m.path, str(root / "set,one"))
    info = mountinfo(m.path)
    assert "pa55word" not in info["source"]
    assert info["source"] == "http://***@127.0.0.1:%d/set,one/" % server.port
    assert info["fstype"] == "fuse.chunkfs"


def test_refuses_a_mountpoint_that_is_a_mount(nginx, mount, chunkfs_bin, tmp_path):
    src = data_dir("litdata-mixed")
    url = nginx(src).url
    m = mount(url)
    r = run_refused(chunkfs_bin, [url, m.path, "--cache-dir=%s" % (tmp_path / "c2")], m.path)
    assert r and r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "chunkfs: mountpoint %s: already a mount (unmount it first)" % m.path]
    assert mount_entries(m.path) == 1
    check_all_bytes(m.path, src)


def test_refuses_a_bind_mount(nginx, chunkfs_bin, tmp_path):
    """A bind mount is on the same file system as its parent: still a mount."""
    src = data_dir("litdata-mixed")
    mnt = fresh_dir(tmp_path, "mnt")
    subprocess.run(["mount", "--bind", mnt, mnt], check=True, timeout=30)
    try:
        r = run_refused(chunkfs_bin, [nginx(src).url, mnt], mnt)
        assert r and r.returncode == 2
        assert "already a mount" in r.stderr
    finally:
        assert force_unmount(mnt)


def test_refuses_a_non_empty_directory(nginx, chunkfs_bin, tmp_path):
    src = data_dir("litdata-mixed")
    mnt = fresh_dir(tmp_path, "mnt")
    (tmp_path / "mnt" / "keep.txt").write_text("mine")
    r = run_refused(chunkfs_bin, [nginx(src).url, mnt], mnt)
    assert r and r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "chunkfs: mountpoint %s: not empty (-o nonempty mounts over its files)" % mnt]
    assert not is_mounted(mnt)


def test_nonempty_option_mounts_over_files(nginx, mount_cmd, chunkfs_bin, tmp_path):
    src = data_dir("litdata-mixed")
    mnt = fresh_dir(tmp_path, "mnt")
    (tmp_path / "mnt" / "keep.txt").write_text("mine")
    m = mount_cmd([chunkfs_bin, nginx(src).url, mnt, "-o",
                   "nonempty,cache-dir=%s" % (tmp_path / "cache")], mnt, chunkfs_env())
    assert m.ok, m.read_log()
    check_all_bytes(mnt, src)
    assert not os.path.exists(os.path.join(mnt, "keep.txt"))


MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4


def mount_dev_fuse(mnt):
    """Open /dev/fuse and mount it at mnt as mount.fuse3's drop_privileges and
    CSI drivers do (mount(2) with fd=N); returns the descriptor."""
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    data = "fd=%d,rootmode=40000,user_id=0,group_id=0" % fd
    if libc.mount(b"chunkfs", mnt.encode(), b"fuse.chunkfs",
                  ctypes.c_ulong(MS_RDONLY | MS_NOSUID | MS_NODEV), data.encode()) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, os.strerror(err), mnt)
    return fd


def test_mountpoint_as_dev_fd(nginx, chunkfs_bin, tmp_path):
    """A mountpoint given as /dev/fd/N, a /dev/fuse descriptor its caller
    mounted, is served as libfuse allows, not refused as "not a directory"."""
    src = data_dir("litdata-mixed")
    mnt = fresh_dir(tmp_path, "mnt")
    fd = mount_dev_fuse(mnt)
    dev = "/dev/fd/%d" % fd
    proc = None
    try:
        with open(tmp_path / "chunkfs.log", "w") as log:
            proc = subprocess.Popen([chunkfs_bin, nginx(src).url, dev, "-f",
                                     "--cache-dir=%s" % (tmp_path / "cache")],
                                    pass_fds=(fd,), env=chunkfs_env(),
                                    stderr=log)
        os.close(fd)  # the daemon's copy is the connection's last: it ends with the daemon
        fd = None
        wait_for(lambda: proc.poll() is not None or
                 os.path.exists(os.path.join(mnt, ".chunkfs", "stats")), scaled(20),
                 "chunkfs serving " + dev)
        assert proc.poll() is None, (tmp_path / "chunkfs.log").read_text()
        check_all_bytes(mnt, src)
    finally:
        if fd is not None:
            os.close(fd)
        assert force_unmount(mnt)
        if proc:
            try:
                proc.wait(timeout=scaled(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 0, (tmp_path / "chunkfs.log").read_text()


def pkg_version(name):
    r = subprocess.run(["pkg-config", "--modversion", name], capture_output=True, text=True,
                       timeout=30, check=True)
    return r.stdout.strip()


def test_version_names_the_libraries(chunkfs_bin):
    r = run_chunkfs(chunkfs_bin, ["--version"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"chunkfs \d+\.\d+\.\d+", lines[0]), lines
    assert lines[1:] == ["libfuse " + pkg_version("fuse3"), "libcurl " + pkg_version("libcurl"),
                         "zstd " + pkg_version("libzstd")]
