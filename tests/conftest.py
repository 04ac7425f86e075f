"""Fixtures of the chunkfs test suite: real nginx, real FUSE mounts. Their helpers,
and everything tests import, are in cfsutil.py.

  fixtures:  chunkfs_bin, installed, sanitized, nginx, module_nginx, serve, small, mount,
             big_dataset, memcached
  markers:   budget(seconds), log_allow(regex, ...) (see pytest.ini)

Every warning or error line a mount logs fails the test at the mount's teardown,
unless a regular expression of the test's log_allow markers (on the test, its
class or its module's pytestmark) or of the mount's own log_allow argument
matches its message: a test allows what it provokes, nothing more.

A test that mounts (it uses the mount fixture, or runs the binary through
chunkfs_bin) is skipped with the reason when this machine cannot mount
(cfsutil.fuse_unavailable()).
"""
import os
import shutil
import signal
import subprocess
import threading

import pytest

from cfsutil import (DEFAULT_BUDGET, SANITIZED, TEST_CACHE_HOME, MemcachedServer, MemoryCgroup,
                     MiB, Mount, NginxServer, Watchdog, chunkfs_bin_path, chunkfs_env, data_dir,
                     finish_daemon_start, fuse_unavailable, litgen, meson_install,
                     sanitizer_env, scaled, tear_down_mounts, wait_foreground_ready)
from faultserver import FaultServer

# Fixtures whose tests run chunkfs, and so need FUSE.
MOUNTING_FIXTURES = ("mount", "chunkfs_bin")


@pytest.fixture(scope="session", autouse=True)
def _test_cache_home():
    yield
    shutil.rmtree(TEST_CACHE_HOME, ignore_errors=True)


# root's default cache directory: no test may write this machine's
SYSTEM_CACHE_DIR = "/var/cache/chunkfs"


@pytest.fixture(autouse=True)
def _system_cache_dir_untouched():
    had = os.path.lexists(SYSTEM_CACHE_DIR)
    yield
    if not had and os.path.lexists(SYSTEM_CACHE_DIR):
        shutil.rmtree(SYSTEM_CACHE_DIR, ignore_errors=True)
        pytest.fail("the test wrote %s, this machine's own cache directory: a chunkfs it "
                    "ran as root had neither --cache-dir nor XDG_CACHE_HOME" % SYSTEM_CACHE_DIR,
                    pytrace=False)


# --------------------------------------------------------------------------
# session fixtures


@pytest.fixture(scope="session")
def chunkfs_bin():
    path = chunkfs_bin_path()
    if not os.access(path, os.X_OK):
        pytest.fail("chunkfs binary not found at %s: build it or set CHUNKFS_BIN" % path,
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The meson build directory of the binary the suite runs (CHUNKFS_BIN's
    parent) installed with `meson install --destdir` into a temporary
    directory: (bindir, mandir) there. Needs no FUSE: nothing is mounted."""
    build_dir = os.path.dirname(chunkfs_bin_path())
    if not os.path.isfile(os.path.join(build_dir, "build.ninja")):
        pytest.fail("%s is not a meson build directory (CHUNKFS_BIN's parent)" % build_dir,
                    pytrace=False)
    return meson_install(build_dir, str(tmp_path_factory.mktemp("destdir")))


@pytest.fixture(scope="session")
def sanitized():
    return SANITIZED


@pytest.fixture(scope="session")
def big_dataset(tmp_path_factory):
    """A generated LitData dataset: 4 chunks of about 64 MiB (256 MiB), once per session."""
    out = str(tmp_path_factory.mktemp("big-dataset"))
    litgen.write_dataset(out, chunks=4, chunk_bytes=64 * MiB)
    return out


def _sigterm_to_interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    # A runner's timeout (SIGTERM) ends the session like ^C: fixtures are torn
    # down, so mounts are unmounted and servers stopped.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def pytest_collection_modifyitems(config, items):
    """Skip, with the reason, every test that mounts when this machine cannot."""
    reason = fuse_unavailable()
    if reason is None:
        return
    skip = pytest.mark.skip(reason="cannot mount chunkfs here: " + reason)
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in MOUNTING_FIXTURES):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _watchdog(request):
    marker = request.node.get_closest_marker("budget")
    budget = scaled(marker.args[0] if marker else DEFAULT_BUDGET)
    dog = Watchdog(budget)
    timer = threading.Timer(budget, dog.fire)
    timer.daemon = True
    timer.start()
    try:
        yield dog
    finally:
        timer.cancel()
    if dog.fired:
        pytest.fail("test ran past its time budget of %d s: its FUSE connections were "
                    "aborted and its chunkfs daemons killed (PIDs %s)" % (budget, dog.pids), pytrace=False)


# --------------------------------------------------------------------------
# nginx


@pytest.fixture
def nginx(tmp_path):
    """Factory: nginx(root_dir, limit_rate=None, extra_conf="", ssl=None) -> NginxServer.
    extra_conf is inserted inside the server {} block; ssl=(certificate, key)
    serves HTTPS instead of HTTP. Stopped at teardown."""
    servers = []

    def start(root_dir, limit_rate=None, extra_conf="", ssl=None):
        prefix = tmp_path / ("nginx%d" % len(servers))
        prefix.mkdir()
        server = NginxServer(root_dir, prefix, limit_rate=limit_rate, extra_conf=extra_conf,
                             ssl=ssl)
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture(scope="module")
def module_nginx(tmp_path_factory):
    """Factory like nginx, for module-scoped fixtures: module_nginx(root_dir,
    limit_rate=None, extra_conf="", ssl=None) -> NginxServer, stopped at the
    end of the module."""
    servers = []

    def start(root_dir, limit_rate=None, extra_conf="", ssl=None):
        server = NginxServer(root_dir, tmp_path_factory.mktemp("nginx"), limit_rate=limit_rate,
                             extra_conf=extra_conf, ssl=ssl)
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def memcached():
    """Factory: memcached(n=1, memory_mb=64) -> [MemcachedServer], n memcached
    servers on free ports of 127.0.0.1, each accepting; every one stopped by
    its PID at teardown. Tests list it before `mount`, so mounts go first."""
    servers = []

    def start(n=1, memory_mb=64):
        started = []
        for _ in range(n):
            server = MemcachedServer(memory_mb)
            servers.append(server)
            started.append(server.start())
        return started

    yield start
    # memcached takes about a second to exit on SIGTERM: signal them all, then wait for each.
    for server in servers:
        server.signal_stop()
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def serve():
    """Factory: serve(root, **FaultServer options) -> a started FaultServer
    (faultserver.py), stopped at teardown. Tests list it before `mount`, so
    the mount is torn down first."""
    servers = []

    def start(root, **kw):
        srv = FaultServer(root, **kw).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture
def small(tmp_path):
    """A copy of the litdata-mixed fixture (10 chunks of about 25 KB) that a
    test may change."""
    root = tmp_path / "mixed"
    shutil.copytree(data_dir("litdata-mixed"), root)
    return str(root)


# --------------------------------------------------------------------------
# chunkfs mounts


def _log_allow_of(request):
    """The regular expressions of every log_allow marker of the requesting test."""
    return [pattern for mark in request.node.iter_markers("log_allow") for pattern in mark.args]


@pytest.fixture
def memory_cgroup():
    """Factory: memory_cgroup(limit) -> cfsutil.MemoryCgroup with that memory limit in
    bytes, a child of this process's group; skips the test where none can be made.
    Request it before mount, so that the mounts in it are stopped before it is removed."""
    made = []

    def create(limit):
        group = MemoryCgroup.create(limit)
        if group is None:
            pytest.skip("no memory control group can be made here (needs root and the memory "
                        "controller: cgroup v1, or v2 delegated to this group's children)")
        made.append(group)
        return group
    yield create
    problems = []
    for group in made:
        try:
            group.remove()
        except (AssertionError, OSError) as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


@pytest.fixture
def mount(request, chunkfs_bin, tmp_path, _watchdog):
    """Factory: mount(url, *args, foreground=True, expect_ok=True, env=None,
    log_allow=(), mountpoint=None) -> Mount.

    env=None runs chunkfs with chunkfs_env() (this environment without the CA
    bundle variables); a given env is used as it is (build it with chunkfs_env).

    Creates a fresh mountpoint (or uses mountpoint, an existing empty
    directory: to mount again where a mount was, or where another uid can
    reach), runs chunkfs and waits for index.json to be visible (foreground)
    or checks it right after the command returned 0 (daemon). With
    expect_ok=False a failure to mount is not an error: the Mount has
    ok=False and returncode set (the log tells why).
    Teardown unmounts, waits for the process and fails the test on a non-zero
    exit (foreground, expect_ok), a sanitizer report in the log, or a warning or
    error line that neither the test's log_allow markers nor this mount's
    log_allow (regular expressions, searched in the message) expect.

    Unless args give --cache-dir or --disk-cache, each mount spills to a
    directory of its own (tmp_path/cacheN), so that no two share a cache."""
    mounts = []
    test_allow = _log_allow_of(request)

    def start(url, *args, foreground=True, expect_ok=True, env=None, log_allow=(),
              mountpoint=None):
        n = len(mounts)
        path = mountpoint or str(tmp_path / ("mnt%d" % n))
        if mountpoint is None:
            os.mkdir(path)
        if not any(str(a).startswith(("--cache-dir", "--disk-cache")) for a in args):
            args = ("--cache-dir=%s" % (tmp_path / ("cache%d" % n)),) + args
        log = str(tmp_path / ("chunkfs%d.log" % n))
        san_dir = str(tmp_path / ("sanitizer%d" % n))
        os.mkdir(san_dir)
        argv = [chunkfs_bin] + (["-f"] if foreground else []) + [str(a) for a in args] + [url, path]
        base_env = chunkfs_env() if env is None else dict(env)
        run_env = base_env if foreground else sanitizer_env(base_env, san_dir)
        m = Mount(argv, path, log, foreground, expect_ok, san_dir,
                  log_allow=test_allow + list(log_allow))
        mounts.append(m)
        with open(log, "wb") as logf:
            m.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                      env=run_env, close_fds=True)
        if foreground:
            m.pid = m.proc.pid
            _watchdog.watch(m)
            wait_foreground_ready(m, scaled(20))
        else:
            finish_daemon_start(m, _watchdog)
        return m

    yield start

    tear_down_mounts(mounts)
