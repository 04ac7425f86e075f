#!/usr/bin/env python3
"""chunkfs benchmark (issue 11): cold and warm reads through chunkfs, rclone mount and
httpdirfs against a plain HTTP client doing the same byte ranges, all in one run.

Run it through scripts/bench, which installs rclone and httpdirfs, builds chunkfs (unless
--no-build), writes the dataset (4 x 256 MiB LitData chunks, items of 64-256 KiB), starts
nginx on 127.0.0.1 (sendfile on) and passes the arguments below.

Readers, one column each:
  direct     the reference: Python's http.client in the reader process itself, one
             keep-alive connection per reader process, never a process per request. It
             asks for the byte ranges that a reader of a mount asks for. Sequential:
             1 MiB Range GETs over one connection. Items: a chunk's offset table is read
             once (one Range GET of its 4*(N+2) header bytes) and kept, then one Range GET
             per item.
  chunkfs    --configs: defaults, --mem-cache=64M, --mem-cache=4G, --disk-cache=0. Every
             mount gets a fresh, empty --cache-dir in the work directory, so its spill tier
             cannot serve what an earlier run left. --compare-bin adds the same configs of
             a second binary (a baseline) as more columns.
  rclone     rclone mount --vfs-cache-mode full and off (--rclone-modes), a fresh
             --cache-dir each mount, its other options at their defaults.
  httpdirfs  httpdirfs -f --no-range-check (its cache off).
A timed run stops at --cap seconds (rclone: --rclone-cap, httpdirfs: --httpdirfs-cap; both
are slow on random items and would take the whole time budget otherwise); its rate then
counts what was read by then, marked "partial" in the report.

Workloads (--workloads). Each is repeated --reps times; the readers take turns round-robin
(the order rotates every round), and a cell is the median (min-max) of the runs.
  seq      one 256 MiB chunk read whole with 1 MiB reads (MB/s).
  rnd      --items random items (seeded, drawn across the 4 chunks) by one process in
           LitData's PyTreeLoader pattern: open the chunk, pread the 8-byte offset pair at
           4*(1+i), pread the item, close (items/s).
  par8     --procs reader processes x --per-proc other random items each, the same
           pattern; items/s over the wall time from the first process's start to the
           last one's end (the processes start together, on a signal).
  ttfb     time to the first item on a slow server: a second nginx with limit_rate
           (--slow-rate per request) behind a delaying TCP proxy (--slow-delay per
           request). nginx-light has no module that delays a request, so the proxy (this
           file's `_proxy`) holds each request for the delay before passing it on. On a
           fresh mount one random item of each chunk is read, each chunk's first touch:
           ms from open() (direct: from connecting) to having the item's bytes.
  rss      chunkfs --mem-cache=64M while 1 GiB streams through (the 4 chunks read whole
           with 1 MiB reads); the daemon's VmRSS sampled every 10 ms, and its VmHWM.
  remount  after each cold seq run of chunkfs defaults: unmount, mount again with the same
           cache dir, drop the page cache, read the chunk again; bytes_fetched of that read.
  epoch2   (extra) the 4 chunks read twice through one mount whose memory cap is smaller
           than the data (chunkfs --mem-cache=64M (--epoch2-mem) with a spill tier; rclone
           full cache); the cache writes are let settle and the page cache is dropped before
           the timed second epoch, whose rate is compared with a cold read of the same files
           from the local disk (read once untimed before: the VM's host caches them too).
  samples  (extra) --samples random small samples of a second dataset (--samples-data, served
           at --samples-url) in MosaicML MDS's and LitData's per-sample pattern (open, pread
           the offset pair, pread the sample, close), read once untimed and then timed: all
           cached, the mount against the same files on local disk in the page cache.
  shared2  (extra) two nodes sharing a memcached tier (issue 17), on the ttfb workload's slow
           server: a memcached of Debian's (/usr/bin/memcached -U 0 -m 16384, its default
           1 MiB item size; README "A cache shared by every node") on a free port of
           127.0.0.1, started for the round and stopped by its PID. Node 1, a fresh mount
           with --shared-cache, reads the first --shared2-chunks chunks whole (1 MiB reads)
           cold, waits until its write-behind stores are done (its stats count a store,
           failure or drop of every block) and unmounts; node 2, another fresh mount of the
           same URL and memcached, then reads the same bytes cold. As references, a fresh
           mount without the tier reads them from the slow server, and one from the fast
           local nginx. Reported: each node's MB/s and seconds, node 2 / node 1, node 2 /
           the fast node, the chunk bytes each node caused on the slow server (its nginx
           access log: GETs of the chunk files, index.json and listings aside) and the
           daemons' bytes_fetched and shared hits and misses. Every read is capped at
           --shared2-cap seconds; a node that stops there fails the round.
rss, epoch2, samples and shared2 use --bin only, not --compare-bin. --budget: no run starts after that many
seconds, so a slow machine gives fewer runs rather than a longer bench.

Cold: a fresh mount that has started (chunkfs: its memory tier faulted in, mem_idle_bytes
still for 0.3 s, as it is by the time a loader's first read comes), `sync; echo 3 >
/proc/sys/vm/drop_caches`, then the server's files read once (so nginx serves them from
memory), then the timed run. Warm: the same run again on the same mount. direct has
nothing to keep: its warm run is a second run.

For every mount: the daemon's peak RSS (VmHWM from /proc/PID/status before unmounting),
its CPU seconds (utime + stime from /proc/PID/stat) until the mount has started and over
the timed cold run per GB the workload read, and for chunkfs the read amplification:
bytes_fetched (MNT/.chunkfs/stats, its growth over the timed run) / bytes the workload
read.

Every byte is checked: each timed run reads into one buffer and hashes it after the clock
stops (sha256 of the chunk, of each item), against the source files.

Every timed read runs in a child process (`_worker`) that stops itself at its cap and is
killed if it overruns the cap by HANG_GRACE; every mount is unmounted (fusermount3 -u,
lazily as a last resort) and its process stopped by PID; waits are on conditions with
deadlines. Network: 127.0.0.1 only. Python 3.11 standard library only.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import random
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

MB = 1e6
MiB = 1 << 20
PIECE = 1 << 20            # sequential reads and Range GETs: 1 MiB
MOUNT_TIMEOUT = 30.0
HANG_GRACE = 30.0          # a worker past its cap by this much is killed: a hang
READY_TIMEOUT = 60.0       # par8: the processes must be ready to start within this
SETTLE = 1.0               # epoch2: cache writes count as settled after this long still
SETTLE_MAX = 30.0
STARTED = 0.3              # a fresh chunkfs mount has started once mem_idle_bytes is still this long
MEMCACHED = "/usr/bin/memcached"
MEMCACHED_MB = 16384       # shared2: memcached -m, as the README's tier section starts it
SHARED2_BLOCK = MiB        # shared2: chunkfs's default --block-size, one store per block
RSS_INTERVAL = 0.01        # rss: VmRSS sample period
RSS_SLACK = 32 * MiB       # rss: allowed above the memory cap
REMOUNT_SLACK = 0.01       # remount: "finds the blocks" if it fetched <= 1% of the chunk

WORKLOADS = ("seq", "rnd", "par8", "ttfb", "rss", "remount", "epoch2", "samples", "shared2")
CONFIGS = {  # chunkfs configs: key -> (label, options besides --cache-dir)
    "defaults": ("defaults", []),
    "64M": ("--mem-cache=64M", ["--mem-cache=64M"]),
    "4G": ("--mem-cache=4G", ["--mem-cache=4G"]),
    "nodisk": ("--disk-cache=0", ["--disk-cache=0"]),
}
RCLONE_MODES = ("full", "off")
TOOLS = ("direct", "chunkfs", "rclone", "httpdirfs")


def choices(text, known, what):
    """The comma-separated names of text, each one of known (else exit naming it)."""
    names = [n for n in text.split(",") if n]
    for n in names:
        if n not in known:
            raise SystemExit("unknown %s %r (known: %s)" % (what, n, ",".join(known)))
    return names


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Unavailable(Exception):
    """A reader could not be measured (mount failed, timed out, wrong bytes...)."""


# ================================================================ child processes

class FileSource:
    """Reads through a mount, as a LitData reader does."""

    def __init__(self, spec):
        self.paths = spec["paths"]

    def read_whole(self, c, mv, deadline):
        """Read chunk c from its start into mv with 1 MiB reads; bytes read (fewer at the
        deadline)."""
        fd = os.open(self.paths[c], os.O_RDONLY)
        try:
            n = 0
            while n < len(mv) and time.monotonic() < deadline:
                got = os.readv(fd, [mv[n:n + PIECE]])
                if not got:
                    break
                n += got
            return n
        finally:
            os.close(fd)

    def read_item(self, c, i, mv):
        """PyTreeLoader: open, pread the offset pair at 4*(1+i), pread the item, close.
        The item lands at the start of mv; returns its size."""
        fd = os.open(self.paths[c], os.O_RDONLY)
        try:
            pair = os.pread(fd, 8, 4 * (1 + i))
            if len(pair) != 8:
                raise SystemExit("short read of the offset pair of item %d" % i)
            begin, end = struct.unpack("<II", pair)
            n = end - begin
            if not 0 < n <= len(mv):
                raise SystemExit("item %d of chunk %d: bad offsets %d..%d" % (i, c, begin, end))
            got = 0
            while got < n:
                k = os.preadv(fd, [mv[got:n]], begin + got)
                if not k:
                    raise SystemExit("item %d: end of file after %d of %d bytes" % (i, got, n))
                got += k
            return n
        finally:
            os.close(fd)


class HttpSource:
    """The direct reader: one keep-alive connection; offset tables read once and kept."""

    def __init__(self, spec):
        self.host, self.port = spec["host"], spec["port"]
        self.paths, self.counts = spec["paths"], spec["counts"]
        self.tables = {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.conn.connect()

    def close(self):
        self.conn.close()

    def get_into(self, c, off, mv):
        """Range GET of len(mv) bytes of chunk c at off, received into mv."""
        n = len(mv)
        self.conn.request("GET", self.paths[c], headers={"Range": "bytes=%d-%d" % (off, off + n - 1)})
        resp = self.conn.getresponse()
        if resp.status != 206:
            raise SystemExit("HTTP %d for bytes %d+%d of %s" % (resp.status, off, n, self.paths[c]))
        got = 0
        while got < n:
            k = resp.readinto(mv[got:])
            if not k:
                raise SystemExit("response ended after %d of %d bytes" % (got, n))
            got += k
        if resp.read():
            raise SystemExit("response longer than %d bytes" % n)
        return n

    def table(self, c):
        if c not in self.tables:
            count = self.counts[c]
            raw = bytearray(4 * (count + 2))
            self.get_into(c, 0, memoryview(raw))
            self.tables[c] = struct.unpack_from("<%dI" % (count + 1), raw, 4)
        return self.tables[c]

    def read_whole(self, c, mv, deadline):
        n = 0
        while n < len(mv) and time.monotonic() < deadline:
            n += self.get_into(c, n, mv[n:n + PIECE])
        return n

    def read_item(self, c, i, mv):
        t = self.table(c)
        n = t[i + 1] - t[i]
        if not 0 < n <= len(mv):
            raise SystemExit("item %d of chunk %d: bad offsets" % (i, c))
        return self.get_into(c, t[i], mv[:n])


def make_source(spec):
    return HttpSource(spec) if spec["mode"] == "http" else FileSource(spec)


def prefaulted(size):
    """A zeroed buffer of size bytes whose pages are already touched (not timed)."""
    buf = bytearray(size)
    buf[::4096] = bytes(len(range(0, size, 4096)))
    return buf


def job_seq(job, src):
    """Read each of job["files"] ([chunk, size]) whole: [bytes read, sha256 of them] each."""
    total = sum(size for _, size in job["files"])
    buf = prefaulted(total)
    mv = memoryview(buf)
    t0 = wait_start(job)
    deadline = t0 + job["cap"]
    pos, done = 0, []
    for c, size in job["files"]:
        n = src.read_whole(c, mv[pos:pos + size], deadline)
        done.append((pos, n, size))
        pos += n
        if n < size:
            break
    t1 = time.monotonic()
    shas = [[n, hashlib.sha256(mv[p:p + n]).hexdigest()] for p, n, _ in done]
    return {"t0": t0, "t1": t1, "bytes": pos, "sha256": shas,
            "partial": pos < total}


def job_items(job, src):
    """Read job["plan"] ([chunk, item] pairs) in the PyTreeLoader pattern."""
    buf = prefaulted(job["buffer"])
    mv = memoryview(buf)
    t0 = wait_start(job)
    deadline = t0 + job["cap"]
    pos, sizes = 0, []
    for c, i in job["plan"]:
        if time.monotonic() >= deadline:
            break
        n = src.read_item(c, i, mv[pos:])
        sizes.append(n)
        pos += n
    t1 = time.monotonic()
    shas, p = [], 0
    for n in sizes:
        shas.append(hashlib.sha256(mv[p:p + n]).hexdigest())
        p += n
    return {"t0": t0, "t1": t1, "done": len(sizes), "bytes": pos, "sha256": shas,
            "partial": len(sizes) < len(job["plan"])}


def job_ttfb(job, spec):
    """Each of job["plan"] on a first touch: ms from open (direct: connect) to its bytes."""
    buf = prefaulted(job["buffer"])
    mv = memoryview(buf)
    t_start = time.monotonic()
    ms, shas = [], []
    for c, i in job["plan"]:
        if time.monotonic() >= t_start + job["cap"]:
            break
        t0 = time.monotonic()
        src = make_source(spec)      # direct: a new connection, no offset table yet
        n = src.read_item(c, i, mv)
        t1 = time.monotonic()
        if isinstance(src, HttpSource):
            src.close()
        ms.append((t1 - t0) * 1000)
        shas.append(hashlib.sha256(mv[:n]).hexdigest())
    return {"ms": ms, "sha256": shas, "partial": len(ms) < len(job["plan"])}


def wait_start(job):
    """par8: say "ready" on stdout and wait for the start signal on stdin."""
    if job.get("sync"):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("no start signal")
    return time.monotonic()


def worker_main(job_file):
    """`bench.py _worker JOB`: run the job (JSON) and write its result (JSON) to job["out"]."""
    with open(job_file) as f:
        job = json.load(f)
    if job["kind"] == "ttfb":
        res = job_ttfb(job, job["source"])
    else:
        src = make_source(job["source"])
        res = (job_seq if job["kind"] == "seq" else job_items)(job, src)
        if isinstance(src, HttpSource):
            src.close()
    tmp = job["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.rename(tmp, job["out"])


def proxy_main(target_port, delay_ms):
    """`bench.py _proxy PORT DELAY_MS WORK`: a TCP proxy on a free port of 127.0.0.1 (printed
    on stdout) to nginx on PORT that holds every request DELAY_MS before passing it on (WORK,
    the work directory, is only there for scripts/bench to find a leftover proxy). A
    request arrives in one segment (curl, Go's net/http and http.client send headers in
    one write), so each read from a client is one request. Fault injection, not timing."""
    delay = delay_ms / 1000.0
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)

    def pump(src, dst, hold):
        try:
            while True:
                data = src.recv(1 << 18)
                if not data:
                    break
                if hold:
                    time.sleep(hold)
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(client):
        try:
            upstream = socket.create_connection(("127.0.0.1", target_port))
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=pump, args=(upstream, client, 0), daemon=True)
        back.start()
        pump(client, upstream, delay)
        back.join()
        client.close()
        upstream.close()

    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


# ================================================================ system helpers

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
    """Poll cond until it is true (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_still(probe, still, timeout, interval=0.05):
    """Poll probe() until its value has stayed the same for still seconds (True) or
    timeout seconds pass (False)."""
    last, since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= still:
            return True
        time.sleep(interval)
    return False


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
    """SIGTERM, wait up to grace seconds, then SIGKILL."""
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


def stop_child(proc, grace=10.0):
    """Stop a child started here (Popen) and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


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


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM) in bytes, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def proc_cpu(pid):
    """utime + stime of PID (all its threads) in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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


def du(path):
    """Bytes that the files under path take on disk."""
    total = 0
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def read_line(proc, timeout):
    """The first line proc writes on its stdout, waiting at most timeout seconds."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            more = os.read(proc.stdout.fileno(), 256)
            if not more:
                return None
            data += more
    finally:
        sel.close()
    return data.split(b"\n", 1)[0].decode()


# ================================================================ dataset

class Dataset:
    """The LitData chunks on local disk (what nginx serves): offsets and checksums."""

    def __init__(self, data):
        self.dir = data
        with open(os.path.join(data, "index.json")) as f:
            index = json.load(f)
        self.names = [c["filename"] for c in index["chunks"]]
        self.sizes = [c["chunk_bytes"] for c in index["chunks"]]
        self.counts = [c["chunk_size"] for c in index["chunks"]]
        self.offsets = []
        for name, size, count in zip(self.names, self.sizes, self.counts):
            path = os.path.join(data, name)
            if os.path.getsize(path) != size:
                raise SystemExit("%s: size differs from index.json" % path)
            with open(path, "rb") as f:
                head = f.read(4 * (count + 2))
            if struct.unpack_from("<I", head)[0] != count:
                raise SystemExit("%s: item count differs from index.json" % path)
            self.offsets.append(struct.unpack_from("<%dI" % (count + 1), head, 4))
        self.total = sum(self.sizes)
        self._file_sha, self._item_sha = {}, {}

    def path(self, c):
        return os.path.join(self.dir, self.names[c])

    def item_size(self, c, i):
        return self.offsets[c][i + 1] - self.offsets[c][i]

    def file_sha(self, c):
        if c not in self._file_sha:
            h = hashlib.sha256()
            with open(self.path(c), "rb") as f:
                for block in iter(lambda: f.read(8 * MiB), b""):
                    h.update(block)
            self._file_sha[c] = h.hexdigest()
        return self._file_sha[c]

    def prefix_sha(self, c, n):
        """sha256 of the first n bytes of chunk c (what a capped run read)."""
        h = hashlib.sha256()
        with open(self.path(c), "rb") as f:
            while n > 0:
                block = f.read(min(n, 8 * MiB))
                if not block:
                    break
                h.update(block)
                n -= len(block)
        return h.hexdigest()

    def item_sha(self, c, i):
        if (c, i) not in self._item_sha:
            with open(self.path(c), "rb") as f:
                f.seek(self.offsets[c][i])
                self._item_sha[(c, i)] = hashlib.sha256(f.read(self.item_size(c, i))).hexdigest()
        return self._item_sha[(c, i)]

    def warm_server(self, chunks):
        """Read the files once, so that nginx serves them from the page cache."""
        buf = bytearray(8 * MiB)
        for c in list(chunks):
            with open(self.path(c), "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
        with open(os.path.join(self.dir, "index.json"), "rb") as f:
            f.read()

    def pick(self, rng, n):
        """n distinct random items across all chunks, as [chunk, item] pairs."""
        every = [(c, i) for c in range(len(self.names)) for i in range(self.counts[c])]
        return [list(x) for x in rng.sample(every, min(n, len(every)))]


# ================================================================ readers and mounts

class Reader:
    """One column: direct, a chunkfs binary with some options, rclone, httpdirfs."""

    def __init__(self, key, label, tool, args=(), binary=None):
        self.key, self.label, self.tool = key, label, tool
        self.args, self.bin = list(args), binary

    @property
    def direct(self):
        return self.tool == "direct"


class Mount:
    """One mount of one reader (a context manager that always cleans up). cache: its
    cache directory (chunkfs --cache-dir, rclone --cache-dir), made by the caller; ds: the
    dataset at url (default: the bench's)."""

    def __init__(self, bench, reader, tag, url, cache=None, ds=None):
        self.bench, self.reader, self.url, self.cache = bench, reader, url, cache
        self.ds = ds or bench.ds
        self.point = os.path.join(bench.work, "mnt-%s-%s" % (reader.key, tag))
        self.log = os.path.join(bench.work, "%s-%s.log" % (reader.key, tag))
        self.proc = None   # rclone / httpdirfs, in the foreground
        self.pid = None    # the process serving the mount

    def __enter__(self):
        os.makedirs(self.point, exist_ok=True)
        self.bench.active.append(self)
        try:
            getattr(self, "_mount_" + self.reader.tool)()
            self._ready()
            self.startup_cpu = self._started()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def file(self, c):
        return os.path.join(self.point, self.ds.names[c])

    def _ready(self):
        ds = self.ds

        def ok():
            if self.proc is not None and self.proc.poll() is not None:
                return True
            if not is_mounted(self.point):
                return False
            try:
                return os.stat(self.file(0)).st_size == ds.sizes[0]
            except OSError:
                return False
        what = self.reader.label
        if not wait_for(ok, MOUNT_TIMEOUT, 0.05):
            raise Unavailable("%s: no %s of %d bytes in the mount after %.0fs (%s)"
                              % (what, ds.names[0], ds.sizes[0], MOUNT_TIMEOUT, tail(self.log) or "no log"))
        if self.proc is not None and self.proc.poll() is not None:
            raise Unavailable("%s exited with %d: %s" % (what, self.proc.returncode, tail(self.log)))

    def _started(self):
        """Wait until chunkfs has faulted in its memory tier (mem_idle_bytes still for STARTED
        seconds, at most SETTLE_MAX), as a mount has by the time a loader's first read comes;
        the daemon's CPU seconds so far (start-up, other tools at once)."""
        if self.reader.tool == "chunkfs" and \
                not wait_still(lambda: (self.stats() or {}).get("mem_idle_bytes"), STARTED, SETTLE_MAX):
            self.bench.notes.add("a chunkfs mount was still faulting in its memory tier after %.0f s"
                                 % SETTLE_MAX)
        return proc_cpu(self.pid)

    def _mount_chunkfs(self):
        r = self.reader
        argv = [r.bin] + r.args + ["--cache-dir=" + self.cache, self.url, self.point]
        with open(self.log, "ab") as logf:
            try:
                # Output to a file, never a pipe: the daemon may keep it open.
                res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     timeout=MOUNT_TIMEOUT * 2)
            except subprocess.TimeoutExpired:
                raise Unavailable("chunkfs did not return within %.0fs" % (MOUNT_TIMEOUT * 2))
            except OSError as e:
                raise Unavailable("cannot run %s: %s" % (argv[0], e))
        pids = pids_with_arg(self.point, os.path.basename(r.bin))
        self.pid = pids[0] if pids else None
        if res.returncode != 0:
            raise Unavailable("chunkfs exited with %d: %s" % (res.returncode, tail(self.log)))
        if self.pid is None:
            raise Unavailable("no chunkfs process has %s in its argv" % self.point)

    def _spawn(self, argv):
        with open(self.log, "ab") as logf:
            try:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            except OSError as e:
                raise Unavailable("cannot run %s: %s" % (argv[0], e))
        self.pid = self.proc.pid

    def _mount_rclone(self):
        self._spawn(["rclone", "mount", ":http:", self.point, "--http-url", self.url, "--read-only",
                     "--config", os.path.join(self.bench.work, "rclone.conf"),
                     "--cache-dir", self.cache] + self.reader.args)

    def _mount_httpdirfs(self):
        self._spawn(["httpdirfs", "-f", "--no-range-check", self.url, self.point])

    def stats(self):
        if self.reader.tool != "chunkfs":
            return None
        try:
            with open(os.path.join(self.point, ".chunkfs", "stats")) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            log("cannot read chunkfs stats: %s" % e)
            return None

    def snapshot(self):
        """What the daemon has done so far: CPU seconds and (chunkfs) its stats."""
        return {"cpu": proc_cpu(self.pid), "stats": self.stats()}

    def close(self):
        if self in self.bench.active:
            self.bench.active.remove(self)
        unmount(self.point)
        if self.proc is not None:
            if not wait_for(lambda: self.proc.poll() is not None, 15, 0.02):
                log("%s still running after unmount; stopping PID %d" % (self.reader.label, self.proc.pid))
                stop_child(self.proc)
        pids = set()
        if self.reader.tool == "chunkfs":
            pids.update(pids_with_arg(self.point, os.path.basename(self.reader.bin)))
            if self.pid is not None:
                pids.add(self.pid)
        for pid in pids:
            if not wait_for(lambda: not pid_alive(pid), 30, 0.02):
                log("chunkfs daemon %d still running 30s after unmount; stopping it" % pid)
                self.bench.notes.add("a chunkfs daemon did not exit within 30 s of its unmount")
                stop_pid(pid)
        if is_mounted(self.point):
            unmount(self.point)


class SlowServer:
    """The ttfb and shared2 workloads' server: a second nginx (one process) with limit_rate
    per request, behind the delaying proxy of proxy_main. Its access log has one line per
    request: method, status, body bytes sent, path."""

    def __init__(self, bench):
        self.bench = bench
        self.nginx = self.proxy = None
        self.url = None
        self.access_log = os.path.join(bench.work, "nginx-slow-access.log")

    def start(self):
        a, work = self.bench.a, self.bench.work
        root = os.path.dirname(os.path.abspath(a.data))
        for _ in range(5):
            port = free_port()
            conf = os.path.join(work, "nginx-slow.conf")
            with open(conf, "w") as f:
                f.write(NGINX_SLOW_CONF % {"work": work, "port": port, "root": root, "rate": a.slow_rate,
                                           "log": self.access_log})
            with open(os.path.join(work, "nginx-slow.out"), "ab") as out:
                self.nginx = subprocess.Popen(
                    ["nginx", "-p", work, "-c", conf, "-e", os.path.join(work, "nginx-slow-error.log"),
                     "-g", "daemon off;"], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            if wait_for(lambda: self.nginx.poll() is not None or port_open(port), 20):
                if self.nginx.poll() is None:
                    break
            stop_child(self.nginx)
            self.nginx = None
        if self.nginx is None:
            raise Unavailable("the slow nginx would not start (%s)" % tail(os.path.join(work, "nginx-slow-error.log")))
        self.proxy = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_proxy", str(port),
                                       "%g" % a.slow_delay, work],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        line = read_line(self.proxy, 20)
        if not line or not line.isdigit():
            raise Unavailable("the delaying proxy did not start")
        path = urlpath(self.bench.url)
        self.url = "http://127.0.0.1:%s%s" % (line, path)
        log("slow server: nginx PID %d (limit_rate %s) on port %d behind proxy PID %d (%g ms per request) on port %s"
            % (self.nginx.pid, a.slow_rate, port, self.proxy.pid, a.slow_delay, line))

    def stop(self):
        for p in (self.proxy, self.nginx):
            if p is not None:
                stop_child(p)
        self.proxy = self.nginx = None

    def log_size(self):
        """Bytes in the access log so far: where the next request's line will start."""
        try:
            return os.path.getsize(self.access_log)
        except OSError:
            return 0

    def chunk_bytes(self, start, names):
        """(body bytes, requests) of the GETs of the chunk files named that the access log
        holds past offset start; index.json and listings are not chunk files."""
        paths = {urlpath(self.bench.url) + n for n in names}
        with open(self.access_log, "rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").split("\n")[:-1]   # whole lines only
        sent = [int(w[2]) for w in (l.split(" ", 3) for l in lines)
                if len(w) == 4 and w[0] == "GET" and w[3] in paths and w[2].isdigit()]
        return sum(sent), len(sent)


NGINX_SLOW_CONF = """master_process off;
pid %(work)s/nginx-slow.pid;
error_log %(work)s/nginx-slow-error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    types { application/json json; }
    log_format cfs_bytes '$request_method $status $body_bytes_sent $uri';
    access_log %(log)s cfs_bytes;
    client_body_temp_path %(work)s/nginx-slow-body;
    proxy_temp_path %(work)s/nginx-slow-proxy;
    fastcgi_temp_path %(work)s/nginx-slow-fastcgi;
    uwsgi_temp_path %(work)s/nginx-slow-uwsgi;
    scgi_temp_path %(work)s/nginx-slow-scgi;
    sendfile on;
    tcp_nopush off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    limit_rate %(rate)s;
    server {
        listen 127.0.0.1:%(port)d;
        server_name localhost;
        root %(root)s;
        autoindex on;
    }
}
"""


def urlpath(url):
    """/path/ of http://host:port/path/."""
    return "/" + url.split("/", 3)[3]


class Memcached:
    """shared2's memcached: Debian's, TCP only (-U 0) on a free port of 127.0.0.1, memory as
    the README starts it, its default item size (chunkfs stores blocks as 256 KiB parts). A
    context manager that stops it by its PID whatever happens; its -P file under the work
    directory lets scripts/bench find one left over."""

    def __init__(self, bench):
        self.work = bench.work
        self.proc = None
        self.port = None

    @property
    def spec(self):
        return "127.0.0.1:%d" % self.port

    def __enter__(self):
        user = ["-u", "root"] if os.geteuid() == 0 else []   # it refuses root without -u
        out_path = os.path.join(self.work, "memcached.out")
        for _ in range(5):
            self.port = free_port()
            argv = [MEMCACHED, "-U", "0", "-l", "127.0.0.1", "-p", str(self.port), "-m", str(MEMCACHED_MB),
                    "-P", os.path.join(self.work, "memcached.pid")] + user
            with open(out_path, "ab") as out:
                try:
                    self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
                except OSError as e:
                    raise Unavailable("cannot run %s: %s" % (MEMCACHED, e))
            if wait_for(lambda: self.proc.poll() is not None or self.answers(), 20) and self.proc.poll() is None:
                log("memcached PID %d on %s" % (self.proc.pid, self.spec))
                return self
            stop_child(self.proc)
        raise Unavailable("memcached would not start (%s)" % (tail(out_path) or "no output"))

    def __exit__(self, *exc):
        stop_child(self.proc)

    def answers(self):
        """True when the server answers the text protocol's version command."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"version\r\n")
                return s.recv(64).startswith(b"VERSION ")
        except OSError:
            return False


# ================================================================ the bench

class Bench:
    def __init__(self, a):
        self.a = a
        self.url = a.url if a.url.endswith("/") else a.url + "/"
        self.work = a.work
        self.ds = Dataset(a.data)
        self.sds = Dataset(a.samples_data) if a.samples_data else None
        self.active = []
        self.notes = set()
        self.failed = {}       # (workload, reader key) -> why
        self.runs = []         # one dict per measured run
        self.rss = []          # rss workload: one dict per rep
        self.remounts = []     # remount check: one dict per rep
        self.start = time.monotonic()
        self.load_start = loadavg()
        self.cold_ok = True
        self.seq_no = 0
        self.slow = None
        rng = random.Random(a.seed)
        picks = self.ds.pick(rng, a.items + a.procs * a.per_proc)
        self.rnd_plan = picks[:a.items]
        rest = picks[a.items:]
        self.par_plans = [rest[k * a.per_proc:(k + 1) * a.per_proc] for k in range(a.procs)]
        self.readers = self.make_readers()

    # -- setup

    def make_readers(self):
        a = self.a
        tools = choices(a.tools, TOOLS, "tool")
        configs = choices(a.configs, CONFIGS, "config")
        modes = choices(a.rclone_modes, RCLONE_MODES, "rclone mode")
        readers = [Reader("direct", "direct", "direct")]
        if "chunkfs" in tools:
            for c in configs:
                label, args = CONFIGS[c]
                readers.append(Reader("cfs-" + c, "chunkfs " + label, "chunkfs", args, a.bin))
            if a.compare_bin:
                for c in configs:
                    label, args = CONFIGS[c]
                    readers.append(Reader("cmp-" + c, "compare " + label, "chunkfs", args, a.compare_bin))
        if "rclone" in tools:
            for m in modes:
                readers.append(Reader("rclone-" + m, "rclone " + m, "rclone", ["--vfs-cache-mode", m]))
        if "httpdirfs" in tools:
            readers.append(Reader("httpdirfs", "httpdirfs", "httpdirfs"))
        for tool in ("rclone", "httpdirfs"):
            if tool in tools and shutil.which(tool) is None:
                raise SystemExit("%s is not installed" % tool)
        return readers

    def reader(self, key):
        return next((r for r in self.readers if r.key == key), None)

    def fresh_cache(self, reader):
        """A new, empty cache directory in the work directory."""
        self.seq_no += 1
        path = os.path.join(self.work, "cache-%s-%d" % (reader.key, self.seq_no))
        os.makedirs(path)
        return path

    def cap(self, reader):
        return {"httpdirfs": self.a.httpdirfs_cap, "rclone": self.a.rclone_cap}.get(reader.tool, self.a.cap)

    def time_left(self):
        return self.a.budget - (time.monotonic() - self.start)

    def cold(self, chunks):
        """Before a cold run: drop the page cache, then warm the server's files."""
        if not drop_caches():
            self.cold_ok = False
        self.ds.warm_server(chunks)

    # -- running a job in child processes

    def source(self, reader, mount, url):
        if reader.direct:
            host, port = url.split("/")[2].rsplit(":", 1)
            return {"mode": "http", "host": host, "port": int(port), "counts": self.ds.counts,
                    "paths": [urlpath(url) + n for n in self.ds.names]}
        return {"mode": "file", "paths": [mount.file(c) for c in range(len(mount.ds.names))]}

    def job_file(self, job):
        self.seq_no += 1
        base = os.path.join(self.work, "job-%d" % self.seq_no)
        job["out"] = base + ".out"
        with open(base + ".json", "w") as f:
            json.dump(job, f)
        return base

    def spawn(self, job):
        base = self.job_file(job)
        err = open(base + ".err", "wb")
        try:
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_worker", base + ".json"],
                                    stdin=subprocess.PIPE if job.get("sync") else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE if job.get("sync") else subprocess.DEVNULL,
                                    stderr=err)
        finally:
            err.close()
        return proc, base

    def run_jobs(self, jobs):
        """Run the jobs in child processes at once (several: they start together on a
        signal); their results, in order. Children past their cap + HANG_GRACE are killed."""
        started = [self.spawn(j) for j in jobs]
        try:
            if len(jobs) > 1:
                for proc, base in started:
                    if read_line(proc, READY_TIMEOUT) != "ready":
                        raise Unavailable("a reader process did not get ready: %s" % tail(base + ".err", 1))
                for proc, _ in started:
                    proc.stdin.write(b"go\n")
                    proc.stdin.close()
            deadline = time.monotonic() + max(j["cap"] for j in jobs) + HANG_GRACE
            out = []
            for (proc, base), job in zip(started, jobs):
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise Unavailable("a read hung: no end %.0fs after the %.0fs cap" % (HANG_GRACE, job["cap"]))
                if proc.returncode != 0:
                    raise Unavailable("reads failed: %s" % (tail(base + ".err", 1) or "exit %d" % proc.returncode))
                with open(base + ".out") as f:
                    out.append(json.load(f))
            return out
        finally:
            for proc, base in started:
                stop_child(proc, 2)
                for p in (proc.stdout, proc.stdin):
                    if p is not None and not p.closed:
                        p.close()
                for ext in (".json", ".out", ".err"):
                    try:
                        os.unlink(base + ext)
                    except OSError:
                        pass

    # -- checks of the bytes

    def check_seq(self, res, files):
        for (c, size), (n, sha) in zip(files, res["sha256"]):
            want = self.ds.file_sha(c) if n == size else self.ds.prefix_sha(c, n)
            if sha != want:
                raise Unavailable("WRONG BYTES: sha256 of the first %d bytes of %s is %s, source %s"
                                  % (n, self.ds.names[c], sha, want))
        if not res["bytes"]:
            raise Unavailable("not one byte read before the cap")

    def check_items(self, res, plan, ds=None):
        ds = ds or self.ds
        bad = [k for k, sha in enumerate(res["sha256"]) if sha != ds.item_sha(*plan[k])]
        if bad:
            raise Unavailable("WRONG BYTES: %d of %d items differ from the source (first: chunk %d item %d)"
                              % (len(bad), len(res["sha256"]), plan[bad[0]][0], plan[bad[0]][1]))
        if not res["sha256"]:
            raise Unavailable("not one item read before the cap")

    # -- workloads: one job list each

    def jobs_for(self, wl, reader, src):
        cap = self.cap(reader)
        if wl == "seq":
            return [{"kind": "seq", "source": src, "cap": cap, "files": [[0, self.ds.sizes[0]]]}]
        if wl == "rnd":
            return [self.items_job(src, cap, self.rnd_plan)]
        if wl == "par8":
            return [dict(self.items_job(src, cap, p), sync=True) for p in self.par_plans]
        raise ValueError(wl)

    def items_job(self, src, cap, plan, ds=None):
        need = sum((ds or self.ds).item_size(c, i) for c, i in plan)
        return {"kind": "items", "source": src, "cap": cap, "plan": plan, "buffer": need}

    def measure(self, wl, reader, jobs):
        """Run jobs, check the bytes; (value, bytes the workload read, partial)."""
        out = self.run_jobs(jobs)
        if wl == "seq":
            res = out[0]
            self.check_seq(res, jobs[0]["files"])
            return res["bytes"] / (res["t1"] - res["t0"]) / MB, res["bytes"], res["partial"]
        items, nbytes = 0, 0
        for res, job in zip(out, jobs):
            self.check_items(res, job["plan"])
            items += res["done"]
            nbytes += res["bytes"] + 8 * res["done"]   # the offset pairs too
        wall = max(r["t1"] for r in out) - min(r["t0"] for r in out)
        return items / wall, nbytes, any(r["partial"] for r in out)

    def record(self, wl, phase, reader, rep, value, partial, **extra):
        run = dict(wl=wl, phase=phase, reader=reader.key, rep=rep, value=value, partial=partial, **extra)
        self.runs.append(run)
        unit = {"seq": "MB/s", "epoch2": "MB/s", "shared2": "MB/s", "ttfb": "ms"}.get(wl, "items/s")
        more = "".join(", %s %s" % (k, fmt_extra(k, v)) for k, v in extra.items() if v is not None and k != "samples")
        log("  %s %s %s rep %d: %.1f %s%s%s" % (wl, phase, reader.label, rep + 1, value, unit,
                                                 " (partial: stopped at the cap)" if partial else "", more))

    def run_main(self, wl, reader, rep):
        """seq, rnd or par8: cold then warm on one fresh mount (and the remount check)."""
        chunks = [0] if wl == "seq" else range(len(self.ds.names))
        if reader.direct:
            src = self.source(reader, None, self.url)
            self.cold(chunks)
            v, _, part = self.measure(wl, reader, self.jobs_for(wl, reader, src))
            self.record(wl, "cold", reader, rep, v, part)
            v, _, part = self.measure(wl, reader, self.jobs_for(wl, reader, src))
            self.record(wl, "warm", reader, rep, v, part)
            return
        cache = self.fresh_cache(reader)
        try:
            with Mount(self, reader, "%s%d" % (wl, rep), self.url, cache) as m:
                jobs = self.jobs_for(wl, reader, self.source(reader, m, None))
                self.cold(chunks)
                before = m.snapshot()
                v, nbytes, part = self.measure(wl, reader, jobs)
                after = m.snapshot()
                self.record(wl, "cold", reader, rep, v, part, cpu_gb=cpu_per_gb(before, after, nbytes),
                            amp=amplification(before, after, nbytes), cpu_start=m.startup_cpu)
                v, nbytes, part = self.measure(wl, reader, jobs)
                self.record(wl, "warm", reader, rep, v, part,
                            fetched=fetched(m.snapshot(), after), hwm=proc_status(m.pid, "VmHWM"))
            if wl == "seq" and reader.key == "cfs-defaults" and "remount" in self.workloads:
                self.remount_check(reader, rep, cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def remount_check(self, reader, rep, cache):
        """Mount again with the cache dir of the run just unmounted; read the chunk again."""
        try:
            with Mount(self, reader, "remount%d" % rep, self.url, cache) as m:
                jobs = self.jobs_for("seq", reader, self.source(reader, m, None))
                self.cold([0])
                before = m.snapshot()
                v, nbytes, part = self.measure("seq", reader, jobs)
                end = m.snapshot()
                got = fetched(end, before)
                whole = (end.get("stats") or {}).get("bytes_fetched")
        except Unavailable as e:
            self.remounts.append({"rep": rep, "error": str(e)})
            log("  remount check rep %d: n/a: %s" % (rep + 1, e))
            return
        self.remounts.append({"rep": rep, "fetched": got, "whole": whole, "mbps": v, "bytes": nbytes,
                              "partial": part})
        log("  remount check rep %d: bytes_fetched %s during the read of %d bytes (%s since the mount), %.0f MB/s"
            % (rep + 1, got, nbytes, whole, v))

    def run_ttfb(self, reader, rep):
        """One random item of each chunk, each the chunk's first touch on a fresh mount."""
        rng = random.Random("%d-ttfb-%d" % (self.a.seed, rep))
        plan = [[c, rng.randrange(self.ds.counts[c])] for c in range(len(self.ds.names))]
        need = max(self.ds.item_size(c, i) for c, i in plan)
        url = self.slow.url
        job = {"kind": "ttfb", "cap": self.cap(reader), "plan": plan, "buffer": need}
        cache = None if reader.direct else self.fresh_cache(reader)
        try:
            if reader.direct:
                job["source"] = self.source(reader, None, url)
                self.cold(range(len(self.ds.names)))
                res = self.run_jobs([job])[0]
            else:
                with Mount(self, reader, "ttfb%d" % rep, url, cache) as m:
                    job["source"] = self.source(reader, m, None)
                    self.cold(range(len(self.ds.names)))
                    res = self.run_jobs([job])[0]
        finally:
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
        self.check_items(res, plan)
        self.record("ttfb", "cold", reader, rep, statistics.median(res["ms"]), res["partial"], samples=res["ms"])

    def run_rss(self, reader, rep):
        """1 GiB streams through chunkfs --mem-cache=64M; VmRSS sampled every RSS_INTERVAL."""
        files = [[c, s] for c, s in enumerate(self.ds.sizes)]
        cache = self.fresh_cache(reader)
        try:
            with Mount(self, reader, "rss%d" % rep, self.url, cache) as m:
                job = {"kind": "seq", "source": self.source(reader, m, None), "cap": self.a.cap, "files": files}
                self.cold(range(len(files)))
                peak = [0, 0]
                stop = threading.Event()

                def sample():
                    while not stop.is_set():
                        rss = proc_status(m.pid, "VmRSS") or 0
                        peak[0], peak[1] = max(peak[0], rss), peak[1] + 1
                        stop.wait(RSS_INTERVAL)
                t = threading.Thread(target=sample, daemon=True)
                t.start()
                try:
                    res = self.run_jobs([job])[0]
                finally:
                    stop.set()
                    t.join()
                self.check_seq(res, files)
                hwm = proc_status(m.pid, "VmHWM")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        mbps = res["bytes"] / (res["t1"] - res["t0"]) / MB
        self.rss.append({"rep": rep, "peak": peak[0], "samples": peak[1], "hwm": hwm,
                         "bytes": res["bytes"], "mbps": mbps, "partial": res["partial"]})
        log("  rss rep %d: peak VmRSS %.1f MiB (%d samples), VmHWM %.1f MiB, %.0f MB streamed at %.0f MB/s"
            % (rep + 1, peak[0] / MiB, peak[1], (hwm or 0) / MiB, res["bytes"] / MB, mbps))

    # -- epoch2 (extra)

    def run_epoch2(self, reader, rep):
        """The 4 chunks read twice; the second epoch after drop_caches is timed."""
        files = [[c, s] for c, s in enumerate(self.ds.sizes)]
        if reader.key == "local":
            src = {"mode": "file", "paths": [self.ds.path(c) for c in range(len(files))]}
            job = {"kind": "seq", "source": src, "cap": self.a.cap, "files": files}
            self.run_jobs([job])           # untimed: the VM host caches what was just read
            drop_caches()
            res = self.run_jobs([job])[0]
            self.check_seq(res, files)
            self.record("epoch2", "2nd", reader, rep, res["bytes"] / (res["t1"] - res["t0"]) / MB, res["partial"])
            return
        cache = self.fresh_cache(reader)
        try:
            with Mount(self, reader, "epoch%d" % rep, self.url, cache) as m:
                job = {"kind": "seq", "source": self.source(reader, m, None), "cap": self.a.cap, "files": files}
                self.cold(range(len(files)))
                first = self.run_jobs([job])[0]
                if first["partial"]:
                    raise Unavailable("the first epoch did not end within the %.0fs cap" % self.a.cap)
                self.settle(m)
                before = m.snapshot()
                drop_caches()
                res = self.run_jobs([job])[0]
                self.check_seq(res, files)
                got = fetched(m.snapshot(), before)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        self.record("epoch2", "2nd", reader, rep, res["bytes"] / (res["t1"] - res["t0"]) / MB, res["partial"],
                    first=first["bytes"] / (first["t1"] - first["t0"]) / MB, fetched=got)

    def run_samples(self, reader, rep):
        """--samples random small samples, each opened, read (offset pair, then the sample)
        and closed, read once untimed and then timed: the second pass, all cached."""
        ds = self.sds
        plan = ds.pick(random.Random("%d-samples-%d" % (self.a.seed, rep)), self.a.samples)
        if reader.key == "local":
            src = {"mode": "file", "paths": [ds.path(c) for c in range(len(ds.names))]}
            self.timed_samples(reader, rep, self.items_job(src, self.a.cap, plan, ds))
            return
        cache = self.fresh_cache(reader)
        try:
            with Mount(self, reader, "samples%d" % rep, self.a.samples_url, cache, ds) as m:
                src = self.source(reader, m, None)
                self.timed_samples(reader, rep, self.items_job(src, self.a.cap, plan, ds))
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def timed_samples(self, reader, rep, job):
        self.run_jobs([job])
        res = self.run_jobs([job])[0]
        self.check_items(res, job["plan"], self.sds)
        rate = res["done"] / (res["t1"] - res["t0"])
        self.record("samples", "warm", reader, rep, rate, res["partial"], us=1e6 / rate)

    # -- shared2 (extra)

    def run_shared2(self, reader, rep):
        """Node 1 and then node 2 of the slow server, sharing a memcached started for the
        round; then a node without the tier on the slow server and one on the fast one."""
        files = [[c, self.ds.sizes[c]] for c in range(min(self.a.shared2_chunks, len(self.ds.names)))]
        with Memcached(self) as mc:
            tier = ["--shared-cache=memcached://" + mc.spec]
            self.shared2_node(reader, rep, "node1", tier, self.slow.url, files, stores=True)
            self.shared2_node(reader, rep, "node2", tier, self.slow.url, files)
        self.shared2_node(reader, rep, "notier", [], self.slow.url, files)
        self.shared2_node(reader, rep, "local", [], self.url, files)

    def shared2_node(self, reader, rep, phase, extra, url, files, stores=False):
        """One node: a fresh mount (fresh cache dir and memory; extra: more options) of url
        reads files whole and cold, every byte checked; with stores, it then waits for its
        stores to the shared tier before its unmount. Recorded as phase, with the chunk bytes
        it caused on the slow server."""
        node = Reader("s2-" + phase, reader.label, "chunkfs", reader.args + extra, reader.bin)
        cache = self.fresh_cache(node)
        start = self.slow.log_size()
        try:
            with Mount(self, node, str(rep), url, cache) as m:
                job = {"kind": "seq", "source": self.source(node, m, None), "cap": self.a.shared2_cap,
                       "files": files}
                self.cold([c for c, _ in files])
                before = m.snapshot()
                res = self.run_jobs([job])[0]
                self.check_seq(res, files)
                if res["partial"]:
                    raise Unavailable("%s read %d of %d bytes within the %.0f s cap"
                                      % (phase, res["bytes"], sum(n for _, n in files), self.a.shared2_cap))
                if stores:
                    self.wait_stores(m, files)
                after = m.snapshot()
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        secs = res["t1"] - res["t0"]
        remote, requests = (self.slow.chunk_bytes(start, [self.ds.names[c] for c, _ in files])
                            if url == self.slow.url else (None, None))
        d = stats_delta(after, before, ("bytes_fetched", "shared_hits", "shared_misses", "shared_stores",
                                        "shared_store_drops", "shared_store_failures"))
        self.record("shared2", phase, reader, rep, res["bytes"] / secs / MB, False, secs=secs, remote=remote,
                    requests=requests, **d)

    def wait_stores(self, m, files):
        """Wait until node m has stored, failed to store or dropped every block of files (one
        store each), at most SETTLE_MAX seconds: its write-behind queue is then empty."""
        want = sum(-(-size // SHARED2_BLOCK) for _, size in files)

        def done():
            st = m.stats() or {}
            return st.get("shared_stores", 0) + st.get("shared_store_failures", 0) + \
                st.get("shared_store_drops", 0) >= want
        if not wait_for(done, SETTLE_MAX, 0.1):
            self.notes.add("shared2: node 1 had not stored its %d blocks after %.0f s" % (want, SETTLE_MAX))

    def settle(self, m):
        """Wait until the mount's cache writes stop: chunkfs's spills counter (rclone: its
        cache directory's size) still for SETTLE seconds, at most SETTLE_MAX."""
        def probe():
            if m.reader.tool == "chunkfs":
                st = m.stats() or {}
                return st.get("spills"), st.get("spill_errors")
            return du(m.cache)
        if not wait_still(probe, SETTLE, SETTLE_MAX):
            self.notes.add("epoch2: the cache writes had not settled after %.0f s" % SETTLE_MAX)

    # -- driver

    def plan(self):
        """[(workload, readers)] in the order of a round."""
        a = self.a
        wls = choices(a.workloads, WORKLOADS, "workload")
        self.workloads = wls
        cfs = [r for r in self.readers if r.tool == "chunkfs"]
        plan = []
        for w in ("seq", "rnd", "par8"):
            if w in wls:
                plan.append((w, self.readers))
        if "ttfb" in wls:
            plan.append(("ttfb", self.readers))
        if "rss" in wls and cfs:
            plan.append(("rss", [Reader("cfs-rss", "chunkfs --mem-cache=64M", "chunkfs", ["--mem-cache=64M"], a.bin)]))
        if "epoch2" in wls:
            e_readers = [Reader("local", "local disk", "local")]
            if cfs:
                e_readers.append(Reader("cfs-epoch", "chunkfs --mem-cache=%s" % a.epoch2_mem, "chunkfs",
                                        ["--mem-cache=" + a.epoch2_mem,
                                         "--disk-cache=%dM" % max(1024, 2 * self.ds.total // MiB)], a.bin))
            if any(r.tool == "rclone" for r in self.readers):
                e_readers.append(Reader("rclone-epoch", "rclone full", "rclone", ["--vfs-cache-mode", "full"]))
            plan.append(("epoch2", e_readers))
        if "shared2" in wls and cfs:
            plan.append(("shared2", [Reader("cfs-shared2", "chunkfs defaults", "chunkfs", [], a.bin)]))
        elif "shared2" in wls:
            self.notes.add("shared2: not measured (needs chunkfs in --tools)")
        if "samples" in wls and self.sds:
            plan.append(("samples", [Reader("local", "local disk", "local")] + cfs))
        elif "samples" in wls:
            self.notes.add("samples: not measured (no --samples-data)")
        if "remount" in wls and not self.reader("cfs-defaults"):
            self.notes.add("remount: not measured (needs chunkfs in --tools and defaults in --configs)")
        if "remount" in wls and "seq" not in wls:
            self.notes.add("remount: not measured (it follows the seq runs; add seq to --workloads)")
        return plan

    def run(self):
        plan = self.plan()
        fns = {"seq": self.run_main, "rnd": self.run_main, "par8": self.run_main, "ttfb": self.run_ttfb,
               "rss": self.run_rss, "epoch2": self.run_epoch2, "samples": self.run_samples,
               "shared2": self.run_shared2}
        if any(wl in ("ttfb", "shared2") for wl, _ in plan):
            self.slow = SlowServer(self)
            self.slow.start()
        try:
            for rep in range(self.a.reps):
                log("=== round %d of %d (%.0f s elapsed, load %s)"
                    % (rep + 1, self.a.reps, time.monotonic() - self.start, loadavg()))
                for wl, readers in plan:
                    k = rep % len(readers) if readers else 0
                    for reader in readers[k:] + readers[:k]:
                        self.run_one(wl, fns[wl], reader, rep)
        finally:
            if self.slow:
                self.slow.stop()

    def run_one(self, wl, fn, reader, rep):
        if (wl, reader.key) in self.failed:
            return
        if self.time_left() <= 0:
            self.notes.add("the time budget of %d s ran out: some runs were not started "
                           "(fewer runs in some cells than --reps)" % self.a.budget)
            return
        args = (wl, reader, rep) if fn == self.run_main else (reader, rep)
        try:
            fn(*args)
        except Unavailable as e:
            log("  %s %s rep %d: n/a: %s" % (wl, reader.label, rep + 1, e))
            self.failed[(wl, reader.key)] = str(e)


# ================================================================ derived figures

def cpu_per_gb(before, after, nbytes):
    if before["cpu"] is None or after["cpu"] is None or not nbytes:
        return None
    return (after["cpu"] - before["cpu"]) / (nbytes / 1e9)


def stats_delta(after, before, names):
    """Growth of the chunkfs counters named between two snapshots ({} without stats)."""
    a, b = after.get("stats"), before.get("stats")
    if not a or not b:
        return {}
    return {n: a.get(n, 0) - b.get(n, 0) for n in names}


def fetched(after, before):
    """bytes_fetched between two chunkfs snapshots (None for other readers)."""
    return stats_delta(after, before, ("bytes_fetched",)).get("bytes_fetched")


def amplification(before, after, nbytes):
    got = fetched(after, before)
    return None if got is None or not nbytes else got / nbytes


def fmt_extra(k, v):
    if k == "cpu_gb":
        return "%.2f s/GB" % v
    if k == "cpu_start":
        return "%.2f s" % v
    if k == "amp":
        return "%.3f" % v
    if k == "hwm":
        return "%.0f MiB" % (v / MiB)
    if k == "fetched":
        return "%d B" % v
    if k == "first":
        return "%.0f MB/s" % v
    if k == "us":
        return "%.1f us per sample" % v
    if k == "secs":
        return "%.1f s" % v
    if k in ("remote", "bytes_fetched"):
        return "%d B" % v
    return str(v)


def num(x):
    """A value with about three significant digits."""
    if x is None:
        return "n/a"
    return "%.0f" % x if abs(x) >= 100 else "%.1f" % x if abs(x) >= 10 else "%.2f" % x


# ================================================================ report

ROWS = [  # (workload, phase, label, unit, higher is better)
    ("seq", "cold", "sequential, cold", "MB/s", True),
    ("seq", "warm", "sequential, warm", "MB/s", True),
    ("rnd", "cold", "random items, cold", "items/s", True),
    ("rnd", "warm", "random items, warm", "items/s", True),
    ("par8", "cold", "8 readers, cold", "items/s", True),
    ("par8", "warm", "8 readers, warm", "items/s", True),
    ("ttfb", "cold", "time to first item, slow server", "ms", False),
]


SHARED2_NODES = [  # (phase, label) of the shared2 table
    ("node1", "node 1: `--shared-cache`, slow server, memcached empty"),
    ("node2", "node 2: `--shared-cache`, slow server, after node 1"),
    ("notier", "a node without the tier, slow server"),
    ("local", "a node without the tier, fast local server"),
]


class Report:
    def __init__(self, bench):
        self.b, self.a = bench, bench.a
        self.L = []

    def runs(self, wl, phase, key):
        return [r for r in self.b.runs if r["wl"] == wl and r["phase"] == phase and r["reader"] == key]

    def values(self, wl, phase, key):
        runs = self.runs(wl, phase, key)
        if wl == "ttfb":
            return [s for r in runs for s in r["samples"]]
        return [r["value"] for r in runs]

    def med(self, wl, phase, key, field="value"):
        if field == "value":
            vals = self.values(wl, phase, key)
        else:
            vals = [r[field] for r in self.runs(wl, phase, key) if r.get(field) is not None]
        return statistics.median(vals) if vals else None

    def ratio(self, wl, phase, key, ref="direct"):
        x, d = self.med(wl, phase, key), self.med(wl, phase, ref)
        return None if x is None or not d else x / d

    def cell(self, wl, phase, key):
        vals = self.values(wl, phase, key)
        if not vals:
            why = self.b.failed.get((wl, key))
            return "n/a" + (" (failed)" if why else "")
        med = statistics.median(vals)
        s = "%s (%s-%s)" % (num(med), num(min(vals)), num(max(vals)))
        if key != "direct":
            s += " " + fx(self.ratio(wl, phase, key))
        if any(r["partial"] for r in self.runs(wl, phase, key)):
            s += " †"
        return s

    def out(self, line=""):
        self.L.append(line)

    def text(self):
        self.header()
        self.main_table()
        self.resources_table()
        self.checks()
        self.targets()
        self.epoch2_table()
        self.samples_table()
        self.shared2_table()
        self.footer()
        return "\n".join(self.L) + "\n"

    def header(self):
        b, a = self.b, self.a
        cpu, mem, distro = machine()
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        ds = b.ds
        self.out("## chunkfs benchmark (`scripts/bench`)")
        self.out()
        self.out("- date: %s; %d CPUs (%s), %.1f GiB RAM, %s, Linux %s; load average (1/5/15 min) "
                 "at the start %s, at the end %s"
                 % (now, os.cpu_count(), cpu, mem, distro, platform.release(), b.load_start, loadavg()))
        self.out("- server: %s on 127.0.0.1 (master + 2 workers, sendfile on), its page cache warm"
                 % cmd_version(["nginx", "-v"], "nginx").replace("nginx version: ", ""))
        self.out("- data: %d LitData chunks of %s bytes, %d items of %d-%d bytes in all; "
                 "`tests/litgen.py DIR %s`"
                 % (len(ds.names), "/".join(str(s) for s in ds.sizes), sum(ds.counts),
                    min(min(o[i + 1] - o[i] for i in range(len(o) - 1)) for o in ds.offsets),
                    max(max(o[i + 1] - o[i] for i in range(len(o) - 1)) for o in ds.offsets), a.litgen))
        self.out("- direct (the reference, ratio 1.00x): Python `http.client` in the reader process, one "
                 "keep-alive connection per reader process. Sequential: 1 MiB Range GETs over one connection "
                 "(the ranges of the mount's 1 MiB reads). Items: each chunk's offset table read once "
                 "(one Range GET of 4*(N+2) bytes) and kept, then one Range GET per item")
        self.out("- mounts: chunkfs `%s` (%s), each mount with a fresh empty `--cache-dir`%s; %s "
                 "(`rclone mount :http: MNT --http-url URL --read-only --vfs-cache-mode full|off`, "
                 "fresh `--cache-dir`); %s (`httpdirfs -f --no-range-check URL MNT`)"
                 % (a.bin, cmd_version([a.bin, "--version"]),
                    "; compare: `%s` (%s)" % (a.compare_bin, cmd_version([a.compare_bin, "--version"]))
                    if a.compare_bin else "",
                    cmd_version(["rclone", "version"], "rclone"), cmd_version(["httpdirfs", "--version"], "httpdirfs")))
        self.out("- workloads: **seq** one %.0f MiB chunk read whole with 1 MiB reads; **rnd** %d random items "
                 "(seed %d, across the %d chunks) by one process in LitData's PyTreeLoader pattern (open, "
                 "pread the 8-byte offset pair at 4*(1+i), pread the item, close), sha256 of every item "
                 "checked; **par8** %d processes x %d other random items, the same pattern, items/s over the "
                 "wall time from the first start to the last end; **ttfb** one random item of each chunk, "
                 "each the chunk's first touch on a fresh mount, against a slow server: ms from open() "
                 "(direct: from connecting) to the item's bytes"
                 % (ds.sizes[0] / MiB, a.items, a.seed, len(ds.names), a.procs, a.per_proc))
        self.out("- cold: fresh mount, once started (chunkfs: memory tier faulted in), %s, then the server's files "
                 "read once (nginx serves from memory), then "
                 "the timed run; warm: the same run again on the same mount. %d rounds, readers interleaved "
                 "round-robin; each cell: median (min-max) and ratio to direct; MB = 10^6 bytes"
                 % ("`sync; echo 3 > /proc/sys/vm/drop_caches`" if b.cold_ok
                    else "**the page cache could NOT be dropped (not root)**", a.reps))
        self.out("- slow server (ttfb): a second nginx with `limit_rate %s` behind a TCP proxy in Python that "
                 "holds each request %g ms (nginx-light has no module that delays a request: fault injection)"
                 % (a.slow_rate, a.slow_delay))
        self.out("- † partial: a run stopped at its cap (%.0f s; rclone %.0f s, httpdirfs %.0f s: they are slow "
                 "enough to take the whole time budget otherwise), its rate taken over what it read by then"
                 % (a.cap, a.rclone_cap, a.httpdirfs_cap))
        self.out()

    def main_table(self):
        b = self.b
        if not any(r["wl"] in ("seq", "rnd", "par8", "ttfb") for r in b.runs) and \
                not any(wl in ("seq", "rnd", "par8", "ttfb") for wl, _ in b.failed):
            return
        self.out("### Throughput and latency (ratio to direct; ttfb: ratio of times, lower is better)")
        self.out()
        self.out("| workload | " + " | ".join(r.label for r in b.readers) + " |")
        self.out("| --- |" + " ---: |" * len(b.readers))
        for wl, phase, label, unit, _ in ROWS:
            if not any(self.runs(wl, phase, r.key) for r in b.readers) and \
                    not any((wl, r.key) in b.failed for r in b.readers):
                continue
            self.out("| %s (%s) | %s |" % (label, unit, " | ".join(self.cell(wl, phase, r.key) for r in b.readers)))
        self.out()

    def resources_table(self):
        b = self.b
        mounts = [r for r in b.readers if not r.direct]
        if not any(self.runs(w, "cold", r.key) for w in ("seq", "rnd", "par8") for r in mounts):
            return
        self.out("### The daemon: peak RSS, CPU per GB served, read amplification (cold runs; seq / rnd / par8)")
        self.out()
        self.out("| reader | peak RSS, MiB (VmHWM) | CPU s at start-up | CPU s per GB read | read amplification |")
        self.out("| --- | ---: | ---: | ---: | ---: |")
        for r in mounts:
            def trio(field, phase, f):
                return " / ".join(f(self.med(w, phase, r.key, field)) for w in ("seq", "rnd", "par8"))
            hwm = trio("hwm", "warm", lambda v: "n/a" if v is None else "%.0f" % (v / MiB))
            start = trio("cpu_start", "cold", lambda v: "n/a" if v is None else "%.2f" % v)
            cpu = trio("cpu_gb", "cold", lambda v: "n/a" if v is None else "%.2f" % v)
            amp = trio("amp", "cold", lambda v: "n/a" if v is None else "%.3f" % v) \
                if r.tool == "chunkfs" else "(no counter)"
            self.out("| %s | %s | %s | %s | %s |" % (r.label, hwm, start, cpu, amp))
        self.out()
        self.out("Peak RSS: VmHWM of the daemon after the cold and the warm run, before unmounting. CPU at "
                 "start-up: its utime + stime from its start until the mount has started (chunkfs: its memory "
                 "tier faulted in, once per mount). CPU per GB: its utime + stime over the timed cold run / "
                 "bytes the workload read. Read amplification: "
                 "growth of `bytes_fetched` (`MNT/.chunkfs/stats`) over the timed cold run / bytes the workload "
                 "read (items: the 8-byte offset pairs too). Medians of the runs.")
        self.out()

    def checks(self):
        b = self.b
        if b.rss:
            peaks = [x["peak"] for x in b.rss]
            self.out("RSS check: chunkfs --mem-cache=64M while %.0f MB stream through (the %d chunks read whole, "
                     "1 MiB reads), VmRSS sampled every %.0f ms: peak %s MiB per run (max %.1f), VmHWM %s MiB; "
                     "cap + 32 MiB = 96 MiB; streamed at %s MB/s."
                     % (b.ds.total / MB, len(b.ds.names), RSS_INTERVAL * 1000,
                        ", ".join("%.1f" % (p / MiB) for p in peaks), max(peaks) / MiB,
                        ", ".join("%.1f" % ((x["hwm"] or 0) / MiB) for x in b.rss),
                        ", ".join(num(x["mbps"]) for x in b.rss)))
            self.out()
        if b.remounts:
            parts = []
            for x in b.remounts:
                if "error" in x:
                    parts.append("n/a (%s)" % x["error"])
                else:
                    parts.append("%s bytes (%s since the mount), %s MB/s"
                                 % (x["fetched"], x["whole"], num(x["mbps"])))
            self.out("Remount check (chunkfs defaults): after each cold seq run, unmount, mount again with the "
                     "same cache dir, `drop_caches`, read the chunk again; `bytes_fetched` during that read: %s."
                     % "; ".join(parts))
            self.out()

    def targets(self):
        rows = TargetRows(self).rows()
        if not rows:
            return
        self.out("### Targets of issues 11, 15 and 17 (from this run)")
        self.out()
        self.out("| target | measured | |")
        self.out("| --- | --- | --- |")
        for what, measured, ok in rows:
            self.out("| %s | %s | %s |" % (what, measured, {True: "met", False: "**not met**", None: ""}[ok]))
        self.out()

    def epoch2_table(self):
        b = self.b
        keys = [k for k in ("local", "cfs-epoch", "rclone-epoch") if self.runs("epoch2", "2nd", k)]
        if not keys:
            return
        labels = {"local": "local disk (`DATA/chunk` read after `drop_caches`)",
                  "cfs-epoch": "chunkfs --mem-cache=%s, spill tier on" % self.a.epoch2_mem,
                  "rclone-epoch": "rclone mount --vfs-cache-mode full"}
        self.out("### Extra: warm second epoch (the %d chunks read twice, page cache dropped before the 2nd)"
                 % len(b.ds.names))
        self.out()
        self.out("| reader | 2nd epoch MB/s | ratio to local disk | 1st epoch MB/s | bytes fetched in the 2nd |")
        self.out("| --- | ---: | ---: | ---: | ---: |")
        for k in keys:
            vals = self.values("epoch2", "2nd", k)
            r = self.ratio("epoch2", "2nd", k, "local")
            first = self.med("epoch2", "2nd", k, "first")
            got = [x.get("fetched") for x in self.runs("epoch2", "2nd", k) if x.get("fetched") is not None]
            self.out("| %s | %s (%s-%s) | %s | %s | %s |"
                     % (labels[k], num(statistics.median(vals)), num(min(vals)), num(max(vals)),
                        "%.2fx" % r if r else "", num(first) if first else "",
                        ", ".join(str(g) for g in got)))
        self.out()

    def samples_table(self):
        keys = [k for k in ["local"] + [r.key for r in self.b.readers]
                if self.runs("samples", "warm", k)]
        if not keys:
            return
        ds = self.b.sds
        self.out("### Per-sample open, read, close of cached data (MosaicML MDS and LitData's pattern)")
        self.out()
        self.out("%d random samples of %d-%d bytes (`tests/litgen.py DIR %s`), each opened, its offset pair "
                 "and its bytes read with pread, closed; the timed pass is the second, everything cached (the "
                 "local disk's files in the page cache, the mount's in its memory tier and the page cache)."
                 % (self.a.samples, min(min(o[i + 1] - o[i] for i in range(len(o) - 1)) for o in ds.offsets),
                    max(max(o[i + 1] - o[i] for i in range(len(o) - 1)) for o in ds.offsets),
                    self.a.samples_litgen))
        self.out()
        self.out("| reader | samples/s | us per sample | ratio to local disk |")
        self.out("| --- | ---: | ---: | ---: |")
        for k in keys:
            vals = self.values("samples", "warm", k)
            label = "local disk" if k == "local" else self.b.reader(k).label
            self.out("| %s | %s (%s-%s) | %s | %s |"
                     % (label, num(statistics.median(vals)), num(min(vals)), num(max(vals)),
                        num(self.med("samples", "warm", k, "us")),
                        fx(self.ratio("samples", "warm", k, "local"))))
        self.out()

    def shared2_table(self):
        key = "cfs-shared2"
        phases = [p for p in SHARED2_NODES if self.runs("shared2", p[0], key)]
        if not phases:
            return
        files = min(self.a.shared2_chunks, len(self.b.ds.names))
        self.out("### Extra: two nodes sharing a memcached tier (issue 17)")
        self.out()
        self.out("Each node a fresh chunkfs mount (defaults, fresh `--cache-dir`), `drop_caches` before it, "
                 "reading the first %d chunk(s) (%.0f MiB) whole with 1 MiB reads, every byte checked. Slow "
                 "server: the ttfb workload's (`limit_rate %s`, %g ms per request; nginx applies limit_rate per "
                 "request, once a response's first sendfile chunk, 2 MiB by default, is out, so requests of "
                 "1 MiB are held only by the delay). Node 1 and "
                 "node 2 mount it with `--shared-cache` on one `memcached -U 0 -m %d` (%s) started for the "
                 "round; node 1 reads first and its stores are done before it unmounts. Remote chunk bytes: "
                 "body bytes of the GETs of the chunk files in the slow nginx's access log, one figure per "
                 "round; the other counters are the daemon's (`.chunkfs/stats`) over the read."
                 % (files, sum(self.b.ds.sizes[:files]) / MiB, self.a.slow_rate, self.a.slow_delay, MEMCACHED_MB,
                    cmd_version([MEMCACHED, "-V"], "memcached")))
        self.out()
        self.out("| node | MB/s | seconds | ratio to node 1 | ratio to the fast node | remote chunk bytes "
                 "(requests) | bytes_fetched | shared hits / misses | stores / drops / failures |")
        self.out("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for phase, label in phases:
            runs = self.runs("shared2", phase, key)
            vals = self.values("shared2", phase, key)
            secs = [r["secs"] for r in runs]
            remote = ", ".join("%d (%d)" % (r["remote"], r["requests"]) for r in runs
                               if r.get("remote") is not None)
            self.out("| %s | %s (%s-%s) | %s (%s-%s) | %s | %s | %s | %s | %s | %s |"
                     % (label, num(statistics.median(vals)), num(min(vals)), num(max(vals)),
                        num(statistics.median(secs)), num(min(secs)), num(max(secs)),
                        fx(self.shared2_ratio(phase, "node1")), fx(self.shared2_ratio(phase, "local")),
                        remote or "(fast server)", per_run(runs, "bytes_fetched"),
                        per_run(runs, "shared_hits", "shared_misses"),
                        per_run(runs, "shared_stores", "shared_store_drops", "shared_store_failures")))
        self.out()

    def shared2_ratio(self, phase, ref):
        x, d = self.med("shared2", phase, "cfs-shared2"), self.med("shared2", ref, "cfs-shared2")
        return None if x is None or not d else x / d

    def footer(self):
        b = self.b
        for (wl, key), why in sorted(b.failed.items()):
            label = next((r.label for r in b.readers if r.key == key), key)
            self.out("- %s, %s: n/a: %s" % (wl, label, why))
        for n in sorted(b.notes):
            self.out("- note: %s" % n)
        self.out("- total time of the measurements: %.0f s" % (time.monotonic() - b.start))


class TargetRows:
    """Issue 11, deliverable 2, computed from the run: (target, measured, met?)."""

    def __init__(self, rep):
        self.r = rep
        self.b = rep.b

    def have(self, key):
        return self.b.reader(key) is not None

    def rows(self):
        """Rows of the targets whose workloads ran."""
        wls = self.b.workloads
        return [(what, measured, ok) for wl, what, measured, ok in self.all_rows() if wl in wls]

    def all_rows(self):
        """(workload it needs, target, measured, met?) for every target."""
        out = []
        r = self.r
        for wl, label in (("seq", "sequential"), ("rnd", "random items"), ("par8", "8 readers")):
            for key in ("cfs-defaults", "cfs-4G"):
                if self.have(key):
                    x = r.ratio(wl, "cold", key)
                    out.append((wl, "%s cold >= 0.5x direct, chunkfs %s" % (label, self.b.reader(key).label.split(" ", 1)[1]),
                                fx(x), None if x is None else x >= 0.5))
        if self.have("cfs-4G") and self.have("cfs-64M"):
            for wl, phase, label, _, higher in ROWS:
                x = r.ratio(wl, phase, "cfs-4G", "cfs-64M")
                if x is None:
                    continue
                ok = x >= 0.9 if higher else x <= 1.1
                out.append((wl, "no inverse scaling: %s, --mem-cache=4G no more than 10%% %s than 64M"
                            % (label, "slower" if higher else "longer"), "%s the 64M figure" % fx(x), ok))
        if self.have("cfs-defaults") and self.have("cfs-nodisk"):
            for wl, phase, label, _, higher in ROWS:
                if phase != "cold":
                    continue
                x = r.ratio(wl, phase, "cfs-defaults", "cfs-nodisk")
                if x is None:
                    continue
                ok = x >= 0.9 if higher else x <= 1.1
                out.append((wl, "spill writes do not slow the foreground: %s, defaults within 10%% of --disk-cache=0"
                            % label, "%s the --disk-cache=0 figure" % fx(x), ok))
        out.append(self.remount())
        for key in ("cfs-defaults", "cfs-4G"):
            if self.have(key):
                x = r.ratio("rnd", "warm", key)
                out.append(("rnd", "warm random items >= 1.5x direct, chunkfs %s" % self.b.reader(key).label.split(" ", 1)[1],
                            fx(x), None if x is None else x >= 1.5))
        if self.have("cfs-defaults"):
            x = r.ratio("ttfb", "cold", "cfs-defaults")
            out.append(("ttfb", "time to first item on the slow server <= 1.2x direct, chunkfs defaults",
                        fx(x), None if x is None else x <= 1.2))
            for wl, label, limit in (("rnd", "random items", 1.05), ("par8", "8 readers", 1.05),
                                     ("seq", "sequential", 1.00)):
                x = r.med(wl, "cold", "cfs-defaults", "amp")
                out.append((wl, "read amplification <= %.2f, %s cold, chunkfs defaults" % (limit, label),
                            "not measured" if x is None else "%.3f" % x, None if x is None else round(x, 2) <= limit))
        if self.have("cfs-defaults"):
            x = r.ratio("samples", "warm", "cfs-defaults", "local")
            out.append(("samples", "per-sample open/read/close of cached data within 2x of the local disk's "
                        "page cache (issue 15), chunkfs defaults", fx(x), None if x is None else x >= 0.5))
        out.extend(self.shared2())
        out.append(self.rss())
        out.append(self.cpu())
        return [x for x in out if x is not None]

    def remount(self):
        got = [x for x in self.b.remounts if "fetched" in x and x["fetched"] is not None]
        if not got:
            return ("remount", "a remount still finds the blocks (chunkfs defaults)", "not measured", None)
        worst = max(x["fetched"] for x in got)
        limit = REMOUNT_SLACK * self.b.ds.sizes[0]
        return ("remount", "a remount still finds the blocks (chunkfs defaults): it fetches <= 1%% of the chunk "
                "(%d bytes)" % limit, "%d bytes fetched at most (%d runs)" % (worst, len(got)), worst <= limit)

    def shared2(self):
        """Issue 17's benchmark goal: node 2 >= 5x node 1 on the slow server, 0 remote chunk
        bytes from node 2."""
        x = self.r.shared2_ratio("node2", "node1")
        got = [r["remote"] for r in self.r.runs("shared2", "node2", "cfs-shared2") if r.get("remote") is not None]
        worst = max(got) if got else None
        return [("shared2", "two nodes sharing memcached: node 2 >= 5x node 1 on the slow server", fx(x),
                 None if x is None else x >= 5),
                ("shared2", "two nodes sharing memcached: node 2 causes 0 remote chunk bytes",
                 "not measured" if worst is None else "%d bytes at most (%d runs)" % (worst, len(got)),
                 None if worst is None else worst == 0)]

    def rss(self):
        if not self.b.rss:
            return ("rss", "peak RSS <= cap + 32 MiB at --mem-cache=64M while 1 GiB streams through", "not measured",
                    None)
        peak = max(x["peak"] for x in self.b.rss)
        hwm = max(x["hwm"] or 0 for x in self.b.rss)
        return ("rss", "peak RSS <= cap + 32 MiB (96 MiB) at --mem-cache=64M while 1 GiB streams through",
                "%.1f MiB sampled VmRSS at most (VmHWM %.1f MiB)" % (peak / MiB, hwm / MiB),
                peak <= 64 * MiB + RSS_SLACK)

    def cpu(self):
        x = self.r.med("seq", "cold", "cfs-defaults", "cpu_gb")
        if x is None:
            return None
        base = self.r.med("seq", "cold", "cmp-defaults", "cpu_gb")
        if base:
            return ("seq", "daemon CPU s per GB on cold sequential <= half the compare binary's (defaults)",
                    "%.2f s/GB vs %.2f s/GB (%.2fx)" % (x, base, x / base), x <= base / 2)
        return ("seq", "daemon CPU s per GB on cold sequential, chunkfs defaults (<= half of the baseline's: "
                "compare by hand, or with --compare-bin)", "%.2f s/GB" % x, None)


def per_run(runs, *fields):
    """The fields of each run, a/b within a run, runs separated by commas."""
    return ", ".join("/".join(str(r.get(f, "n/a")) for f in fields) for r in runs)


def fx(x):
    """A ratio: 0.53x, 0.012x; "not measured" without one."""
    if x is None:
        return "not measured"
    return "%.2fx" % x if x >= 0.1 else "%.3fx" % x


def machine():
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


# ================================================================ main

def parse_args():
    p = argparse.ArgumentParser(description="chunkfs benchmark (run it through scripts/bench)")
    p.add_argument("--url", required=True, help="dataset directory URL on nginx")
    p.add_argument("--data", required=True, help="the same dataset on local disk")
    p.add_argument("--work", required=True, help="scratch directory: mountpoints, caches, logs")
    p.add_argument("--bin", required=True, help="chunkfs binary")
    p.add_argument("--compare-bin", default="", help="a second chunkfs binary, measured as more columns")
    p.add_argument("--litgen", default="", help="litgen arguments, for the report")
    p.add_argument("--out", default="", help="also write the report here")
    p.add_argument("--reps", type=int, default=3, help="rounds: runs of each measurement (default 3)")
    p.add_argument("--tools", default=",".join(TOOLS), help="readers, comma separated (default: all)")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="chunkfs configs, comma separated (default: %s)" % ",".join(CONFIGS))
    p.add_argument("--rclone-modes", default=",".join(RCLONE_MODES), help="rclone --vfs-cache-mode values")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help="comma separated (default: %s)" % ",".join(WORKLOADS))
    p.add_argument("--items", type=int, default=2000, help="random items of rnd (default 2000)")
    p.add_argument("--procs", type=int, default=8, help="reader processes of par8 (default 8)")
    p.add_argument("--per-proc", type=int, default=250, help="items per par8 process (default 250)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--cap", type=float, default=30.0,
                   help="seconds after which a timed run of direct or chunkfs stops (default 30)")
    p.add_argument("--rclone-cap", type=float, default=10.0, help="the same for rclone (default 10)")
    p.add_argument("--httpdirfs-cap", type=float, default=5.0, help="the same for httpdirfs (default 5)")
    p.add_argument("--slow-rate", default="20m", help="ttfb and shared2: nginx limit_rate, per request (default 20m)")
    p.add_argument("--slow-delay", type=float, default=30.0, help="ttfb: ms added to every request (default 30)")
    p.add_argument("--epoch2-mem", default="64M", help="epoch2: chunkfs --mem-cache (default 64M)")
    p.add_argument("--samples-url", default="", help="samples: URL of the small-sample dataset on nginx")
    p.add_argument("--samples-data", default="", help="samples: the same dataset on local disk")
    p.add_argument("--samples-litgen", default="", help="samples: its litgen arguments, for the report")
    p.add_argument("--samples", type=int, default=6000, help="samples: samples read per pass (default 6000)")
    p.add_argument("--shared2-chunks", type=int, default=4,
                   help="shared2: chunks each node reads, from the first (default 4: the dataset, 1 GiB)")
    p.add_argument("--shared2-cap", type=float, default=240.0,
                   help="shared2: seconds after which a node's read stops and fails the round (default 240)")
    p.add_argument("--budget", type=int, default=1080,
                   help="seconds after which no new run is started (default 1080)")
    a = p.parse_args()
    if a.reps < 1 or a.items < 1 or a.procs < 1 or a.per_proc < 1 or a.samples < 1 or a.shared2_chunks < 1:
        p.error("--reps, --items, --procs, --per-proc, --samples and --shared2-chunks must be at least 1")
    return a


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_proxy":
        proxy_main(int(sys.argv[2]), float(sys.argv[3]))
        return 0
    a = parse_args()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    b = Bench(a)
    try:
        b.run()
    finally:
        for m in list(b.active):
            m.close()
    text = Report(b).text()
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        log("report written to %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
