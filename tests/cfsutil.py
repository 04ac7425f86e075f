"""Helpers of the chunkfs test suite: real nginx, real FUSE mounts. The fixtures
that use them are in conftest.py; tests import what they need from here.

Everything a test starts is stopped by its PID at teardown, even when the test
failed. Every wait is a condition polled against a deadline; deadlines are
multiplied by SCALE when the binary is a sanitizer build (CHUNKFS_SANITIZED=1).

  waits:     wait_for, run_with_deadline, scaled
  data:      data_dir, index_chunks, dataset_names, dataset_views, dataset_listing,
             check_hidden, sha256_file, source_sha256, sha256_bytes, open_direct
  processes: run_chunkfs, run_until_exit, chunkfs_env, stop_process, pid_alive,
             find_pids_by_argv, vm_hwm, vm_peak, vm_rss, free_port
  mounts:    Mount, mountinfo, is_mounted, force_unmount, fuse_unavailable,
             log_problems (the log scan of every Mount's teardown)
  servers:   NginxServer
  install:   chunkfs_bin_path, meson_options, meson_install

chunkfs runs without this machine's CA bundle variables (CA_ENV_VARS) unless a
test passes them explicitly: mount(..., env=chunkfs_env(CURL_CA_BUNDLE=ca)).
"""
import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
import litgen  # noqa: E402  (tests/litgen.py)

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

SANITIZED = os.environ.get("CHUNKFS_SANITIZED") == "1"
SCALE = 3 if SANITIZED else 1
DEFAULT_BUDGET = 60           # seconds per test (x SCALE) before the watchdog kills its daemons
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                     "MemorySanitizer", "runtime error:")
# CA bundle variables that libcurl, the curl tool or the AWS tools read. They
# are removed from chunkfs's environment unless a test passes them itself
# (env=...), so that TLS tests do not depend on the machine's settings.
CA_ENV_VARS = ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "AWS_CA_BUNDLE")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FUSERMOUNT = shutil.which("fusermount3") or "/usr/bin/fusermount3"


def scaled(seconds):
    """A deadline in seconds, longer for sanitizer builds."""
    return seconds * SCALE


# --------------------------------------------------------------------------
# small helpers


def wait_for(cond, timeout, what, interval=0.005, max_interval=0.1):
    """Poll cond() until it returns a true value (returned) or timeout seconds
    pass (AssertionError naming what)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(min(interval, deadline - now))
        interval = min(interval * 2, max_interval)


def check_erofs(ops):
    """Run every operation of ops ({what: callable}); each must fail with EROFS. A
    result that was opened (a file object or a descriptor) is closed."""
    failures = []
    for what, op in ops.items():
        try:
            result = op()
        except OSError as e:
            if e.errno != errno.EROFS:
                failures.append("%s: %s (want EROFS)" % (what, e))
            continue
        if hasattr(result, "close"):
            result.close()
        elif isinstance(result, int):
            os.close(result)
        failures.append("%s succeeded" % what)
    assert not failures, "\n".join(failures)


def run_with_deadline(fn, timeout, what="call"):
    """Run fn() in a daemon thread; return its result or re-raise its exception.
    AssertionError if it has not finished within timeout seconds (the thread
    is left blocked: the mount teardown kills the daemon, which unblocks it)."""
    box = {}

    def runner():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=runner, name="deadline:" + what, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError("%s did not finish within %.1f s (hang?)" % (what, timeout))
    if "error" in box:
        raise box["error"]
    return box.get("value")


def sha256_file(path, bufsize=MiB):
    """sha256 hex digest of a whole file, read with plain read() calls."""
    h = hashlib.sha256()
    buf = bytearray(bufsize)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def source_sha256(path):
    """sha256 of a source file (cached: sources never change during a run)."""
    return sha256_file(path)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def data_dir(name):
    """Path of a fixture dataset directory: tests/data/<name>."""
    return os.path.join(TESTS_DIR, "data", name)


def index_chunks(dataset_dir):
    """(filename, chunk_bytes) of every chunk listed in dataset_dir/index.json."""
    with open(os.path.join(dataset_dir, "index.json"), "rb") as f:
        index = json.load(f)
    return [(c["filename"], c["chunk_bytes"]) for c in index["chunks"]]


def dataset_names(dataset_dir):
    """Files the mount of dataset_dir must show at its root (besides .chunkfs)."""
    return ["index.json"] + [name for name, _ in index_chunks(dataset_dir)]


def dataset_views(dataset_dir):
    """The hidden directories the mount of a LitData dataset_dir has beside its files,
    found by name but not listed (unless --views=visible): .items/ when it holds an
    item, .decompressed/ when its chunks are zstd frames."""
    with open(os.path.join(dataset_dir, "index.json"), "rb") as f:
        index = json.load(f)
    compression = index.get("config", {}).get("compression")
    views = []
    if sum(c["chunk_size"] for c in index["chunks"]) and compression in (None, "zstd"):
        views.append(".items")
    if compression == "zstd":
        views.append(".decompressed")
    return views


def dataset_listing(dataset_dir):
    """Every name readdir of the mount of dataset_dir gives at its root: its files
    (dataset_views() and .chunkfs are hidden)."""
    return dataset_names(dataset_dir)


def check_hidden(directory, names):
    """Each of names (hidden directories: views, .chunkfs) opens by name in directory,
    and readdir of directory does not list it."""
    listed = os.listdir(directory)
    for name in names:
        assert os.path.isdir(os.path.join(directory, name)), name
        assert name not in listed, "%s is listed in %s" % (name, directory)


def open_direct(path):
    """An O_DIRECT descriptor of path (the kernel's page cache and readahead
    out of the way, so the daemon sees the reads as issued); skips the test
    where O_DIRECT is refused."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as e:
        if e.errno == errno.EINVAL:
            pytest.skip("O_DIRECT is not supported on this mount")
        raise


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm(pid):
    """Peak resident set size (VmHWM) of pid, in bytes."""
    return _proc_status_kb(pid, "VmHWM") * KiB


def vm_peak(pid):
    """Peak virtual memory size (VmPeak) of pid, in bytes: what it ever reserved, touched
    or not."""
    return _proc_status_kb(pid, "VmPeak") * KiB


def vm_rss(pid):
    """Resident set size (VmRSS) of pid, in bytes."""
    return _proc_status_kb(pid, "VmRSS") * KiB


def _proc_status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mountinfo(path):
    """The /proc/self/mountinfo entry (dict) of the mount at path, or None.
    Never touches the file system at path, so it cannot block on a hung mount."""
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            if len(fields) >= 6 and _unescape_mountinfo(fields[4]) == path:
                major, _, minor = fields[2].partition(":")
                return {
                    "mountpoint": path,
                    "dev": (int(major), int(minor)),
                    "mount_options": fields[5],
                    "fstype": rfields[0] if rfields else "",
                    "source": _unescape_mountinfo(rfields[1]) if len(rfields) > 1 else "",
                    "super_options": rfields[2] if len(rfields) > 2 else "",
                }
    return None


def is_mounted(path):
    return mountinfo(path) is not None


def force_unmount(path):
    """Unmount path by every means, lazily if needed; returns True when gone."""
    for cmd in ([FUSERMOUNT, "-u", path], [FUSERMOUNT, "-uz", path], ["umount", "-l", path]):
        if not is_mounted(path):
            return True
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30, check=False)
        except subprocess.TimeoutExpired:
            pass
    return not is_mounted(path)


FUSECTL = "/sys/fs/fuse/connections"


def fuse_connection_id(dev):
    """The fusectl connection id of a FUSE mount whose device is (major, minor)
    (the kernel's dev_t: major << 20 | minor)."""
    return (dev[0] << 20) | dev[1]


def abort_fuse_connection(conn_id):
    """Abort a FUSE connection of ours (fusectl): every request waiting on it
    fails with ENOTCONN, which frees threads stuck on a dead daemon, the
    daemon's own included. Mounts fusectl if it is not mounted (standard on
    systemd systems). Returns True when the abort was written."""
    if conn_id is None:
        return False
    if not os.path.ismount(FUSECTL):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    path = os.path.join(FUSECTL, str(conn_id), "abort")
    try:
        with open(path, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _same_argv(cmd, want):
    """cmd (a /proc cmdline) is want's argv, but for secrets that chunkfs masks
    with '*' in its own argv (userinfo, query strings, header values)."""
    if len(cmd) != len(want):
        return False
    return all(c == w or c == ord("*") for c, w in zip(cmd, want))


def find_pids_by_argv(argv):
    """PIDs whose /proc/PID/cmdline is argv (which holds a path unique to the
    calling test, so this never matches a process of anybody else), allowing
    for the secrets chunkfs masks in its process title."""
    want = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if _same_argv(cmd, want):
            found.append(int(entry))
    return found


def stop_process(proc, grace=10):
    """Stop a Popen we started, by its PID: SIGTERM, then SIGKILL after grace s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# The default spill directory of every chunkfs the suite runs ($XDG_CACHE_HOME/chunkfs),
# so that no test writes under the user's ~/.cache; removed at the end of the session.
TEST_CACHE_HOME = tempfile.mkdtemp(prefix="chunkfs-test-cache.")


def chunkfs_env(base=None, **overrides):
    """An environment for chunkfs: base (default os.environ) without the CA
    bundle variables (CA_ENV_VARS) and with XDG_CACHE_HOME in the suite's own
    directory, then overrides (a value of None removes the variable). E.g.
    chunkfs_env(CURL_CA_BUNDLE=ca, HOME=str(home))."""
    env = dict(os.environ if base is None else base)
    for var in CA_ENV_VARS:
        env.pop(var, None)
    env["XDG_CACHE_HOME"] = TEST_CACHE_HOME
    for var, value in overrides.items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = str(value)
    return env


def run_until_exit(argv, env, mountpoint, timeout=30):
    """Run chunkfs (argv) to its exit with env (None: chunkfs_env()); returns
    (returncode, stderr, seconds). A mount appearing on mountpoint, a process
    outliving the command, or no exit within the deadline fails the test, after
    cleaning up by PID."""
    env = chunkfs_env() if env is None else env
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        deadline = start + scaled(timeout)
        problem = None
        interval = 0.005
        while p.poll() is None:
            if mountpoint and is_mounted(mountpoint):
                problem = "chunkfs mounted %s" % mountpoint
                break
            if time.monotonic() > deadline:
                problem = "chunkfs did not exit within %d s" % scaled(timeout)
                break
            time.sleep(interval)
            interval = min(2 * interval, 0.05)
        if p.poll() is None:
            p.kill()
        rc = p.wait(timeout=10)
        elapsed = time.monotonic() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if mountpoint and is_mounted(mountpoint):
        problem = problem or "chunkfs exited %d but left %s mounted" % (rc, mountpoint)
    leftover = find_pids_by_argv(argv)
    if problem or leftover:
        if mountpoint:
            force_unmount(mountpoint)
        for pid in leftover:
            try:
                wait_for(lambda: not pid_alive(pid), scaled(5), "PID %d to exit" % pid)
            except AssertionError:
                os.kill(pid, 9)
                problem = problem or "a chunkfs process (PID %d) outlived the command" % pid
        if problem:
            pytest.fail("%s\ncommand: %s\nstderr:\n%s" % (problem, argv, tail(stderr)),
                        pytrace=False)
    return rc, stderr, elapsed


def run_chunkfs(bin, args, timeout=30, env=None):
    """Run chunkfs with args to completion; CompletedProcess with text stdout and
    stderr. Output goes through files, so a daemon that inherited them cannot
    hold the call open. AssertionError on timeout (the child is killed).
    env=None runs it with chunkfs_env() (no CA bundle variables); a given env
    is used as it is."""
    if env is None:
        env = chunkfs_env()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        argv = [bin] + list(args)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        try:
            rc = p.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
            err.seek(0)
            raise AssertionError("%r did not exit within %d s; stderr: %s"
                                 % (argv, scaled(timeout), err.read().decode(errors="replace")))
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, rc, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def sanitizer_report(text):
    """The first sanitizer marker found in text, or None."""
    for marker in SANITIZER_MARKERS:
        if marker in text:
            return marker
    return None


def tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


# A warning or error line of chunkfs's log, as src/util/log.c writes it: "HH:MM:SS.mmm
# chunkfs[LEVEL]: MESSAGE" on stderr, "TIME chunkfs[PID] LEVEL: MESSAGE" in a --log-file,
# LEVEL "warning" for g_warning() and "error" for g_critical() and g_error(); or GLib's
# own "(chunkfs:PID): DOMAIN-CRITICAL **: TIME: MESSAGE" of a line logged before chunkfs
# installed its writer. Debug and info lines are not problems.
LOG_PROBLEM_RE = re.compile(r"chunkfs\[(?:warning|error)\]: (?P<stderr>.*)"
                            r"|chunkfs\[\d+\] (?:warning|error): (?P<file>.*)"
                            r"|-(?:WARNING|CRITICAL|ERROR) \*\*: (?P<glib>.*)")


def log_problems(text, allow=()):
    """The warning and error lines of a chunkfs log (text) whose message matches
    none of the regular expressions of allow (re.search: a pattern may match any
    part of the message, after the level). A line a test did not provoke is a bug
    of chunkfs or of the test; see the log_allow marker in conftest.py."""
    found = []
    for line in text.splitlines():
        m = LOG_PROBLEM_RE.search(line)
        if not m:
            continue
        message = next(g for g in m.groups() if g is not None)
        if not any(re.search(pattern, message) for pattern in allow):
            found.append(line)
    return found


def log_file_of(argv):
    """The --log-file (or -o log-file=) that argv gives chunkfs, or None."""
    for i, arg in enumerate(argv):
        if arg.startswith("--log-file="):
            return arg[len("--log-file="):]
        if arg == "--log-file" and i + 1 < len(argv):
            return argv[i + 1]
        if arg == "-o" and i + 1 < len(argv):
            for item in argv[i + 1].split(","):
                if item.startswith("log-file="):
                    return item[len("log-file="):]
    return None


def fuse_unavailable():
    """Why chunkfs cannot mount on this machine, or None: no /dev/fuse, a /dev/fuse
    this user cannot open for reading and writing, or, for a user other than root,
    no fusermount3 that is set-user-ID root to mount with."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (load the fuse module, or give the container the device)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return "cannot open /dev/fuse: %s" % e.strerror
    if os.geteuid() == 0:
        return None
    try:
        st = os.stat(FUSERMOUNT)
    except OSError:
        return "not root, and there is no %s" % FUSERMOUNT
    if not (st.st_mode & stat.S_ISUID and st.st_uid == 0):
        return "not root, and %s is not set-user-ID root" % FUSERMOUNT
    return None


# --------------------------------------------------------------------------
# watchdog: a per-test time budget without pytest-timeout


class Watchdog:
    """Kills (SIGKILL, by PID) the chunkfs daemons of a test that runs past its
    budget: a syscall blocked on a hung FUSE mount then fails with ENOTCONN
    and the test ends instead of hanging the suite."""

    def __init__(self, budget):
        self.budget = budget
        self.mounts = []
        self.fired = False
        self.lock = threading.Lock()

    @property
    def pids(self):
        return [m.pid for m in self.mounts if m.pid is not None]

    def watch(self, m):
        with self.lock:
            self.mounts.append(m)

    def fire(self):
        with self.lock:
            self.fired = True
            mounts = list(self.mounts)
        for m in mounts:
            m.killed = True
            m.record_connection()
            abort_fuse_connection(m.conn_id)
            if m.pid is not None:
                try:
                    os.kill(m.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# --------------------------------------------------------------------------
# nginx


NGINX_CONF = """\
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {error_log} info;
events {{
    worker_connections 1024;
}}
http {{
    default_type application/octet-stream;
    types {{
        application/json json;
    }}
    sendfile on;
    tcp_nopush off;
    keepalive_timeout 65;
    keepalive_requests 10000;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    log_format chunkfs '$remote_addr [$time_local] "$request" $status $bytes_sent '
                       '"$http_range" $body_bytes_sent $request_time $connection '
                       '$connection_requests $msec';
    access_log {access_log} chunkfs;
    server {{
        listen 127.0.0.1:{port}{listen_ssl};
        server_name localhost;
{ssl_conf}        root {root};
        location / {{
{limit_rate}        }}
        location = /.nginx-probe {{
            access_log off;
            return 204;
        }}
{extra_conf}
    }}
}}
"""

ACCESS_RE = re.compile(r'^(?P<addr>\S+) \[(?P<time>[^\]]*)\] "(?P<request>[^"]*)" '
                       r'(?P<status>\d+) (?P<bytes_sent>\d+) "(?P<range>[^"]*)" '
                       r'(?P<body_bytes_sent>\d+) (?P<request_time>\S+) '
                       r'(?P<connection>\d+) (?P<connection_requests>\d+) (?P<msec>[\d.]+)$')


class NginxServer:
    """A running nginx serving root on 127.0.0.1:port.

    With ssl=(certificate, key) (PEM files) it serves HTTPS only.
    url ("http://127.0.0.1:PORT/", or "https://..." with ssl), port, pid, root, prefix, conf,
    access_log (path; one line per request: addr [time] "request" status
    bytes_sent "range" body_bytes_sent request_time connection
    connection_requests msec), error_log (path), requests() (parsed access log:
    dicts of strings keyed like ACCESS_RE's groups; msec is the end time).
    """

    def __init__(self, root, prefix, limit_rate=None, extra_conf="", ssl=None):
        self.root = os.path.abspath(str(root))
        self.prefix = str(prefix)
        self.limit_rate = limit_rate
        self.extra_conf = extra_conf
        self.ssl = tuple(os.path.abspath(str(p)) for p in ssl) if ssl else None
        self.scheme = "https" if self.ssl else "http"
        self.access_log = os.path.join(self.prefix, "access.log")
        self.error_log = os.path.join(self.prefix, "error.log")
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.proc = None
        self.port = None
        self.url = None
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _write_conf(self):
        limit = "            limit_rate %s;\n" % self.limit_rate if self.limit_rate else ""
        ssl_conf = ""
        if self.ssl:
            ssl_conf = ("        ssl_certificate %s;\n        ssl_certificate_key %s;\n"
                        % self.ssl)
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(prefix=self.prefix, error_log=self.error_log,
                                      access_log=self.access_log, port=self.port,
                                      root=self.root, limit_rate=limit,
                                      extra_conf=self.extra_conf,
                                      listen_ssl=" ssl" if self.ssl else "",
                                      ssl_conf=ssl_conf))

    def start(self):
        last_error = ""
        for _attempt in range(8):
            self.port = free_port()
            self._write_conf()
            with open(self.error_log, "a") as errf:
                self.proc = subprocess.Popen(
                    [NGINX, "-p", self.prefix + "/", "-c", self.conf, "-e", self.error_log,
                     "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf)
            if self._wait_ready():
                self.url = "%s://127.0.0.1:%d/" % (self.scheme, self.port)
                return self
            self.stop()
            last_error = self.read_error_log()
            if "Address already in use" not in last_error:
                break
        raise AssertionError("nginx did not start; error log:\n" + tail(last_error))

    def _probe(self):
        """True when our nginx answers the probe location."""
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            if self.ssl:
                # only "is it our nginx": the certificate is the tests' business
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                try:
                    s = ctx.wrap_socket(s)    # takes over the descriptor
                except OSError:
                    s.close()
                    raise
            with s:
                s.sendall(b"GET /.nginx-probe HTTP/1.0\r\nHost: localhost\r\n\r\n")
                reply = b""
                while len(reply) < 4096:
                    data = s.recv(4096)
                    if not data:
                        break
                    reply += data
            return reply.startswith(b"HTTP/1.1 204") and b"Server: nginx" in reply
        except OSError:  # ssl.SSLError is an OSError
            return False

    def _wait_ready(self):
        deadline = time.monotonic() + 15
        interval = 0.005
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._probe():
                return True
            time.sleep(interval)
            interval = min(interval * 2, 0.1)
        return False

    def stop(self):
        stop_process(self.proc)

    def read_error_log(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def requests(self):
        """Parsed access log entries: dicts of strings (see ACCESS_RE), in order."""
        out = []
        try:
            with open(self.access_log, errors="replace") as f:
                for line in f:
                    m = ACCESS_RE.match(line.rstrip("\n"))
                    if m:
                        out.append(m.groupdict())
        except FileNotFoundError:
            pass
        return out


# --------------------------------------------------------------------------
# memcached (the shared tier)

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"


class MemcachedServer:
    """A memcached on 127.0.0.1:port (TCP only, -U 0), memory_mb of item memory.
    spec ("127.0.0.1:PORT"), port, pid, proc; stop() by its PID."""

    def __init__(self, memory_mb=64):
        self.memory_mb = memory_mb
        self.proc = None
        self.port = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def spec(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        user = ["-u", "root"] if os.geteuid() == 0 else []
        for _attempt in range(8):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [MEMCACHED, "-U", "0", "-l", "127.0.0.1", "-p", str(self.port),
                 "-m", str(self.memory_mb)] + user,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready(15):
                return self
            self.stop()
        raise AssertionError("memcached did not start on a free port")

    def _accepts(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"version\r\n")
                return s.recv(64).startswith(b"VERSION ")
        except OSError:
            return False

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._accepts():
                return True
            time.sleep(0.01)
        return False

    def signal_stop(self):
        """Send SIGTERM, without waiting; stop() then waits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self):
        stop_process(self.proc)


def shared_cache_arg(servers):
    """The --shared-cache option naming servers (MemcachedServer or "HOST:PORT")."""
    return "--shared-cache=memcached://" + ",".join(
        s if isinstance(s, str) else s.spec for s in servers)


SHARED_PART_BYTES = 256 * KiB


def shared_keys(url, etag, size, block_size, index, decompressed=False):
    """The memcached keys of every part of a block, as docs/architecture.md
    ("The shared tier") documents them: "chunkfs:" + XXH3-128 hex of the
    block's identity + ":" + part number. url is the object's full URL (only
    its SHA-256 enters the identity), etag as the server sends it (quotes
    included)."""
    import xxhash
    block_len = min(block_size, size - index * block_size)
    identity = "chunkfs-block-v2\n%s\n%s\n%d\n%d\n%d\n%s" % (
        hashlib.sha256(url.encode()).hexdigest(), etag, size, block_size, index,
        "decompressed" if decompressed else "raw")
    digest = xxhash.xxh3_128_hexdigest(identity.encode())
    parts = max(1, -(-block_len // SHARED_PART_BYTES))
    return ["chunkfs:%s:%d" % (digest, part) for part in range(parts)]


# --------------------------------------------------------------------------
# chunkfs mounts


class Mount:
    """One chunkfs process and its mountpoint.

    path (mountpoint), pid, proc (Popen of the command), log (stderr of the
    command), argv, foreground, expect_ok, ok (mounted and ready),
    returncode (of the foreground process or of the daemonizing command),
    log_allow (regular expressions of the warning and error lines the test
    expects; any other such line fails the teardown).
    """

    def __init__(self, argv, path, log, foreground, expect_ok, sanitizer_dir, log_allow=()):
        self.argv = argv
        self.path = path
        self.log = log
        self.log_allow = list(log_allow)
        self.foreground = foreground
        self.expect_ok = expect_ok
        self.sanitizer_dir = sanitizer_dir
        self.proc = None
        self.pid = None
        self.ok = False
        self.returncode = None
        self.unmounted = False
        self.killed = False
        self.checked = False
        self.conn_id = None      # fusectl id of the FUSE connection, once mounted

    def file(self, *names):
        return os.path.join(self.path, *names)

    def stats(self, attempts=5):
        """The parsed .chunkfs/stats. A read that is not JSON is retried (up to
        attempts reads in all), so that tests about other things do not fail
        on a torn stats read; test_stats.py checks that every read is whole."""
        for attempt in range(attempts):
            with open(os.path.join(self.path, ".chunkfs", "stats"), "rb") as f:
                data = f.read()
            try:
                return json.loads(data)
            except ValueError as e:
                if attempt == attempts - 1:
                    raise AssertionError("%s/.chunkfs/stats is not JSON (%s): %r"
                                         % (self.path, e, data[:2000]))
        return None

    def read_log(self):
        """The stderr of the command, plus sanitizer reports written to files."""
        text = ""
        try:
            with open(self.log, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            pass
        if self.sanitizer_dir and os.path.isdir(self.sanitizer_dir):
            for name in sorted(os.listdir(self.sanitizer_dir)):
                with open(os.path.join(self.sanitizer_dir, name), errors="replace") as f:
                    text += "\n==== %s ====\n%s" % (name, f.read())
        return text

    def vm_hwm(self):
        return vm_hwm(self.pid)

    def alive(self):
        if self.proc is not None and self.pid == self.proc.pid:
            return self.proc.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def _wait_exit(self, timeout):
        try:
            wait_for(lambda: not self.alive(), timeout, "chunkfs (PID %s) to exit" % self.pid)
            return True
        except AssertionError:
            return False

    def unmount(self):
        """fusermount3 -u (falling back to -uz / umount -l), then wait for the
        process to exit, SIGKILL by PID if it does not. Returns a list of
        problems (empty when all went well). Idempotent."""
        if self.unmounted:
            return []
        self.unmounted = True
        problems = []
        was_mounted = is_mounted(self.path)
        if was_mounted:
            try:
                r = subprocess.run([FUSERMOUNT, "-u", self.path], capture_output=True, text=True,
                                   timeout=scaled(10))
                if r.returncode != 0:
                    problems.append("fusermount3 -u %s failed: %s" % (self.path, r.stderr.strip()))
            except subprocess.TimeoutExpired:
                problems.append("fusermount3 -u %s hung: FUSE connection aborted" % self.path)
                abort_fuse_connection(self.conn_id)
            if is_mounted(self.path) and not force_unmount(self.path):
                problems.append("%s is still mounted after lazy unmount" % self.path)
        if self.pid is not None and self.alive():
            if not was_mounted and not self.ok:
                self.kill()      # never mounted: nothing would make it exit
            elif not self._wait_exit(scaled(15)):
                problems.append("chunkfs (PID %d) did not exit within %d s of the unmount; "
                                "killed" % (self.pid, scaled(15)))
                self.kill()
        if self.proc is not None and self.foreground:
            try:
                self.returncode = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                problems.append("chunkfs (PID %d) survived SIGKILL" % self.proc.pid)
        return problems

    def record_connection(self):
        info = mountinfo(self.path)
        if info and self.conn_id is None:
            self.conn_id = fuse_connection_id(info["dev"])

    def kill(self):
        """SIGKILL by PID; if the process still does not go (a thread stuck on
        a FUSE request, e.g. one to its own mount), abort its FUSE connection."""
        if self.pid is not None and self.alive():
            self.killed = True
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not self._wait_exit(5) and abort_fuse_connection(self.conn_id):
                self._wait_exit(10)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def logged_text(self):
        """Every line chunkfs logged that the suite can read: its stderr and its
        --log-file (a daemon's lines after it detached go to syslog, unread)."""
        paths = [self.log, log_file_of(self.argv)]
        text = ""
        for path in filter(None, paths):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except (FileNotFoundError, NotADirectoryError):
                pass
        return text

    def check_teardown(self):
        """Unmount and return the list of problems: unclean exit, sanitizer reports,
        warning or error lines that log_allow does not expect. Once: a second call
        returns no problems, the first having reported them."""
        if self.checked:
            return []
        self.checked = True
        problems = self.unmount()
        if (self.foreground and self.expect_ok and self.ok and not self.killed
                and self.returncode not in (None, 0)):
            problems.append("chunkfs exited with status %s after the unmount (expected 0)"
                            % self.returncode)
        log = self.read_log()
        marker = sanitizer_report(log)
        if marker:
            problems.append("sanitizer report (%s) in the log of chunkfs" % marker)
        unexpected = log_problems(self.logged_text(), self.log_allow)
        if unexpected:
            problems.append("%d warning or error line(s) the test does not expect (add what it "
                            "provokes to its log_allow):\n%s"
                            % (len(unexpected), "\n".join(unexpected[:20])))
        if problems:
            problems.append("command: %s\n---- log of chunkfs (last lines) ----\n%s"
                            % (" ".join(self.argv), tail(log, 80)))
        return problems


def sanitizer_env(env, directory):
    """env with ASan/UBSan/LSan reports written to files in directory (a
    daemon's stderr is /dev/null), options given by the caller kept."""
    env = dict(env)
    for var, name in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan"),
                      ("LSAN_OPTIONS", "lsan")):
        prev = env.get(var, "")
        opt = "log_path=%s" % os.path.join(directory, name)
        env[var] = prev + ":" + opt if prev else opt
    return env


def index_visible(m):
    """The mount answers: its root shows .chunkfs/stats (there with or without a dataset)."""
    return run_with_deadline(lambda: os.path.exists(os.path.join(m.path, ".chunkfs", "stats")),
                             scaled(10), "stat of %s/.chunkfs/stats" % m.path)


def wait_foreground_ready(m, timeout):
    deadline = time.monotonic() + timeout
    interval = 0.005
    while True:
        rc = m.proc.poll()
        if rc is not None:
            m.returncode = rc
            if m.expect_ok:
                pytest.fail("chunkfs exited with status %d before the mount was ready\n"
                            "command: %s\n---- log ----\n%s"
                            % (rc, " ".join(m.argv), tail(m.read_log())), pytrace=False)
            return
        if is_mounted(m.path):
            m.record_connection()
        if m.conn_id is not None and index_visible(m):
            m.ok = True
            return
        if time.monotonic() >= deadline:
            if m.expect_ok:
                pytest.fail("mount not ready within %d s\ncommand: %s\n---- log ----\n%s"
                            % (timeout, " ".join(m.argv), tail(m.read_log())), pytrace=False)
            return
        time.sleep(interval)
        interval = min(interval * 2, 0.05)


def finish_daemon_start(m, dog):
    dog.watch(m)
    try:
        rc = m.proc.wait(timeout=scaled(30))
    except subprocess.TimeoutExpired:
        m.proc.kill()
        m.proc.wait(timeout=10)
        pytest.fail("chunkfs (daemon mode) did not return within %d s\ncommand: %s\n"
                    "---- log ----\n%s" % (scaled(30), " ".join(m.argv), tail(m.read_log())),
                    pytrace=False)
    m.returncode = rc
    # The mount must be usable at once: no waiting between the command and this check.
    mounted = is_mounted(m.path)
    if mounted:
        m.record_connection()
    visible = mounted and index_visible(m)
    pids = find_pids_by_argv(m.argv)
    if pids:
        m.pid = pids[0]
    if rc == 0 and visible:
        m.ok = True
    if m.expect_ok:
        if rc != 0:
            pytest.fail("chunkfs (daemon mode) returned %d\ncommand: %s\n---- log ----\n%s"
                        % (rc, " ".join(m.argv), tail(m.read_log())), pytrace=False)
        if not visible:
            pytest.fail("chunkfs returned 0 but %s is %s right after it"
                        % (m.path, "mounted without index.json" if mounted else "not mounted"),
                        pytrace=False)
        if len(pids) != 1:
            pytest.fail("expected one daemon process with argv %r, found PIDs %r"
                        % (m.argv, pids), pytrace=False)


def tear_down_mounts(mounts):
    """A mounting fixture's teardown: each Mount unmounted and its daemon
    stopped, newest first; the test fails with every problem found (a daemon
    left, a log line not allowed, a sanitizer report)."""
    problems = []
    for m in reversed(mounts):
        problems += m.check_teardown()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def chunkfs_bin_path():
    """The chunkfs binary the suite runs: CHUNKFS_BIN, else build/chunkfs, made absolute."""
    return os.path.abspath(os.environ.get("CHUNKFS_BIN") or os.path.join(REPO_DIR, "build",
                                                                         "chunkfs"))


def meson_options(build_dir):
    """{name: value} of the build options of a meson build directory."""
    out = subprocess.run(["meson", "introspect", "--buildoptions", build_dir],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def meson_install(build_dir, destdir, timeout=120):
    """`meson install --no-rebuild` of build_dir into destdir (a staged install:
    every path under destdir + its installed path). Returns (bindir, mandir) as
    staged; the test fails with meson's output when the install fails."""
    argv = ["meson", "install", "-C", build_dir, "--destdir", destdir, "--no-rebuild"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        pytest.fail("%s exited %d:\n%s%s" % (" ".join(argv), r.returncode, tail(r.stdout),
                                             tail(r.stderr)), pytrace=False)
    opts = meson_options(build_dir)
    # bindir and mandir are relative to the prefix unless given absolute; both go under destdir.
    return tuple(destdir + os.path.join(opts["prefix"], opts[name]) for name in ("bindir", "mandir"))


def own_cgroup_dirs():
    """[(version, directory)] of this process's control groups that limit memory: the
    cgroup v1 memory controller's and cgroup v2's, where mounted (proc(5): /proc/self/cgroup
    and /proc/self/mountinfo)."""
    with open("/proc/self/cgroup") as f:
        groups = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    found = []
    for hid, controllers, path in groups:
        v1 = "memory" in controllers.split(",")
        if not v1 and (hid != "0" or controllers):
            continue
        for fields in mounts:
            fs = fields[fields.index("-") + 1:] if "-" in fields else []  # type, source, options
            if len(fs) < 3 or fs[0] != ("cgroup" if v1 else "cgroup2"):
                continue
            if v1 and "memory" not in fs[2].split(","):
                continue
            root, point = fields[3], fields[4]
            if root != "/" and path != root and not path.startswith(root + "/"):
                continue
            rel = path[len(root):] if root != "/" else path
            found.append((1 if v1 else 2, os.path.join(point, rel.lstrip("/"))))
            break
    return found


class MemoryCgroup:
    """A child control group of this process's with a memory limit, for a daemon
    started while this process is in it (joined()); create() returns None where
    none can be made (not root, no memory controller, cgroup v2 without memory
    delegated to this group's children)."""

    def __init__(self, path, origin):
        self.path, self.origin = path, origin

    @classmethod
    def create(cls, limit):
        for version, base in own_cgroup_dirs():
            path = os.path.join(base, "chunkfs-test-%d-%d" % (os.getpid(), time.monotonic_ns()))
            try:
                os.mkdir(path)
            except OSError:
                continue
            name = "memory.limit_in_bytes" if version == 1 else "memory.max"
            try:
                with open(os.path.join(path, name), "w") as f:
                    f.write("%d\n" % limit)
                return cls(path, base)
            except OSError:
                os.rmdir(path)
        return None

    def pids(self):
        """The PIDs of the processes in the group."""
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def _move(self, directory, pid):
        """Move process pid into the group at directory."""
        with open(os.path.join(directory, "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)

    @contextlib.contextmanager
    def joined(self):
        """This process in the group, back in its own on leaving; the processes it
        starts meanwhile stay in the group."""
        self._move(self.path, os.getpid())
        try:
            yield self
        finally:
            self._move(self.origin, os.getpid())

    def remove(self):
        """Remove the group once the processes in it are gone. The caller stops them;
        any still there after a grace time are killed by PID (and reported)."""
        try:
            wait_for(lambda: not self.pids(), scaled(15), "the processes of %s to exit" % self.path)
            left = []
        except AssertionError:
            left = self.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_for(lambda: not self.pids(), scaled(15), "the killed processes of %s" % self.path)
        os.rmdir(self.path)
        assert not left, "PIDs %r were still in %s after the test; killed" % (left, self.path)
