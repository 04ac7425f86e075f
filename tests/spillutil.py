"""Helpers shared by the spill tier tests (test_spill.py, test_eviction.py): reads
that the page cache cannot answer, the size of a cache directory as du counts
it (sampled in a thread), and the layout and format of a spill directory."""
import hashlib
import mmap
import os
import struct
import subprocess
import threading

import xxhash

from cfsutil import MiB, index_chunks, open_direct, source_sha256

BLOCK_MAGIC = b"CFSBLK\r\n"


# --------------------------------------------------------------------------
# reads


def read_direct(path, size, bufsize=MiB):
    """sha256 hex digest of the file at path, read from start to end with O_DIRECT
    preads of bufsize bytes (page-aligned buffer), so that every byte comes from
    the daemon. The file must be size bytes long."""
    h = hashlib.sha256()
    buf = mmap.mmap(-1, bufsize)
    view = memoryview(buf)
    fd = open_direct(path)
    total = 0
    try:
        for _ in range(size // bufsize + 2):
            n = os.preadv(fd, [buf], total)
            if not n:
                break
            h.update(view[:n])
            total += n
    finally:
        os.close(fd)
        view.release()
        buf.close()
    assert total == size, "%s: read %d bytes, expected %d" % (path, total, size)
    return h.hexdigest()


def check_all(m, src, names=None):
    """Read every chunk of the dataset src (or those named) from mount m with
    O_DIRECT and compare its sha256 with the source's."""
    for name, size in index_chunks(src):
        if names is None or name in names:
            assert read_direct(m.file(name), size) == source_sha256(os.path.join(src, name)), \
                "WRONG BYTES in %s" % name


def dataset_bytes(src):
    return sum(size for _, size in index_chunks(src))


# --------------------------------------------------------------------------
# the cache directory as du sees it


def du(root, odd=None):
    """(allocated, apparent) bytes of the tree at root as du counts them (du -s
    --block-size=1 and du -sb): every directory and file once (by inode). The
    walk is not atomic: files that vanish meanwhile are skipped, and tmp/ is
    listed before blocks/ so that a block renamed from one to the other is seen
    once, and never beside a block it replaced. A list odd gets the entries
    counted: (path, size, allocated) of every directory, and of every file whose
    allocation is not its size rounded up to 4 KiB, then the number of files."""
    seen = set()
    total = {"alloc": 0, "apparent": 0, "files": 0}

    def count(path, st, is_file):
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        total["alloc"] += st.st_blocks * 512
        total["apparent"] += st.st_size
        total["files"] += is_file
        rounded = st.st_blocks * 512 == (st.st_size + 4095) // 4096 * 4096
        if odd is not None and not (is_file and rounded):
            odd.append((path, st.st_size, st.st_blocks * 512))

    stack = [root]
    while stack:
        path = stack.pop()
        try:
            count(path, os.lstat(path), False)
            entries = list(os.scandir(path))
        except FileNotFoundError:
            continue
        dirs = []
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    dirs.append(e.path)
                else:
                    count(e.path, e.stat(follow_symlinks=False), True)
            except FileNotFoundError:
                continue
        # popped last first: tmp/ is walked before blocks/
        dirs.sort(key=lambda p: os.path.basename(p) == "tmp")
        stack.extend(dirs)
    if odd is not None:
        odd.append("%d files" % total["files"])
    return total["alloc"], total["apparent"]


def du_command(root):
    """(allocated, apparent) bytes of root by the du command itself. A file
    deleted by the daemon while du runs is only left out."""
    out = []
    for opt in ("--block-size=1", "-b"):
        r = subprocess.run(["du", "-s", opt, root], capture_output=True, text=True, timeout=60)
        vanished = all("No such file or directory" in line for line in r.stderr.splitlines())
        assert r.returncode == 0 or (r.returncode == 1 and vanished), r.stderr
        out.append(int(r.stdout.split()[0]))
    return tuple(out)


class DuSampler(threading.Thread):
    """Measures the cache directory root with du() every interval seconds, and
    .chunkfs/stats of m (when given) every stats_every samples, until stopped:
    the largest sizes seen, and every sample above cap (du) or a stats sample
    with mem_bytes > mem_cap or disk_bytes > disk_cap."""

    def __init__(self, root, cap, m=None, interval=0.003, stats_every=20):
        super().__init__(daemon=True, name="du-sampler")
        self.root, self.cap, self.m = root, cap, m
        self.interval, self.stats_every = interval, stats_every
        self.stop_event = threading.Event()
        self.samples = self.stats_samples = 0
        self.max_alloc = self.max_apparent = self.max_disk_bytes = self.max_mem_bytes = 0
        self.over = []
        self.error = None

    def run(self):
        try:
            for i in range(10_000_000):  # bounded; stopped long before
                odd = []
                alloc, apparent = du(self.root, odd)
                self.samples += 1
                self.max_alloc = max(self.max_alloc, alloc)
                self.max_apparent = max(self.max_apparent, apparent)
                if max(alloc, apparent) > self.cap and len(self.over) < 20:
                    self.over.append(("du", alloc, apparent, odd))
                m = self.m
                if m is not None and i % self.stats_every == 0:
                    st = m.stats()
                    self.stats_samples += 1
                    self.max_disk_bytes = max(self.max_disk_bytes, st["disk_bytes"])
                    self.max_mem_bytes = max(self.max_mem_bytes, st["mem_bytes"])
                    if st["mem_bytes"] > st["mem_cap"] or st["disk_bytes"] > st["disk_cap"]:
                        self.over.append(("stats", st["mem_bytes"], st["mem_cap"],
                                          st["disk_bytes"], st["disk_cap"]))
                if self.stop_event.wait(self.interval):
                    return
        except Exception as e:  # noqa: BLE001 - reported by check()
            self.error = e

    def drop_mount(self, timeout=10):
        """Stop reading the stats of the mount (before it is unmounted) and wait
        until the thread has taken note; du goes on."""
        self.m = None
        start = self.samples
        for _ in range(int(timeout / 0.005)):
            if self.samples >= start + 2 or not self.is_alive():
                return
            self.stop_event.wait(0.005)
        raise AssertionError("the du sampler made no progress in %s s" % timeout)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join(30)

    def check(self):
        """Fail on a sample over the caps; returns a one-line summary."""
        assert self.error is None, "sampler failed: %r" % self.error
        assert self.samples > 0
        assert not self.over, "above the cap of %d bytes: %s" % (self.cap, self.over)
        return ("%d du samples: max %.2f MiB allocated, %.2f MiB apparent (cap %.0f MiB); "
                "max stats disk_bytes %.2f MiB, mem_bytes %.2f MiB"
                % (self.samples, self.max_alloc / MiB, self.max_apparent / MiB, self.cap / MiB,
                   self.max_disk_bytes / MiB, self.max_mem_bytes / MiB))


# --------------------------------------------------------------------------
# the spill directory


def url_dir(cache_dir):
    """The one per-URL directory (16 hex digits) under cache_dir."""
    names = [n for n in os.listdir(cache_dir)
             if len(n) == 16 and all(c in "0123456789abcdef" for c in n)]
    assert len(names) == 1, "expected one URL directory in %s: %s" % (cache_dir,
                                                                     os.listdir(cache_dir))
    return os.path.join(cache_dir, names[0])


def block_files(cache_dir):
    """Paths of the block files of the one URL under cache_dir, sorted."""
    d = os.path.join(url_dir(cache_dir), "blocks")
    return sorted(os.path.join(d, n) for n in os.listdir(d))


def tmp_files(cache_dir):
    return os.listdir(os.path.join(url_dir(cache_dir), "tmp"))


def parse_block(data):
    """The header fields of a block file's bytes (spillfmt.h), and its payload."""
    assert data[:8] == BLOCK_MAGIC, "bad magic %r" % data[:8]
    version, flags, header_len, index, object_size, block_len, nextents, raw_len, stored_len, \
        name_len, etag_len = struct.unpack_from("<HHIQQIIIIHH", data, 8)
    pos = 64
    name = data[pos:pos + name_len].decode()
    pos += name_len
    etag = data[pos:pos + etag_len].decode()
    pos += etag_len
    extents = [struct.unpack_from("<II", data, pos + 8 * i) for i in range(nextents)]
    return {"version": version, "zstd": bool(flags & 1), "header_len": header_len,
            "index": index, "object_size": object_size, "block_len": block_len,
            "extents": extents, "raw_len": raw_len, "stored_len": stored_len, "name": name,
            "etag": etag, "payload": data[header_len:]}


def check_block_file(path, src, block_size):
    """The block file at path holds the right bytes of its object in src (an
    uncompressed payload is compared with the source, extent by extent).
    Returns its parsed header."""
    with open(path, "rb") as f:
        data = f.read()
    b = parse_block(data)
    assert len(b["payload"]) == b["stored_len"], path
    assert os.path.basename(path).endswith("-%d" % b["index"]), path
    src_path = os.path.join(src, b["name"])
    assert b["object_size"] == os.path.getsize(src_path), path
    if not b["zstd"]:
        assert b["raw_len"] == b["stored_len"], path
        with open(src_path, "rb") as f:
            at = 0
            for lo, hi in b["extents"]:
                f.seek(b["index"] * block_size + lo)
                assert b["payload"][at:at + hi - lo] == f.read(hi - lo), \
                    "%s: payload differs from %s" % (path, src_path)
                at += hi - lo
    return b


# --------------------------------------------------------------------------
# the journal


JOURNAL_MAGIC = b"CFSJRNL\n"


def journal_header(block_size):
    """The 24-byte journal header (src/spill/journal_i.h): magic, version 1, block size."""
    return JOURNAL_MAGIC + struct.pack("<IIQ", 1, 0, block_size)


def journal_record(obj, index, etag_hash, cost, add=True):
    """One 32-byte journal record (src/spill/journal_i.h), its 24-bit XXH3 check included."""
    body = struct.pack("<QQQIB", obj, index, etag_hash, cost, 1 if add else 0)
    return body + struct.pack("<I", xxhash.xxh3_64_intdigest(body) & 0xffffff)[:3]
