"""Readiness for systemd (sd_notify(3)): with NOTIFY_SOCKET set, chunkfs sends
READY=1 once the mount serves and STOPPING=1 when it goes away, from the
process that serves. systemd does not run on these machines: a datagram
socket of the test's stands in for it, with SO_PASSCRED to see which process
sent each message. Without NOTIFY_SOCKET (every other test) nothing is sent."""
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from cfsutil import (Mount, chunkfs_env, data_dir, dataset_names, find_pids_by_argv, is_mounted,
                     sanitizer_env, scaled, sha256_file, source_sha256, tear_down_mounts,
                     wait_for)

DATASET = "litdata-mixed"


@pytest.fixture
def notify_socket(tmp_path):
    """(socket, path): an AF_UNIX datagram socket bound in tmp_path that reports
    its senders' credentials, as systemd's notification socket does."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(path)
    yield sock, path
    sock.close()


@pytest.fixture
def notified_mount(chunkfs_bin, tmp_path, _watchdog):
    """Factory: notified_mount(url, socket_path, foreground) starts chunkfs
    with NOTIFY_SOCKET=socket_path and returns its Mount at once, without
    waiting for the mount (the test waits for READY=1). Teardown unmounts,
    stops the daemon by PID and checks its log and sanitizer reports."""
    mounts = []

    def start(url, socket_path, foreground):
        n = len(mounts)
        path = str(tmp_path / ("mnt%d" % n))
        os.mkdir(path)
        san_dir = str(tmp_path / ("sanitizer%d" % n))
        os.mkdir(san_dir)
        argv = [chunkfs_bin] + (["-f"] if foreground else []) + [
            "--cache-dir=%s" % (tmp_path / ("cache%d" % n)), url, path]
        m = Mount(argv, path, str(tmp_path / ("chunkfs%d.log" % n)), foreground, True, san_dir)
        mounts.append(m)
        env = chunkfs_env(NOTIFY_SOCKET=socket_path)
        with open(m.log, "wb") as logf:
            m.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                      env=env if foreground else sanitizer_env(env, san_dir),
                                      close_fds=True)
        if foreground:
            m.pid = m.proc.pid
            _watchdog.watch(m)
        return m

    yield start
    tear_down_mounts(mounts)


def receive(sock, proc, timeout):
    """The next notification: (its lines, the sender's PID). Fails when none
    comes within timeout seconds, or when proc (the command run) exits with a
    failure before one does."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.1)
    while True:
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            break
        except socket.timeout:
            pass
        rc = proc.poll()
        assert rc in (None, 0), "chunkfs exited with status %d before notifying" % rc
        assert time.monotonic() < deadline, "no notification within %.0f s" % timeout
    pids = [struct.unpack("iII", cdata[:12])[0] for level, kind, cdata in ancillary
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    assert len(pids) == 1, ancillary
    return data.decode().split("\n"), pids[0]


def check_all_bytes(path, src):
    for name in dataset_names(src):
        assert sha256_file(os.path.join(path, name)) == source_sha256(os.path.join(src, name)), name


def check_ready(sock, m, url):
    """READY=1 with the STATUS line arrives, and the mount serves every byte at
    that moment: nothing is waited for between the two. Returns the sender's PID."""
    lines, pid = receive(sock, m.proc, scaled(20))
    assert lines == ["READY=1", "STATUS=serving %s on %s" % (url, m.path)]
    m.record_connection()
    m.ok = True
    check_all_bytes(m.path, data_dir(DATASET))
    return pid


def check_stopping(sock, m):
    lines, pid = receive(sock, m.proc, scaled(20))
    assert lines == ["STOPPING=1"]
    assert pid == m.pid


@pytest.mark.parametrize("stop", ["unmount", "sigterm"])
def test_ready_and_stopping_in_the_foreground(nginx, notify_socket, notified_mount, stop):
    """-f, as a Type=notify unit runs it: READY=1 when the mount serves,
    STOPPING=1 at fusermount3 -u (ExecStop=) or at SIGTERM (systemctl stop)."""
    sock, sock_path = notify_socket
    url = nginx(data_dir(DATASET)).url
    m = notified_mount(url, sock_path, foreground=True)
    assert check_ready(sock, m, url) == m.pid
    if stop == "unmount":
        assert m.unmount() == []
    else:
        os.kill(m.pid, signal.SIGTERM)
    check_stopping(sock, m)
    assert m.proc.wait(timeout=scaled(15)) == 0
    assert not is_mounted(m.path)


def test_ready_and_stopping_from_the_daemon(nginx, notify_socket, notified_mount, _watchdog):
    """Daemonized, the daemon (not the command, which exits 0) sends both: with
    a forking chunkfs a unit needs NotifyAccess=all, hence -f in README's unit."""
    sock, sock_path = notify_socket
    url = nginx(data_dir(DATASET)).url
    m = notified_mount(url, sock_path, foreground=False)
    sender = check_ready(sock, m, url)
    m.returncode = m.proc.wait(timeout=scaled(30))
    assert m.returncode == 0
    m.pid = wait_for(lambda: find_pids_by_argv(m.argv), scaled(10), "the daemon's PID")[0]
    _watchdog.watch(m)
    assert sender == m.pid != m.proc.pid
    assert m.unmount() == []
    check_stopping(sock, m)
