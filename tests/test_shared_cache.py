"""The shared tier on memcached (--shared-cache, issue 17): real memcached
servers on 127.0.0.1 (the memcached fixture), two mounts of one nginx URL
with their own cache directories standing in for two nodes. Every read is
checked byte for byte against the source; nginx's access log tells which
chunk bytes each node caused."""
import hashlib
import mmap
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from pymemcache.client.base import Client

import formats
from cfsutil import (MiB, data_dir, index_chunks, run_chunkfs, run_with_deadline, scaled,
                     sha256_bytes, shared_cache_arg, shared_keys, source_sha256, vm_hwm,
                     wait_for)
from spillutil import DuSampler, check_all, open_direct, read_direct

BLOCK = MiB
# Daemon RSS above the memory cap: as test_memcap.py allows, plus the shared tier's
# store queue (16 MiB) and the lookup threads.
OVERHEAD = 64 * MiB + 16 * MiB


def blocks_of(chunks):
    return sum(-(-size // BLOCK) for _, size in chunks)


def wait_stores(m, expected):
    """Wait until node m has stored, failed or dropped expected blocks; all must be stored."""
    def settled():
        st = m.stats()
        done = st["shared_stores"] + st["shared_store_failures"] + st["shared_store_drops"]
        return st if done >= expected else None
    st = wait_for(settled, scaled(30), "%d blocks stored in the shared tier" % expected)
    assert (st["shared_stores"], st["shared_store_failures"], st["shared_store_drops"]) == \
        (expected, 0, 0), st
    return st


def read_storing(m, src, chunks):
    """Read the chunks from node m (O_DIRECT, byte-exact), waiting after every 8 MiB
    until the blocks read so far are stored: a reader faster than the store threads would
    have blocks dropped (counted, by design), which the next node would then fetch."""
    done = 0
    for name, size in chunks:
        def settle(bytes_read, base=done):
            wait_stores(m, base + bytes_read // BLOCK)
        got = read_direct_steps(m.file(name), size, 8 * MiB, settle)
        assert got == source_sha256(os.path.join(src, name)), "WRONG BYTES in %s" % name
        done += blocks_of([(name, size)])
    wait_stores(m, done)


def chunk_requests(requests, names):
    """The requests of the access log entries given that carried bytes of the chunks named."""
    paths = {"/" + n for n in names}
    return [r["request"] for r in requests
            if r["request"].split(" ")[1] in paths and int(r["body_bytes_sent"]) > 0]


def etag_of(url):
    """The ETag header nginx sends for url, as sent (quotes included)."""
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as r:
        return r.headers["ETag"]


def read_direct_steps(path, size, every, step):
    """sha256 of path read with O_DIRECT preads of 1 MiB, calling step(bytes read) each
    time another `every` bytes are read."""
    h, buf, total = hashlib.sha256(), mmap.mmap(-1, MiB), 0
    fd = open_direct(path)
    try:
        for _ in range(size // MiB + 2):
            if total and total % every == 0:
                step(total)
            n = os.preadv(fd, [buf], total)
            if not n:
                break
            h.update(memoryview(buf)[:n])
            total += n
    finally:
        os.close(fd)
        buf.close()
    assert total == size
    return h.hexdigest()


def test_second_node_reads_from_the_shared_tier(nginx, memcached, mount, big_dataset, tmp_path,
                                                sanitized):
    """Node 1 reads the dataset (256 MiB; one 64 MiB chunk under the sanitizers) and stores
    every block; node 2 then reads it byte-exact without one chunk byte from nginx, its
    memory and disk caps holding (RSS and du sampled) on both nodes. Node 1 reads without
    readahead, one block request at a time: a remote that delivers faster than the tier's
    store threads send has blocks dropped (counted), which node 2 would then fetch."""
    servers = memcached(3, memory_mb=256)
    ngx = nginx(big_dataset)
    chunks = index_chunks(big_dataset)[:1 if sanitized else 4]
    names = [n for n, _ in chunks]
    arg = shared_cache_arg(servers)
    caps = {"mem": 64 * MiB, "disk": 32 * MiB}
    for node in (1, 2):
        cache = tmp_path / ("node%d" % node)
        m = mount(ngx.url, arg, "--cache-dir=%s" % cache, "--mem-cache=64M", "--disk-cache=32M",
                  *(["--readahead=0"] if node == 1 else []))
        before = len(ngx.requests())
        with DuSampler(str(cache), caps["disk"], m) as sampler:
            if node == 1:
                read_storing(m, big_dataset, chunks)
            else:
                check_all(m, big_dataset, names)
            sampler.drop_mount()
        sampler.check()
        if not sanitized:
            assert vm_hwm(m.pid) < caps["mem"] + OVERHEAD, "node %d peak RSS %.1f MiB" % (
                node, vm_hwm(m.pid) / MiB)
        if node == 1:
            continue
        assert chunk_requests(ngx.requests()[before:], names) == [], \
            "node 2 fetched chunk bytes from the remote"
        st = m.stats()
        # a readahead block evicted before it was read is looked up again: at least once each
        assert st["shared_hits"] >= blocks_of(chunks) and st["shared_misses"] == 0, st
        assert st["shared_bytes_read"] >= sum(size for _, size in chunks)
        assert st["shared_hit_ratio"] == 1.0 and st["shared_checksum_failures"] == 0


def first_node(nginx, memcached, mount, src):
    """Three memcached servers and node 1, which has read src (byte-exact) and stored
    every block: (servers, the nginx serving src, its chunks, the --shared-cache
    argument)."""
    servers = memcached(3)
    ngx = nginx(src)
    chunks = index_chunks(src)
    arg = shared_cache_arg(servers)
    node1 = mount(ngx.url, arg, "--disk-cache=0")
    check_all(node1, src)
    wait_stores(node1, blocks_of(chunks))
    return servers, ngx, chunks, arg


def test_server_killed_mid_read(nginx, memcached, mount, big_dataset, tmp_path):
    """One of three servers killed (SIGKILL, by PID) while node 2 reads: every byte is
    right, its keys come from the remote, the others' from the tier."""
    servers = memcached(3, memory_mb=128)
    ngx = nginx(big_dataset)
    name, size = index_chunks(big_dataset)[0]
    arg = shared_cache_arg(servers)
    node1 = mount(ngx.url, arg, "--disk-cache=0", "--mem-cache=64M", "--readahead=0")
    read_storing(node1, big_dataset, [(name, size)])
    node2 = mount(ngx.url, arg, "--disk-cache=0", "--mem-cache=32M")

    def kill(bytes_read):
        if servers[1].proc.poll() is None:
            servers[1].proc.kill()
            servers[1].proc.wait(timeout=10)
    got = read_direct_steps(node2.file(name), size, size // 4 // MiB * MiB, kill)
    assert got == source_sha256(os.path.join(big_dataset, name)), "WRONG BYTES in %s" % name
    st = node2.stats()
    assert st["read_errors"] == 0
    assert st["shared_hits"] > 0 and st["shared_misses"] > 0, st


def test_server_that_never_answers(nginx, memcached, mount, small):
    """A server that accepts connections and never answers (a socket of the test's own
    that never reads): every read completes within a bound of the timeouts plus the
    remote's time, with the right bytes, and the timeouts are counted."""
    live = memcached(1)[0]
    hung = socket.socket()
    try:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        arg = shared_cache_arg([live, "127.0.0.1:%d" % hung.getsockname()[1]])
        m = mount(nginx(small).url, arg, "--shared-cache-timeout=100", "--disk-cache=0")
        run_with_deadline(lambda: check_all(m, small), scaled(20), "reads past a hung server")
        st = m.stats()
        assert st["read_errors"] == 0 and st["shared_timeouts"] > 0, st
    finally:
        hung.close()


def test_bad_values_are_refused(nginx, memcached, mount, small):
    """Values overwritten with garbage, truncated, and another object's value under the
    right key (set on every server, as ketama decides which one is asked): each is
    refused and counted, its block comes from the remote, the rest from the tier."""
    servers, ngx, chunks, arg = first_node(nginx, memcached, mount, small)
    keys = [shared_keys(ngx.url + n, etag_of(ngx.url + n), size, BLOCK, 0)[0]
            for n, size in chunks[:4]]
    clients = [Client(("127.0.0.1", s.port), timeout=10, connect_timeout=10) for s in servers]
    try:
        values = [next(v for v in (c.get(k) for c in clients) if v is not None) for k in keys]
        for c in clients:
            c.set(keys[0], os.urandom(len(values[0])))
            c.set(keys[1], values[1][:-1])
            c.set(keys[2], values[3])
    finally:
        for c in clients:
            c.close()
    before = len(ngx.requests())
    node2 = mount(ngx.url, arg, "--disk-cache=0")
    check_all(node2, small)
    st = node2.stats()
    assert (st["shared_checksum_failures"], st["shared_misses"], st["shared_hits"]) == \
        (3, 3, len(chunks) - 3), st
    fetched = chunk_requests(ngx.requests()[before:], [n for n, _ in chunks])
    assert sorted(r.split(" ")[1] for r in fetched) == ["/" + n for n, _ in chunks[:3]], fetched


def test_changed_object_does_not_use_old_blocks(nginx, memcached, mount, small):
    """An object rewritten on the server (another ETag) between two mounts: the second
    mount reads its new bytes, with no shared hit for it."""
    servers, ngx, chunks, arg = first_node(nginx, memcached, mount, small)
    path = os.path.join(small, chunks[0][0])
    with open(path, "rb") as f:
        data = f.read()
    old_etag = etag_of(ngx.url + chunks[0][0])
    with open(path, "wb") as f:
        f.write(data[::-1])
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
    assert etag_of(ngx.url + chunks[0][0]) != old_etag
    node2 = mount(ngx.url, arg, "--disk-cache=0")
    check_all(node2, small, [n for n, _ in chunks[1:]])
    assert read_direct(node2.file(chunks[0][0]), len(data)) == sha256_bytes(data[::-1]), \
        "WRONG BYTES in the changed %s" % chunks[0][0]
    st = node2.stats()
    assert (st["shared_hits"], st["shared_misses"]) == (len(chunks) - 1, 1), st


def test_bad_server_list_refused(chunkfs_bin, small, tmp_path):
    """A --shared-cache value that is not memcached://HOST:PORT[,...] fails the mount at
    once, naming the option."""
    os.mkdir(tmp_path / "mnt")
    for value in ("http://127.0.0.1:11211", "memcached://", "memcached://host",
                  "memcached://host:0", "memcached://host:99999"):
        r = run_chunkfs(chunkfs_bin, ["-f", "--disk-cache=0", "--shared-cache=" + value,
                                      "http://127.0.0.1:9/", str(tmp_path / "mnt")])
        assert r.returncode != 0 and "--shared-cache" in r.stderr, (value, r.stderr)


def test_decompressed_blocks_are_shared(nginx, memcached, mount):
    """Blocks of .decompressed/ objects are stored as decompressed (their own keys): node 2
    reads every decompressed chunk (bytes equal to zstd -dc) from the tier, without a
    byte of the compressed chunks from nginx."""
    src = data_dir("litdata-mixed-zstd")
    servers = memcached(3)
    ngx = nginx(src)
    arg = shared_cache_arg(servers)
    names = [n for n, _ in index_chunks(src)]
    want = {n: formats.zstd_decompress(os.path.join(src, n)) for n in names}
    blocks = sum(-(-len(data) // BLOCK) for data in want.values())
    for node in (1, 2):
        before = len(ngx.requests())
        m = mount(ngx.url, arg, "--disk-cache=0")
        for n in names:
            plain = n[:-len(".zstd.bin")] + ".bin"
            with open(m.file(".decompressed", plain), "rb") as f:
                assert f.read() == want[n], "WRONG BYTES in .decompressed/%s" % plain
        if node == 1:
            wait_stores(m, blocks)
    assert chunk_requests(ngx.requests()[before:], names) == [], \
        "node 2 fetched compressed chunk bytes from the remote"
    st = m.stats()
    assert (st["shared_hits"], st["shared_misses"]) == (blocks, 0), st


def test_blocks_larger_than_16_mib_are_stored(nginx, memcached, mount, big_dataset):
    """With --block-size=32M (larger than the 16 MiB the store queue holds at least),
    node 1 stores every block of a chunk (of three blocks), none dropped, and node 2
    reads the chunk byte-exact from the tier without a chunk byte from nginx."""
    block = 32 * MiB
    servers = memcached(2, memory_mb=128)
    ngx = nginx(big_dataset)
    name, size = index_chunks(big_dataset)[0]
    arg = shared_cache_arg(servers)
    opts = ("--disk-cache=0", "--block-size=32M", "--mem-cache=128M",
            "--shared-cache-timeout=1000")
    node1 = mount(ngx.url, arg, *opts, "--readahead=0")
    # waiting for the stores after each block, as the queue holds only two
    got = read_direct_steps(node1.file(name), size, block,
                            lambda bytes_read: wait_stores(node1, bytes_read // block))
    assert got == source_sha256(os.path.join(big_dataset, name)), "WRONG BYTES in %s" % name
    wait_stores(node1, -(-size // block))
    before = len(ngx.requests())
    node2 = mount(ngx.url, arg, *opts)
    check_all(node2, big_dataset, [name])
    assert chunk_requests(ngx.requests()[before:], [name]) == [], \
        "node 2 fetched chunk bytes from the remote"


class FakeMemcached:
    """A memcached server of the test's own on a free port of 127.0.0.1: on each
    connection it reads the first binary-protocol request (memcached's
    protocol_binary.txt) and answers it with reply(server, sock, opcode, opaque, key),
    which may trickle or lie. stop() ends the replies and closes every socket; it must
    run before the mount's teardown, whose lookup threads may be reading a reply."""

    def __init__(self, reply):
        self.reply = reply
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.1)
        self.spec = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.conns, self.threads = [], []
        self.lock = threading.Lock()
        self.threads.append(threading.Thread(target=self._accept, daemon=True))
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self.lock:
                self.conns.append(conn)
                self.threads.append(t)
            t.start()

    def _serve(self, conn):
        try:
            conn.settimeout(30)
            header = recv_exact(conn, 24)
            keylen, extlen = struct.unpack(">H", header[2:4])[0], header[4]
            body = recv_exact(conn, struct.unpack(">I", header[8:12])[0])
            self.reply(self, conn, header[1], header[12:16], body[extlen:extlen + keylen])
        except OSError:
            pass

    def stop(self):
        self.stopping.set()
        self.listener.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            threads = list(self.threads)
        for t in threads:
            t.join(timeout=10)
            assert not t.is_alive(), "a fake memcached thread did not end"


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        got = conn.recv(n - len(data))
        if not got:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), n))
        data += got
    return data


def get_reply(opcode, opaque, key, value_len):
    """The header, flags and key of a hit of a get (binary protocol) whose value is
    value_len bytes."""
    return struct.pack(">BBHBBHI4sQ", 0x81, opcode, len(key), 4, 0, 0,
                       4 + len(key) + value_len, opaque, 0) + b"\0" * 4 + key


def trickle(server, conn, opcode, opaque, key):
    """A valid-looking reply sent one byte every 50 ms (shorter than the mount's
    --shared-cache-timeout), for longer than any test runs, or until stop()."""
    reply = get_reply(opcode, opaque, key, 4096) + b"x" * 4096
    for byte in reply:
        if server.stopping.wait(0.05):
            return
        conn.sendall(bytes([byte]))


def declare_huge(server, conn, opcode, opaque, key):
    """A reply declaring a value of 1 GiB, then 64 MiB of it as fast as the reader
    takes them, then the connection closed."""
    conn.sendall(get_reply(opcode, opaque, key, 1 << 30))
    junk = b"x" * MiB
    for _ in range(64):
        if server.stopping.is_set():
            return
        conn.sendall(junk)
    conn.close()


def test_server_that_trickles(nginx, mount, small):
    """A server that answers every lookup one byte every 50 ms (each byte within the
    100 ms timeout, which libmemcached restarts with each byte): every read completes
    within a bound of the lookups' total deadline (2 x 100 ms each) plus the remote's
    time, with the right bytes, the lookups ended by the deadline and counted."""
    server = FakeMemcached(trickle)
    try:
        m = mount(nginx(small).url, shared_cache_arg([server.spec]),
                  "--shared-cache-timeout=100", "--disk-cache=0")
        run_with_deadline(lambda: check_all(m, small), scaled(20), "reads past a trickling server")
        st = m.stats()
        assert st["read_errors"] == 0 and st["shared_hits"] == 0, st
        assert st["shared_timeouts"] > 0 and st["shared_misses"] >= len(index_chunks(small)), st
    finally:
        server.stop()


def test_server_declaring_a_huge_value(nginx, mount, small, sanitized):
    """A server that answers every lookup with a value declared 1 GiB long and sends
    64 MiB of it: the value is refused before it is read (the daemon's peak RSS stays
    small), and every read has the right bytes from the remote."""
    server = FakeMemcached(declare_huge)
    try:
        m = mount(nginx(small).url, shared_cache_arg([server.spec]),
                  "--shared-cache-timeout=1000", "--disk-cache=0", "--mem-cache=16M")
        run_with_deadline(lambda: check_all(m, small), scaled(20), "reads past a huge value")
        st = m.stats()
        assert st["read_errors"] == 0 and st["shared_hits"] == 0, st
        assert st["shared_checksum_failures"] > 0, st
        if not sanitized:
            assert m.vm_hwm() < 48 * MiB, "peak RSS %.1f MiB" % (m.vm_hwm() / MiB)
    finally:
        server.stop()


def test_misses_are_fetched_in_merged_ranges(nginx, memcached, mount, big_dataset):
    """With the tier on and an empty memcached, a cold sequential read of a chunk of 64
    blocks asks nginx for about as few Range requests as the same read without the tier:
    the blocks that missed in one batch of lookups are asked for as merged ranges, not
    one request per block. Bytes checked."""
    ngx = nginx(big_dataset)
    name, size = index_chunks(big_dataset)[0]
    arg = shared_cache_arg(memcached(1, memory_mb=128))
    counts = {}
    for tier in ("off", "on"):
        before = len(ngx.requests())
        m = mount(ngx.url, "--disk-cache=0", *([arg] if tier == "on" else []))
        check_all(m, big_dataset, [name])
        counts[tier] = len(chunk_requests(ngx.requests()[before:], [name]))
    blocks = blocks_of([(name, size)])
    st = m.stats()
    assert st["shared_hits"] == 0 and st["shared_misses"] >= blocks, st
    assert counts["on"] <= counts["off"] + 2 and counts["on"] <= blocks // 4, (counts, blocks)


NOOP = 0x0a


class StoresHang(FakeMemcached):
    """A memcached of the test's own that reads every request of each connection, answers
    the NOOP that ends libmemcached's mget (its quiet gets unanswered: every lookup a miss)
    until hang_lookups is set, then answers nothing, and never answers a store (a set):
    stores, then lookups, stay in flight until the mount's timeouts end them."""

    def __init__(self):
        self.hang_lookups = threading.Event()
        self.opcodes = []
        super().__init__(None)

    def _serve(self, conn):
        try:
            conn.settimeout(scaled(60))
            while not self.stopping.is_set():
                header = recv_exact(conn, 24)
                recv_exact(conn, struct.unpack(">I", header[8:12])[0])
                self.opcodes.append(header[1])
                if header[1] == NOOP and not self.hang_lookups.is_set():
                    conn.sendall(struct.pack(">BBHBBHI4sQ", 0x81, NOOP, 0, 0, 0, 0, 0,
                                             header[12:16], 0))
        except OSError:
            pass


def stores_ended(st):
    """Blocks whose store ended: sent, failed or dropped."""
    return st["shared_stores"] + st["shared_store_failures"] + st["shared_store_drops"]


def test_unmount_with_lookups_and_stores_in_flight(nginx, mount, small):
    """Unmounted while a store waits for a server that never answers it and a read's
    lookup waits for a server that no longer answers (its reader killed by PID, so the
    mount is not busy): the daemon exits within one --shared-cache-timeout plus slack,
    with status 0 and no warning or error in its log (the mount fixture checks the log)."""
    timeout_ms = 3000
    server = StoresHang()
    try:
        ngx = nginx(small)
        (first, _), (second, _) = index_chunks(small)[:2]
        m = mount(ngx.url, shared_cache_arg([server.spec]), "--disk-cache=0",
                  "--shared-cache-timeout=%d" % timeout_ms)
        check_all(m, small, [first])
        st = m.stats()
        assert st["shared_misses"] == 1 and stores_ended(st) == 0, "no store in flight: %s" % st
        server.hang_lookups.set()
        reader = subprocess.Popen([sys.executable, "-c",
                                   "import os, sys; os.pread(os.open(sys.argv[1], os.O_RDONLY), "
                                   "4096, 0)", m.file(second)])
        try:
            wait_for(lambda: m.stats()["reads_parked"] == 1, scaled(10),
                     "the read of %s parked on its lookup" % second)
            st = m.stats()
            assert st["shared_misses"] == 1 and stores_ended(st) == 0, st
        finally:
            reader.kill()
            reader.wait(timeout=scaled(10))
        start = time.monotonic()
        problems = m.unmount()
        took = time.monotonic() - start
        assert problems == [] and m.returncode == 0, (problems, m.returncode)
        assert took < timeout_ms / 1000 + scaled(5), "exit took %.1f s" % took
    finally:
        server.stop()
