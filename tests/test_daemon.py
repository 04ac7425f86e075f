"""Daemon mode: the command returns when the mount is ready; unmounting ends the daemon."""
import os
import signal
import subprocess

from cfsutil import (FUSERMOUNT, data_dir, dataset_names, is_mounted, pid_alive, scaled,
                      sha256_file, source_sha256, wait_for)


def test_daemon_mode(nginx, mount):
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, foreground=False)   # asserts exit 0 and index.json right after
    with open(m.file("chunk-1-2.bin"), "rb") as f:
        data = f.read()
    with open(os.path.join(src, "chunk-1-2.bin"), "rb") as f:
        assert data == f.read()
    assert m.returncode == 0
    assert m.pid != m.proc.pid, "the command itself kept running"
    assert pid_alive(m.pid)
    for name in dataset_names(src):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name)), name
    r = subprocess.run([FUSERMOUNT, "-u", m.path], capture_output=True, text=True,
                       timeout=scaled(30))
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not pid_alive(m.pid), scaled(20), "the daemon (PID %d) to exit" % m.pid)
    assert not is_mounted(m.path)
    assert m.unmount() == []


def test_daemon_mode_is_immediately_usable(nginx, mount):
    """Several daemon mounts in a row, each read on the line after the command."""
    src = data_dir("litdata-mixed")
    srv = nginx(src)
    for _ in range(3):
        m = mount(srv.url, "--mem-cache=8M", foreground=False)
        assert sha256_file(m.file("chunk-0-3.bin")) == \
            source_sha256(os.path.join(src, "chunk-0-3.bin"))
        assert m.unmount() == []
        assert not pid_alive(m.pid)


def test_sigterm_stops_cleanly(nginx, mount):
    """SIGTERM to the foreground process unmounts and exits 0."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url)
    assert sha256_file(m.file("chunk-0-0.bin")) == source_sha256(os.path.join(src, "chunk-0-0.bin"))
    os.kill(m.pid, signal.SIGTERM)
    rc = m.proc.wait(timeout=scaled(20))
    assert rc == 0, m.read_log()
    wait_for(lambda: not is_mounted(m.path), scaled(10), "%s to be unmounted" % m.path)
