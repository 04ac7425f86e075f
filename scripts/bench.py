#!/usr/bin/env python3
"""chunkfs benchmark measurements; run through scripts/bench, which installs, builds,
generates the data, starts nginx and passes the arguments below.

Measurements (each cold: a fresh mount and `sync; echo 3 > /proc/sys/vm/drop_caches`
before every timed run; runs interleaved round-robin, median of --reps):
  sequential  the whole chunk: curl -o /dev/null (direct) vs cat MNT/chunk > /dev/null
              through chunkfs, rclone mount and httpdirfs.
  random      --items whole items picked with --seed from the chunk's offset table:
              HTTP Range GETs over one keep-alive connection (direct) vs os.pread of each
              item through each mount, sequentially in one process.
  epoch2      (--no-epoch2 skips it) "warm second epoch": the dataset's chunk files read
              twice in full with cat through one mount whose memory cap is smaller than
              the data (chunkfs --mem-cache=64M plus a spill tier, rclone mount
              --vfs-cache-mode full), each with its disk cache in a fresh directory of the
              work directory; the page cache is dropped before each epoch and the SECOND
              epoch is timed, so it is read back from the readers' cache files on the local
              disk. The reference is cat of the same files in the data directory after
              dropping the page cache (a local disk read), read once untimed before, as
              the mounts' cache files were just written (a VM's host caches both). Both
              layouts are also read by 8 threads with 1 MiB preads (the local files;
              chunkfs's block files, straight from its cache directory): what the disk
              gives each, without FUSE. curl (no cache) is there for context. nginx's log
              and chunkfs's stats show what the second epoch fetched. --epoch2-reps runs
              (default 5).
  warm        (extra, --no-warm skips it) sequential again with the server's page cache
              warm, so the disk is out of the way: the network and FUSE path only.
Every read is checked against the source (sizes always; sha256 of every random item;
sha256 of the whole chunk once per reader, outside the timed part; for the second epoch,
sha256 of every chunk file once per reader, after the timed part).

The timed reads run in child processes with timeouts, so that a hung mount cannot hang
the bench; every mount and process started here is unmounted/stopped by PID on exit.
"""
import argparse
import datetime
import glob
import hashlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time

MB = 1e6
READERS = ("direct", "chunkfs", "rclone", "httpdirfs")
LABELS = {
    "local": "local disk",
    "direct": "direct",
    "chunkfs": "chunkfs",
    "rclone": "rclone mount",
    "httpdirfs": "httpdirfs",
}
MOUNT_TIMEOUT = 30.0
# A timed read still running after its cap is stopped and its rate taken over what it read
# so far (marked "partial"): slow readers cost at most the cap, not minutes.
SEQ_CAP = 40.0
RANDOM_CAP = 60.0
HANG_GRACE = 60.0   # a worker past its cap by this much is killed: a hang, not a slow reader
VERIFY_TIMEOUT = 120.0
# chunkfs in the cold workloads: no spill tier, so that every run fetches over HTTP (with the
# default spill tier, in ~/.cache/chunkfs, a run would read back what the previous one left).
CHUNKFS_ARGS = ["--mem-cache=256M", "--disk-cache=0"]
SPILL_SETTLE = 1.0      # the spill writes count as settled after this long without a new one
SPILL_SETTLE_MAX = 20.0
RAW_READERS = 8         # threads of the raw reads of a layout (chunkfs reads back with 8)
RAW_PIECE = 1 << 20     # bytes per pread of the raw reads (chunkfs's block size)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Unavailable(Exception):
    """A reader could not be measured (mount failed, timed out, wrong bytes...)."""


# ---------------------------------------------------------------- worker (child process)

def worker(argv):
    """`bench.py _worker pread PATH PLAN` or `_worker http HOST PORT PATH PLAN`: time the
    reads of PLAN (a JSON list of [offset, length]) and print JSON with the elapsed time,
    the bytes read and the sha256 of each range (hashed after the clock stops)."""
    kind, cap = argv[0], float(argv[1])
    if kind == "pread":
        path, plan_file = argv[2], argv[3]
    else:
        host, port, path, plan_file = argv[2], int(argv[3]), argv[4], argv[5]
    with open(plan_file) as f:
        plan = json.load(f)
    out = []
    t0 = time.perf_counter()
    deadline = t0 + cap

    def todo():
        for item in plan:
            if time.perf_counter() >= deadline:
                return
            yield item
    if kind == "pread":
        fd = os.open(path, os.O_RDONLY)
        try:
            for off, n in todo():
                data = os.pread(fd, n, off)
                while len(data) < n:  # FUSE answers whole reads; be tolerant anyway
                    more = os.pread(fd, n - len(data), off + len(data))
                    if not more:
                        break
                    data += more
                out.append(data)
        finally:
            os.close(fd)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        for off, n in todo():
            conn.request("GET", path, headers={"Range": "bytes=%d-%d" % (off, off + n - 1)})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 206:
                raise SystemExit("HTTP %d for range %d+%d" % (resp.status, off, n))
            out.append(data)
        conn.close()
    elapsed = time.perf_counter() - t0
    json.dump({"elapsed": elapsed, "done": len(out), "bytes": sum(len(d) for d in out),
               "sha256": [hashlib.sha256(d).hexdigest() for d in out]}, sys.stdout)


# ---------------------------------------------------------------- system helpers

def mountinfo_points():
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            p = line.split(" ")[4]
            # mountinfo escapes space, tab, newline and backslash as \ooo
            points.add(p.encode().decode("unicode_escape").encode("latin-1").decode())
    return points


def is_mounted(path):
    return path in mountinfo_points()


def wait_for(cond, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids_with_arg(arg, name):
    """PIDs whose argv holds arg and whose argv[0] basename is name."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == name.encode() and arg.encode() in argv:
            found.append(int(entry))
    return found


def stop_pid(pid, grace=10.0):
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if wait_for(lambda: not pid_alive(pid), grace):
        return
    log("PID %d ignored SIGTERM for %.0fs; SIGKILL" % (pid, grace))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_for(lambda: not pid_alive(pid), 10)


def unmount(path):
    if not is_mounted(path):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = subprocess.run(["fusermount3", "-u", path], stderr=subprocess.DEVNULL)
        if r.returncode == 0 or not is_mounted(path):
            return
        time.sleep(0.2)
    log("%s busy; lazy unmount" % path)
    subprocess.run(["fusermount3", "-uz", path])


def wait_exit(proc, timeout):
    """time.perf_counter() when proc exits, or None if it still runs after timeout seconds.
    Popen.wait(timeout) polls with sleeps of up to 50 ms, which would add up to 50 ms to a
    read of 0.2 s. A thread waits instead, with WNOWAIT: the child is not reaped there, so
    its /proc entry stays readable and Popen reaps it as usual."""
    ended = []

    def wait():
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            ended.append(time.perf_counter())
        except ChildProcessError:
            pass  # reaped by Popen after the timeout

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(timeout)
    return ended[0] if ended else None


def parallel_mbps(jobs):
    """Run jobs (callables that read and return a byte count) in order on RAW_READERS
    threads; MB/s over them all."""
    todo = list(reversed(jobs))
    done = [0]
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                if not todo:
                    return
                job = todo.pop()
            n = job()
            with lock:
                done[0] += n

    threads = [threading.Thread(target=run) for _ in range(RAW_READERS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.perf_counter() - t0) / MB


def pread_all(fd, off, length):
    """Read [off, off + length) of fd in RAW_PIECE preads (to its end when length is None)."""
    buf = bytearray(RAW_PIECE)
    n = 0
    while length is None or n < length:
        got = os.preadv(fd, [buf], off + n)
        if not got:
            break
        n += got
    return n if length is None else min(n, length)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        return ""
    return " / ".join(lines[-n:])


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def cmd_version(argv, want=""):
    """First line of argv's output (stdout, then stderr) that contains want."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "(not installed)"
    lines = [l.strip() for l in (r.stdout + "\n" + r.stderr).splitlines() if l.strip()]
    lines = [l for l in lines if want.lower() in l.lower()]
    return lines[0] if lines else "?"


def parse_size(text):
    """Bytes of a chunkfs SIZE (a number, with K, M, G or T: powers of 1024), or None."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper()
    unit = t[-1:] if t[-1:] in units else ""
    try:
        return int(t[:len(t) - len(unit)]) * units[unit]
    except ValueError:
        return None


def du(path):
    """Bytes that the files under path take on disk (as du counts them)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total


def find_number(tree, keys):
    """First numeric value under any of keys, searching nested dicts."""
    if isinstance(tree, dict):
        for k in keys:
            if isinstance(tree.get(k), (int, float)) and not isinstance(tree.get(k), bool):
                return tree[k]
        for v in tree.values():
            n = find_number(v, keys)
            if n is not None:
                return n
    return None


# ---------------------------------------------------------------- mounts

class Mount:
    """One fresh mount of one reader; a context manager that always cleans up."""

    def __init__(self, bench, reader, tag, args=None):
        self.bench, self.reader = bench, reader
        self.args = args   # the reader's options, instead of the cold workloads' ones
        self.point = os.path.join(bench.work, "mnt-%s-%s" % (reader, tag))
        self.log = os.path.join(bench.work, "%s-%s.log" % (reader, tag))
        self.proc = None   # rclone / httpdirfs, started here in the foreground
        self.pid = None    # chunkfs daemon

    def __enter__(self):
        os.makedirs(self.point, exist_ok=True)
        self.bench.active.append(self)
        try:
            getattr(self, "_mount_" + self.reader)()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def file(self, name):
        return os.path.join(self.point, name)

    def _ready(self, what):
        name = self.bench.chunk
        size = self.bench.chunk_size

        def ok():
            if self.proc is not None and self.proc.poll() is not None:
                return True
            if not is_mounted(self.point):
                return False
            try:
                return os.stat(self.file(name)).st_size == size
            except OSError:
                return False
        if not wait_for(ok, MOUNT_TIMEOUT, 0.1):
            raise Unavailable("%s: no %s of %d bytes in the mount after %.0fs (%s)"
                              % (what, name, size, MOUNT_TIMEOUT, tail(self.log) or "no log"))
        if self.proc is not None and self.proc.poll() is not None:
            raise Unavailable("%s exited with %d: %s" % (what, self.proc.returncode, tail(self.log)))

    def _mount_chunkfs(self):
        opts = CHUNKFS_ARGS if self.args is None else self.args
        argv = [self.bench.bin] + opts + [self.bench.url, self.point]
        with open(self.log, "ab") as logf:
            try:
                # Output to a file, never a pipe: the daemon may keep it open.
                r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                   timeout=MOUNT_TIMEOUT * 2)
            except subprocess.TimeoutExpired:
                raise Unavailable("chunkfs did not return within %.0fs" % (MOUNT_TIMEOUT * 2))
            except OSError as e:
                raise Unavailable("cannot run %s: %s" % (argv[0], e))
        pids = pids_with_arg(self.point, "chunkfs")
        self.pid = pids[0] if pids else None
        if r.returncode != 0:
            raise Unavailable("chunkfs exited with %d: %s" % (r.returncode, tail(self.log)))
        if not is_mounted(self.point):
            raise Unavailable("chunkfs exited 0 but %s is not mounted" % self.point)
        if self.pid is None:
            raise Unavailable("mounted, but no chunkfs process has %s in its argv" % self.point)
        self._ready("chunkfs")

    def _spawn(self, argv):
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        except OSError as e:
            raise Unavailable("cannot run %s: %s" % (argv[0], e))
        finally:
            logf.close()

    def _mount_rclone(self):
        w = self.bench.work
        opts = ["--cache-dir", os.path.join(w, "rclone-cache")] if self.args is None else self.args
        self._spawn(["rclone", "mount", ":http:", self.point, "--http-url", self.bench.url,
                     "--read-only", "--config", os.path.join(w, "rclone.conf")] + opts)
        self._ready("rclone")

    def _mount_httpdirfs(self):
        self._spawn(["httpdirfs", "-f", "--no-range-check", self.bench.url, self.point])
        self._ready("httpdirfs")

    def stats(self):
        try:
            with open(self.file(".chunkfs/stats")) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            log("cannot read chunkfs stats: %s" % e)
            return None

    def close(self):
        if self in self.bench.active:
            self.bench.active.remove(self)
        unmount(self.point)
        if self.proc is not None:
            if not wait_for(lambda: self.proc.poll() is not None, 15, 0.05):
                log("%s still running after unmount; stopping PID %d" % (self.reader, self.proc.pid))
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        pids = set(pids_with_arg(self.point, "chunkfs"))
        if self.pid is not None:
            pids.add(self.pid)
        for pid in pids:
            if not wait_for(lambda: not pid_alive(pid), 30, 0.05):
                log("chunkfs daemon %d still running 30s after unmount; stopping it" % pid)
                self.bench.notes.add("chunkfs daemon did not exit after unmount")
                stop_pid(pid)
        if is_mounted(self.point):
            unmount(self.point)


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, a):
        self.a = a
        self.url = a.url if a.url.endswith("/") else a.url + "/"
        self.work, self.bin, self.data = a.work, a.bin, a.data
        self.active = []
        self.notes = set()
        self.start = time.monotonic()
        self.load_start = loadavg()
        with open(os.path.join(a.data, "index.json")) as f:
            index = json.load(f)
        c = index["chunks"][0]
        self.chunk, self.chunk_size = c["filename"], c["chunk_bytes"]
        # The whole dataset's bytes, for the second-epoch workload: every chunk file.
        self.chunks = [(x["filename"], x["chunk_bytes"]) for x in index["chunks"]]
        self.data_size = sum(n for _, n in self.chunks)
        for name, n in self.chunks:
            if os.path.getsize(os.path.join(a.data, name)) != n:
                raise SystemExit("%s: size differs from index.json" % name)
        self.src_shas = {}
        self.src = os.path.join(a.data, self.chunk)
        if os.path.getsize(self.src) != self.chunk_size:
            raise SystemExit("%s: size differs from index.json" % self.src)
        with open(self.src, "rb") as f:
            (count,) = struct.unpack("<I", f.read(4))
            offsets = struct.unpack("<%dI" % (count + 1), f.read(4 * (count + 1)))
        self.item_count = count
        picks = random.Random(a.seed).sample(range(count), min(a.items, count))
        self.plan = [(offsets[i], offsets[i + 1] - offsets[i]) for i in picks]
        self.plan_bytes = sum(n for _, n in self.plan)
        self.plan_file = os.path.join(self.work, "plan.json")
        with open(self.plan_file, "w") as f:
            json.dump(self.plan, f)
        with open(self.src, "rb") as f:
            self.plan_sha = []
            for off, n in self.plan:
                f.seek(off)
                self.plan_sha.append(hashlib.sha256(f.read(n)).hexdigest())
        self.sizes = (min(n for _, n in self.plan), max(n for _, n in self.plan))
        self.cold = True
        self.warm = False
        self.access_pos = 0

    def time_left(self):
        return self.a.budget - (time.monotonic() - self.start)

    def source_sha(self, name=None):
        name = name or self.chunk
        if name not in self.src_shas:
            h = hashlib.sha256()
            with open(os.path.join(self.data, name), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self.src_shas[name] = h.hexdigest()
        return self.src_shas[name]

    def requests_mark(self):
        try:
            self.access_pos = os.path.getsize(self.a.access_log)
        except OSError:
            self.access_pos = None

    def requests_since_mark(self):
        """HTTP requests nginx logged since requests_mark()."""
        got = self.http_since_mark()
        return None if got is None else got[0]

    def http_since_mark(self):
        """(requests, body bytes sent) nginx logged since requests_mark(), or None. The log
        is nginx's default "combined" format: ... "REQUEST" STATUS BYTES "REFERER" "AGENT"."""
        if self.access_pos is None:
            return None
        try:
            with open(self.a.access_log, "rb") as f:
                f.seek(self.access_pos)
                lines = f.read().splitlines()
        except OSError:
            return None
        sent = 0
        for line in lines:
            try:
                sent += int(line.split(b'"')[2].split()[1])
            except (IndexError, ValueError):
                pass
        return len(lines), sent

    def cold_start(self):
        """Before a timed part: drop the page cache (cold runs), or make sure the source
        chunk is in it (warm runs: what is left is the network and FUSE path)."""
        if self.warm:
            with open(self.src, "rb") as f:
                while f.read(8 << 20):
                    pass
        elif not drop_caches():
            self.cold = False
        self.requests_mark()

    # -- sequential

    def seq_run(self, reader, rep):
        """Returns a dict with mbps (and stats for chunkfs)."""
        if reader == "direct":
            self.cold_start()
            t0 = time.perf_counter()
            try:
                r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "%d" % SEQ_CAP,
                                    "-w", "%{http_code} %{size_download}", self.url + self.chunk],
                                   capture_output=True, text=True, timeout=SEQ_CAP + HANG_GRACE)
            except subprocess.TimeoutExpired:
                raise Unavailable("curl hung (no exit %.0fs after its --max-time)" % HANG_GRACE)
            elapsed = time.perf_counter() - t0
            code, size = (r.stdout.split() + ["?", "0"])[:2]
            size = int(size)
            partial = r.returncode == 28 and code == "200" and size > 0
            if not partial and (r.returncode != 0 or code != "200" or size != self.chunk_size):
                raise Unavailable("curl: exit %d, HTTP %s, %d bytes: %s"
                                  % (r.returncode, code, size, r.stderr.strip()))
            return {"mbps": size / elapsed / MB, "requests": self.requests_since_mark(),
                    "partial": size if partial else None}
        with Mount(self, reader, "%s%d" % ("warm" if self.warm else "seq", rep)) as m:
            path = m.file(self.chunk)
            self.cold_start()
            size, elapsed, partial = self.timed_cat(path)
            res = {"mbps": size / elapsed / MB, "requests": self.requests_since_mark(),
                   "partial": size if partial else None}
            if reader == "chunkfs":
                res["stats"] = m.stats()
            if rep == 0 and not partial:
                self.verify_whole(m, reader)
            return res

    def timed_cat(self, path, size=None):
        """cat path > /dev/null (path: one file or a list of them, size bytes in all, by
        default the chunk's); returns (bytes, seconds, partial). After SEQ_CAP seconds cat
        is stopped and the bytes it read so far (/proc/PID/io rchar) are counted."""
        paths = [path] if isinstance(path, str) else list(path)
        errf = os.path.join(self.work, "cat.err")
        with open(errf, "wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(["cat"] + paths, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err)
        end = wait_exit(proc, SEQ_CAP)
        elapsed = (end if end is not None else time.perf_counter()) - t0
        if end is None:
            done = 0
            try:
                with open("/proc/%d/io" % proc.pid) as f:
                    done = int(dict(l.split(": ") for l in f.read().splitlines())["rchar"])
            except (OSError, KeyError, ValueError):
                pass
            proc.kill()
            try:
                proc.wait(HANG_GRACE)
            except subprocess.TimeoutExpired:
                raise Unavailable("cat is stuck: SIGKILL did not end it within %.0fs" % HANG_GRACE)
            if done <= 0:
                raise Unavailable("cat read nothing in %.0fs" % SEQ_CAP)
            return done, elapsed, True
        if proc.wait() != 0:  # it has exited: this only reaps it
            raise Unavailable("cat failed: %s" % tail(errf, 1))
        return self.chunk_size if size is None else size, elapsed, False

    def verify_whole(self, m, reader):
        """sha256 of the whole chunk through the mount (untimed; mostly from page cache)."""
        try:
            r = subprocess.run(["sha256sum", m.file(self.chunk)], capture_output=True, text=True,
                               timeout=VERIFY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.verified[reader] = "not verified (sha256sum timed out)"
            return
        got = r.stdout.split()[0] if r.returncode == 0 and r.stdout else None
        if got != self.source_sha():
            raise Unavailable("WRONG BYTES: sha256 of %s through %s is %s, source %s (%s)"
                              % (self.chunk, reader, got, self.source_sha(), r.stderr.strip()))
        self.verified[reader] = "sha256 OK"

    # -- warm second epoch

    def epoch_caps(self):
        """(memory cap of chunkfs, disk cap of chunkfs and rclone) as option values."""
        disk_mib = max(1024, 2 * self.data_size >> 20)
        return self.a.epoch2_mem, "%dM" % disk_mib

    def curl_files(self, urls):
        """curl every URL to /dev/null in one process; returns (bytes, seconds, partial)."""
        argv = ["curl", "-sS", "--max-time", "%d" % SEQ_CAP, "-w", "%{http_code} %{size_download}\n"]
        for u in urls:
            argv += ["-o", "/dev/null", u]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=SEQ_CAP + HANG_GRACE)
        except subprocess.TimeoutExpired:
            raise Unavailable("curl hung (no exit %.0fs after its --max-time)" % HANG_GRACE)
        elapsed = time.perf_counter() - t0
        got = [l.split() for l in r.stdout.splitlines() if l.strip()]
        size = sum(int(x[1]) for x in got if len(x) == 2 and x[1].isdigit())
        partial = r.returncode == 28 and size > 0
        if not partial and (r.returncode != 0 or size != self.data_size or
                            any(x[0] != "200" for x in got)):
            raise Unavailable("curl: exit %d, %s, %d bytes: %s"
                              % (r.returncode, " ".join(x[0] for x in got), size, r.stderr.strip()))
        return size, elapsed, partial

    def wait_spills_settle(self, m):
        """Wait until chunkfs's spill writes stop (the spills counter holds still for
        SPILL_SETTLE seconds), so that the writes of the first epoch are not in the second's
        time; returns the stats then."""
        last, still_since = None, time.monotonic()
        deadline = still_since + SPILL_SETTLE_MAX
        while True:
            st = m.stats() or {}
            n = (st.get("spills"), st.get("spill_errors"))
            now = time.monotonic()
            if n != last:
                last, still_since = n, now
            elif now - still_since >= SPILL_SETTLE or now >= deadline:
                return st
            time.sleep(0.1)

    def verify_files(self, m, key):
        """sha256 of every chunk file through the mount (untimed, after the timed epoch)."""
        for name, _ in self.chunks:
            try:
                r = subprocess.run(["sha256sum", m.file(name)], capture_output=True, text=True,
                                   timeout=VERIFY_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.verified[key] = "not verified (sha256sum timed out)"
                return
            got = r.stdout.split()[0] if r.returncode == 0 and r.stdout else None
            if got != self.source_sha(name):
                raise Unavailable("WRONG BYTES: sha256 of %s through %s is %s, source %s (%s)"
                                  % (name, m.reader, got, self.source_sha(name), r.stderr.strip()))
        self.verified[key] = "sha256 OK"

    def raw_local_mbps(self, paths):
        """The local files read after drop_caches by RAW_READERS threads, RAW_PIECE bytes
        a pread, in order; MB/s."""
        fds = [os.open(p, os.O_RDONLY) for p in paths]
        try:
            jobs = [lambda fd=fd, off=off: pread_all(fd, off, RAW_PIECE)
                    for fd in fds for off in range(0, os.fstat(fd).st_size, RAW_PIECE)]
            self.cold_start()
            return parallel_mbps(jobs)
        finally:
            for fd in fds:
                os.close(fd)

    def raw_blocks_mbps(self, cache):
        """chunkfs's block files read straight from its cache directory after drop_caches,
        as raw_local_mbps reads the local files (each file opened by the thread that reads
        it, as chunkfs does); MB/s of the files' bytes, or None when there are none."""
        paths = sorted(glob.glob(os.path.join(cache, "*", "blocks", "*")),
                       key=lambda p: (p.rsplit("-", 1)[0], int(p.rsplit("-", 1)[1])))
        if not paths:
            return None

        def read_file(path):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return 0  # evicted since the listing: not counted
            try:
                return pread_all(fd, 0, None)
            finally:
                os.close(fd)
        self.cold_start()
        return parallel_mbps([lambda p=p: read_file(p) for p in paths])

    def epoch_run(self, reader, rep):
        """The dataset read twice; returns the second epoch's rate (mbps), the first's
        (mbps1), what nginx served during the second, and the readers' cache figures."""
        files = [n for n, _ in self.chunks]
        if reader == "local":
            local = [os.path.join(self.data, n) for n in files]
            # Read once untimed: a VM's host caches what its guest just wrote or read, and
            # the mounts read back files they have just written.
            self.timed_cat(local, self.data_size)
            self.cold_start()
            size, elapsed, partial = self.timed_cat(local, self.data_size)
            return {"mbps": size / elapsed / MB, "partial": size if partial else None,
                    "raw_mbps": self.raw_local_mbps(local)}
        if reader == "direct":
            self.cold_start()
            size, elapsed, partial = self.curl_files([self.url + n for n in files])
            http = self.http_since_mark()
            return {"mbps": size / elapsed / MB, "http": http, "partial": size if partial else None}
        mem, disk = self.epoch_caps()
        cache = os.path.join(self.work, "%s-epoch-cache-%d" % (reader, rep))
        if reader == "chunkfs":
            args = ["--mem-cache=" + mem, "--cache-dir=" + cache, "--disk-cache=" + disk]
        else:
            # Its own cache dir (not the cold runs' one), so that nothing is shared across runs.
            args = ["--vfs-cache-mode", "full", "--vfs-cache-max-size", disk, "--cache-dir", cache]
        res = {}
        try:
            with Mount(self, reader, "epoch%d" % rep, args) as m:
                paths = [m.file(n) for n in files]
                self.cold_start()
                size, e1, partial = self.timed_cat(paths, self.data_size)
                if partial:
                    raise Unavailable("the first epoch did not end within %.0fs (%.0f MB read)"
                                      % (SEQ_CAP, size / MB))
                res["mbps1"] = size / e1 / MB
                if reader == "chunkfs":
                    before = self.wait_spills_settle(m)
                else:
                    before = None
                    time.sleep(SPILL_SETTLE)  # rclone writes its cache file as it reads
                res["cache_bytes"] = du(cache)
                self.cold_start()
                size, e2, partial = self.timed_cat(paths, self.data_size)
                res["http"] = self.http_since_mark()
                res["mbps"] = size / e2 / MB
                res["partial"] = size if partial else None
                if reader == "chunkfs":
                    res["raw_mbps"] = self.raw_blocks_mbps(cache)
                    after = m.stats()
                    res["stats"] = after
                    if before and after:
                        res["delta"] = {k: after.get(k, 0) - before.get(k, 0) for k in (
                            "bytes_fetched", "disk_hits", "disk_misses", "spills", "requests",
                            "mem_hits", "mem_misses", "bytes_served", "checksum_failures",
                            "validations")}
                if rep == 0 and not partial:
                    self.verify_files(m, reader + "-epoch")
        finally:
            # The mount is gone (its daemon stopped) before its cache directory is removed.
            shutil.rmtree(cache, ignore_errors=True)
        if reader == "chunkfs" and res.get("delta"):
            d = res["delta"]
            log("  chunkfs 2nd epoch: bytes_fetched +%d, disk_hits +%d, disk_misses +%d, "
                "spills +%d; 1st epoch %.1f MB/s"
                % (d["bytes_fetched"], d["disk_hits"], d["disk_misses"], d["spills"], res["mbps1"]))
        elif reader == "rclone":
            log("  rclone 2nd epoch: %s HTTP requests, %s bytes from nginx; cache %.0f MB; 1st epoch %.1f MB/s"
                % (res["http"][0] if res.get("http") else "?", res["http"][1] if res.get("http") else "?",
                   res["cache_bytes"] / MB, res["mbps1"]))
        return res

    # -- random

    def random_run(self, reader, rep):
        if reader == "direct":
            host, port = self.url.split("/")[2].rsplit(":", 1)
            path = "/" + self.url.split("/", 3)[3] + self.chunk
            self.cold_start()
            res = self.run_worker(["http", "%g" % RANDOM_CAP, host, port, path, self.plan_file])
            res["requests"] = self.requests_since_mark()
            return res
        with Mount(self, reader, "rnd%d" % rep) as m:
            self.cold_start()
            res = self.run_worker(["pread", "%g" % RANDOM_CAP, m.file(self.chunk), self.plan_file])
            res["requests"] = self.requests_since_mark()
            if reader == "chunkfs":
                res["stats"] = m.stats()
            return res

    def run_worker(self, args):
        try:
            r = subprocess.run([sys.executable, os.path.abspath(__file__), "_worker"] + args,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=RANDOM_CAP + HANG_GRACE)
        except subprocess.TimeoutExpired:
            raise Unavailable("a read hung: the reader did not stop within %.0fs of its %.0fs cap"
                              % (HANG_GRACE, RANDOM_CAP))
        if r.returncode != 0:
            err = r.stderr.strip().splitlines()
            raise Unavailable("reads failed: %s" % (err[-1] if err else "exit %d" % r.returncode))
        out = json.loads(r.stdout)
        done = out["done"]
        want = sum(n for _, n in self.plan[:done])
        bad = [i for i, (a, b) in enumerate(zip(out["sha256"], self.plan_sha)) if a != b]
        if out["bytes"] != want or bad:
            raise Unavailable("WRONG BYTES: %d of %d items differ from the source (%d bytes read, %d expected)"
                              % (len(bad), done, out["bytes"], want))
        if done == 0:
            raise Unavailable("not one item read in %.0fs" % RANDOM_CAP)
        e = out["elapsed"]
        return {"items": done / e, "mbps": want / e / MB,
                "partial": done if done < len(self.plan) else None}

    # -- driver

    def run(self):
        readers = [r for r in self.a.tools.split(",") if r]
        for r in readers:
            if r not in READERS:
                raise SystemExit("unknown reader %r (known: %s)" % (r, ",".join(READERS)))
        if "direct" not in readers:
            readers.insert(0, "direct")
        self.verified = {}
        plan = [("seq", self.seq_run, readers), ("rnd", self.random_run, readers)]
        if self.a.epoch2:
            mem = parse_size(self.a.epoch2_mem)
            if mem is None or mem >= self.data_size:
                raise SystemExit("--epoch2-mem %s: must be a size smaller than the data (%d bytes)"
                                 % (self.a.epoch2_mem, self.data_size))
            # httpdirfs is left out: at ~1.3 MB/s one epoch would take minutes.
            plan.append(("epoch2", self.epoch_run,
                         ["local"] + [r for r in readers if r in ("direct", "chunkfs", "rclone")]))
        if self.a.warm:
            # httpdirfs is left out: at ~1 request per 100 ms it would only hit the cap again.
            plan.append(("warm", self.seq_run, [r for r in readers if r != "httpdirfs"]))
        only = [w for w in self.a.workloads.split(",") if w]
        for w in only:
            if w not in ("seq", "rnd", "epoch2", "warm"):
                raise SystemExit("unknown workload %r (known: seq,rnd,epoch2,warm)" % w)
        if only:
            plan = [x for x in plan if x[0] in only]
        results = {k: {r: [] for r in rs} for k, _, rs in plan}
        failed = {k: {} for k, _, _ in plan}
        short = self.short = {k: {} for k, _, _ in plan}
        names = {"seq": "sequential", "rnd": "random", "warm": "sequential (server cache warm)",
                 "epoch2": "second epoch"}
        for kind, fn, kind_readers in plan:
            self.warm = kind == "warm"
            reps = self.a.epoch2_reps if kind == "epoch2" else self.a.reps
            for rep in range(reps):
                for r in kind_readers:
                    if r in failed[kind]:
                        continue
                    if self.time_left() <= 0:
                        if results[kind][r]:
                            short[kind][r] = "%d of %d runs (time budget of %ds used up)" % (
                                len(results[kind][r]), reps, self.a.budget)
                        else:
                            failed[kind][r] = "not run: time budget of %ds used up" % self.a.budget
                        continue
                    what = "%s %s run %d/%d" % (names[kind], r, rep + 1, reps)
                    try:
                        res = fn(r, rep)
                    except Unavailable as e:
                        log("%s: n/a: %s" % (what, e))
                        failed[kind][r] = str(e)
                        results[kind][r] = []
                        continue
                    results[kind][r].append(res)
                    part = " (partial: stopped at the cap)" if res.get("partial") else ""
                    if kind == "rnd":
                        log("%s: %.1f items/s, %.1f MB/s%s" % (what, res["items"], res["mbps"], part))
                    else:
                        log("%s: %.1f MB/s%s" % (what, res["mbps"], part))
        self.warm = False
        return readers, results, failed

    # -- report

    def machine(self):
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
        distro = "?"
        try:
            with open("/etc/os-release") as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        distro = line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return cpu, mem, distro


def median_run(runs, key):
    """The run holding the median of key (the lower middle one for even counts)."""
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


def amplification(stats):
    if not stats:
        return None
    fetched = find_number(stats, ("bytes_fetched", "fetched_bytes"))
    served = find_number(stats, ("bytes_served", "served_bytes", "bytes_read"))
    if fetched is None or not served:
        return None
    return fetched / served


def num(x):
    """A rate with about three significant digits."""
    return "%.0f" % x if x >= 100 else "%.1f" % x if x >= 10 else "%.2f" % x


def ratio(x, d):
    return "n/a" if not d else "%.2fx" % (x / d) if x / d >= 0.1 else "%.3fx" % (x / d)


def report(b, readers, results, failed):
    a = b.a
    cpu, mem, distro = b.machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    L.append("## chunkfs benchmark (`scripts/bench`)")
    L.append("")
    L.append("- date: %s; machine: %d CPUs (%s), %.1f GiB RAM, %s, Linux %s"
             % (now, os.cpu_count(), cpu, mem, distro, platform.release()))
    L.append("- load average (1/5/15 min) at the start: %s, at the end: %s (other work on the machine "
             "makes the numbers noisy)" % (b.load_start, loadavg()))
    L.append("- server: %s on 127.0.0.1 (master + 2 workers, sendfile on, tcp_nopush off), over loopback"
             % cmd_version(["nginx", "-v"], "nginx").replace("nginx version: ", ""))
    L.append("- data: `%s`, %d bytes, %d items; random reads: %d items (%d..%d bytes, %.1f MB), seed %d; "
             "generated by `tests/litgen.py DIR %s`"
             % (b.chunk, b.chunk_size, b.item_count, len(b.plan), b.sizes[0], b.sizes[1],
                b.plan_bytes / MB, a.seed, a.litgen))
    L.append("- readers: chunkfs %s (`chunkfs --mem-cache=256M --disk-cache=0 URL MNT`, default readahead; "
             "no spill tier, so that no run reads back what another left: the second-epoch table "
             "below has its own settings); "
             "%s (`rclone mount :http: MNT --http-url URL --read-only`, defaults); "
             "%s (`httpdirfs -f --no-range-check URL MNT`, no cache)"
             % (cmd_version([b.bin, "--version"]), cmd_version(["rclone", "version"], "rclone"),
                cmd_version(["httpdirfs", "--version"], "httpdirfs")))
    L.append("- cold runs: %s; median of %d interleaved runs; MB = 10^6 bytes"
             % ("fresh mount, then `sync; echo 3 > /proc/sys/vm/drop_caches` before each" if b.cold
                else "fresh mount, but the page cache could NOT be dropped (not root)", a.reps))
    L.append("- runs longer than a cap (%.0f s sequential, %.0f s random) are stopped and their rate taken "
             "over what they read (\"partial\")" % (SEQ_CAP, RANDOM_CAP))
    L.append("")

    def direct_of(kind, key):
        runs = results.get(kind, {}).get("direct")
        return statistics.median(r[key] for r in runs) if runs else None

    cmds = {"direct": "`curl -o /dev/null URL`", "chunkfs": "`cat MNT/chunk > /dev/null`",
            "rclone": "`cat MNT/chunk > /dev/null`", "httpdirfs": "`cat MNT/chunk > /dev/null`"}

    def seq_table(kind):
        L.append("| reader | command | MB/s | ratio to direct | runs (MB/s) | HTTP requests | read amplification | notes |")
        L.append("| --- | --- | ---: | ---: | --- | ---: | ---: | --- |")
        d = direct_of(kind, "mbps")
        for r in results[kind]:
            runs = results[kind][r]
            if not runs:
                L.append("| %s | %s | n/a | | | | | %s |" % (LABELS[r], cmds[r], failed[kind].get(r, "not run")))
                continue
            med = statistics.median(x["mbps"] for x in runs)
            mr = median_run(runs, "mbps")
            amp = amplification(mr.get("stats")) if r == "chunkfs" else None
            notes = [b.verified.get(r, "not verified (partial read)")] if r != "direct" else ["HTTP 200, size checked"]
            parts = [x["partial"] for x in runs if x.get("partial")]
            if parts:
                notes.append("%d of %d runs stopped at the %.0f s cap; rate over the first %.0f MB read"
                             % (len(parts), len(runs), SEQ_CAP, statistics.median(parts) / MB))
            if r in b.short[kind]:
                notes.append(b.short[kind][r])
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |"
                     % (LABELS[r], cmds[r], num(med), ratio(med, d),
                        ", ".join(num(x["mbps"]) for x in runs),
                        "" if mr.get("requests") is None else mr["requests"],
                        "%.3f" % amp if amp is not None else ("" if r != "chunkfs" else "n/a"),
                        "; ".join(n for n in notes if n)))
        L.append("")

    if "seq" in results:
        L.append("### Cold sequential read of the whole chunk")
        L.append("")
        seq_table("seq")
    if "rnd" in results:
        rnd_table(b, results, failed, L, direct_of("rnd", "items"))
    if "epoch2" in results:
        epoch_table(b, results, failed, L)
    if "warm" in results:
        L.append("### Sequential read with the server's page cache warm (no disk: the network and FUSE path only)")
        L.append("")
        seq_table("warm")
    if "epoch2" in results:
        e_c, e_l = results["epoch2"].get("chunkfs"), results["epoch2"].get("local")
        if e_c and e_l:
            g = statistics.median(x["mbps"] for x in e_c) / statistics.median(x["mbps"] for x in e_l)
            fetched = [x["delta"]["bytes_fetched"] for x in e_c if x.get("delta")]
            L.append("Goal of the spill tier (chunkfs warm second epoch >= 0.8x a local disk read of the "
                     "same files): %s (%.2fx)%s."
                     % ("met" if g >= 0.8 else "NOT met", g,
                        "" if fetched and not any(fetched) else
                        "; but NOT answered from the spill tier alone: chunkfs fetched %s bytes in the "
                        "second epochs" % ", ".join(str(f) for f in fetched)))
        else:
            L.append("Goal of the spill tier (chunkfs warm second epoch >= 0.8x local read): not measured.")
    seq_c, seq_d = results.get("seq", {}).get("chunkfs"), results.get("seq", {}).get("direct")
    if seq_c and seq_d:
        goal = statistics.median(x["mbps"] for x in seq_c) / statistics.median(x["mbps"] for x in seq_d)
        extra = ""
        warm_c, warm_d = results.get("warm", {}).get("chunkfs"), results.get("warm", {}).get("direct")
        if warm_c and warm_d:
            extra = "; with the server's page cache warm: %.2fx" % (
                statistics.median(x["mbps"] for x in warm_c) / statistics.median(x["mbps"] for x in warm_d))
        L.append("Goal of issue 2 (chunkfs cold sequential >= 0.5x direct): %s (%.2fx%s)."
                 % ("met" if goal >= 0.5 else "NOT met", goal, extra))
    elif "seq" in results:
        L.append("Goal of issue 2 (chunkfs sequential >= 0.5x direct): not measured.")
    L.append("Read amplification = bytes_fetched / bytes_served from `MNT/.chunkfs/stats` after the run "
             "(the median run); HTTP requests = lines nginx logged during the timed part.")
    for n in sorted(b.notes):
        L.append("Note: %s." % n)
    return "\n".join(L) + "\n"


def rnd_table(b, results, failed, L, d):
    L.append("### Cold random whole-item reads")
    L.append("")
    L.append("| reader | how | items/s | MB/s | ratio to direct | runs (items/s) | HTTP requests | read amplification | notes |")
    L.append("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    hows = {"direct": "HTTP Range GETs, one keep-alive connection", "chunkfs": "`os.pread` per item",
            "rclone": "`os.pread` per item", "httpdirfs": "`os.pread` per item"}
    for r in results["rnd"]:
        runs = results["rnd"][r]
        if not runs:
            L.append("| %s | %s | n/a | n/a | | | | | %s |" % (LABELS[r], hows[r], failed["rnd"].get(r, "not run")))
            continue
        med = statistics.median(x["items"] for x in runs)
        mr = median_run(runs, "items")
        amp = amplification(mr.get("stats")) if r == "chunkfs" else None
        notes = ["sha256 of every item OK"]
        parts = [x["partial"] for x in runs if x.get("partial")]
        if parts:
            notes.append("%d of %d runs stopped at the %.0f s cap, after %d of %d items"
                         % (len(parts), len(runs), RANDOM_CAP, statistics.median(parts), len(b.plan)))
        if r in b.short["rnd"]:
            notes.append(b.short["rnd"][r])
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                 % (LABELS[r], hows[r], num(med), num(statistics.median(x["mbps"] for x in runs)),
                    ratio(med, d), ", ".join(num(x["items"]) for x in runs),
                    "" if mr.get("requests") is None else mr["requests"],
                    "%.3f" % amp if amp is not None else ("" if r != "chunkfs" else "n/a"),
                    "; ".join(notes)))
    L.append("")


def epoch_table(b, results, failed, L):
    """The second-epoch workload's table and what it measured."""
    a = b.a
    mem, disk = b.epoch_caps()
    runs_of = results["epoch2"]
    same_disk = os.stat(b.work).st_dev == os.stat(b.data).st_dev
    L.append("### Warm second epoch: the data read twice, memory cap smaller than the data")
    L.append("")
    L.append("Each run reads the dataset's chunk files (%s, %.1f MB in all) twice in full with one "
             "`cat` per epoch, through one fresh mount whose disk cache is a fresh directory in the "
             "bench's work directory `%s` (%s the data directory `%s`). First epoch: cold "
             "(`drop_caches` before), fetched from nginx, and what falls out of memory goes to the "
             "reader's disk cache. Then the spill writes are let settle, `sync; echo 3 > "
             "/proc/sys/vm/drop_caches` again, and the **second epoch** is timed: the kernel page "
             "cache holds neither the mount's pages nor the cache files, so the bytes come from the "
             "readers' cache files on the local disk (or from nginx, which the HTTP column would show). "
             "The reference (ratio 1.00x) is `cat` of the same files in the data directory after "
             "`drop_caches`: a cold local disk read. The files are read once, untimed, before: this "
             "is a VM, whose host caches what the guest just wrote or read, and the mounts read back "
             "cache files they have just written, so the reference gets the same help. Median of %d "
             "runs (interleaved); each run's cache directory is deleted after it."
             % (", ".join("`%s`" % n for n, _ in b.chunks), b.data_size / MB, b.work,
                "same file system as" if same_disk else "NOT on the same file system as",
                b.data, a.epoch2_reps))
    L.append("")
    setups = {
        "local": "`cat DATA/chunk... > /dev/null` after `drop_caches`",
        "direct": "`curl -o /dev/null URL...` after `drop_caches`; no cache, so every epoch downloads "
                  "again (context only)",
        "chunkfs": "`chunkfs --mem-cache=%s --cache-dir=WORK/chunkfs-epoch-cache-N --disk-cache=%s URL MNT` "
                   "(memory tier %s < %.0f MiB of data; spill tier large enough for all of it; "
                   "default eviction lru, no --spill-compress)" % (mem, disk, mem, b.data_size / 2**20),
        "rclone": "`rclone mount :http: MNT --http-url URL --read-only --vfs-cache-mode full "
                  "--vfs-cache-max-size %s --cache-dir WORK/rclone-epoch-cache-N`" % disk,
    }
    L.append("| reader | setup | 2nd epoch MB/s | ratio to local read | runs (MB/s) | 1st epoch MB/s "
             "| from nginx in the 2nd epoch | notes |")
    L.append("| --- | --- | ---: | ---: | --- | ---: | --- | --- |")
    loc = runs_of.get("local")
    ref = statistics.median(x["mbps"] for x in loc) if loc else None
    for r, runs in runs_of.items():
        if not runs:
            L.append("| %s | %s | n/a | | | | | %s |" % (LABELS[r], setups[r], failed["epoch2"].get(r, "not run")))
            continue
        med = statistics.median(x["mbps"] for x in runs)
        mr = median_run(runs, "mbps")
        first = ("%s" % num(statistics.median(x["mbps1"] for x in runs))) if "mbps1" in runs[0] else \
            ("(= 2nd)" if r == "direct" else "")
        http = mr.get("http")
        http_s = "" if r == "local" or http is None else "%d requests, %.1f MB" % (http[0], http[1] / MB)
        notes = []
        if r in ("chunkfs", "rclone"):
            notes.append(b.verified.get(r + "-epoch", "not verified (partial read)"))
            notes.append("its cache after the 1st epoch: %.0f MB on disk" % (mr["cache_bytes"] / MB))
        if r == "chunkfs":
            deltas = [x["delta"] for x in runs if x.get("delta")]
            if deltas:
                d = mr.get("delta") or deltas[0]
                fetched = [x["bytes_fetched"] for x in deltas]
                notes.append("bytes_fetched grew by %s in the 2nd epochs (%s)"
                             % (", ".join(str(f) for f in fetched),
                                "all from the spill tier" if not any(fetched) else "NOT all from the spill tier"))
                hits, misses = d["mem_hits"], d["mem_misses"]
                notes.append("2nd epoch of the median run: disk_hits +%d, disk_misses +%d, spills +%d, "
                             "mem hits %d / misses %d (hit ratio %.2f), %d FUSE reads answered"
                             % (d["disk_hits"], d["disk_misses"], d["spills"], hits, misses,
                                hits / (hits + misses) if hits + misses else 0.0,
                                hits + misses))
                if d.get("checksum_failures"):
                    notes.append("%d spilled blocks refused (checksum)" % d["checksum_failures"])
            st = mr.get("stats") or {}
            if st:
                notes.append("at the end: disk_bytes %d, mem_hit_ratio %.2f, disk_hit_ratio %.2f (whole mount)"
                             % (st.get("disk_bytes", 0), st.get("mem_hit_ratio", 0.0),
                                st.get("disk_hit_ratio", 0.0)))
        parts = [x["partial"] for x in runs if x.get("partial")]
        if parts:
            notes.append("%d of %d runs stopped at the %.0f s cap; rate over the first %.0f MB read"
                         % (len(parts), len(runs), SEQ_CAP, statistics.median(parts) / MB))
        if r in b.short["epoch2"]:
            notes.append(b.short["epoch2"][r])
        notes.append(raw_note(r, runs, runs_of.get("local")))
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |"
                 % (LABELS[r], setups[r], num(med), ratio(med, ref),
                    ", ".join(num(x["mbps"]) for x in runs), first, http_s,
                    "; ".join(n for n in notes if n)))
    L.append("")


def raw_note(r, runs, local_runs):
    """What the disk gives the layout of reader r (local files, chunkfs's block files) read by
    RAW_READERS threads without FUSE, and for chunkfs how that compares with the local files."""
    raws = [x["raw_mbps"] for x in runs if x.get("raw_mbps")]
    if r not in ("local", "chunkfs") or not raws:
        return ""
    what = "the same files" if r == "local" else "its block files, straight from its cache directory"
    note = ("%s read by %d threads in %d KiB preads, no FUSE: %s MB/s (%s)"
            % (what, RAW_READERS, RAW_PIECE >> 10, num(statistics.median(raws)),
               ", ".join(num(x) for x in raws)))
    local_raws = [x["raw_mbps"] for x in local_runs or [] if x.get("raw_mbps")]
    if r == "chunkfs" and local_raws:
        note += ", %.2fx the same read of the local files" % (
            statistics.median(raws) / statistics.median(local_raws))
    return note


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker(sys.argv[2:])
        return 0
    p = argparse.ArgumentParser(description="chunkfs benchmark (run it through scripts/bench)")
    p.add_argument("--url", required=True, help="dataset directory URL on nginx")
    p.add_argument("--data", required=True, help="the same dataset on local disk")
    p.add_argument("--work", required=True, help="scratch directory for mountpoints and logs")
    p.add_argument("--bin", required=True, help="chunkfs binary")
    p.add_argument("--access-log", default="", help="nginx access log (to count requests)")
    p.add_argument("--litgen", default="", help="litgen arguments, for the report")
    p.add_argument("--out", default="", help="also write the report here")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--tools", default=",".join(READERS), help="readers to measure, comma separated")
    p.add_argument("--workloads", default="",
                   help="run only these workloads, comma separated (seq,rnd,epoch2,warm; default all)")
    p.add_argument("--no-epoch2", dest="epoch2", action="store_false",
                   help="skip the warm second epoch workload (the data read twice)")
    p.add_argument("--epoch2-mem", default="64M",
                   help="chunkfs --mem-cache in the second-epoch workload (default 64M; "
                        "smaller than the data)")
    p.add_argument("--epoch2-reps", type=int, default=5,
                   help="runs of the second-epoch workload (default 5; the disk is the noisiest part)")
    p.add_argument("--no-warm", dest="warm", action="store_false",
                   help="skip the extra sequential runs with the server's page cache warm")
    p.add_argument("--budget", type=int, default=480,
                   help="seconds after which no new run is started (default 480)")
    a = p.parse_args()
    if a.reps < 1 or a.epoch2_reps < 1:
        p.error("--reps and --epoch2-reps must be at least 1")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    b = Bench(a)
    for tool in ("rclone", "httpdirfs"):
        if tool in a.tools and shutil.which(tool) is None:
            log("%s not installed" % tool)
    try:
        readers, results, failed = b.run()
    finally:
        for m in list(b.active):
            m.close()
    text = report(b, readers, results, failed)
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        log("report written to %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
