"""`.items/` at volume: random items of the 256 MiB dataset fetch little more
than their own bytes, the next chunk's header is fetched ahead of an in-order
reader, listings of thousands of chunks and of a million items are whole and
streamed, concurrent readers get their own bytes."""
import json
import os
import random
import struct
import threading

import numpy as np
import pytest

import formats
import litgen
from cfsutil import SANITIZED, MiB, run_with_deadline, scaled, wait_for
from itemutil import read_bytes


def chunk_offsets(path):
    """The offsets of a LitData chunk, read from its header only."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<I", f.read(4))
        return struct.unpack("<%dI" % (n + 1), f.read(4 * (n + 1)))


class Layout:
    """Where every item of a local LitData dataset lies: item i is bytes
    [start, end) of chunk name."""

    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "index.json")) as f:
            self.index = json.load(f)
        self.items = []            # (chunk name, start, end, chunk number)
        self.chunk_first = []      # global index of each chunk's first item
        for k, c in enumerate(self.index["chunks"]):
            offs = chunk_offsets(os.path.join(root, c["filename"]))
            assert len(offs) - 1 == c["chunk_size"]
            self.chunk_first.append(len(self.items))
            self.items += [(c["filename"], a, b, k) for a, b in zip(offs, offs[1:])]
        self.names = formats.item_names(len(self.items))

    def header_size(self, k):
        return 4 + 4 * (self.index["chunks"][k]["chunk_size"] + 1)

    def data(self, i):
        name, a, b, _ = self.items[i]
        with open(os.path.join(self.root, name), "rb") as f:
            f.seek(a)
            return f.read(b - a)


@pytest.fixture(scope="module")
def big(big_dataset):
    return Layout(big_dataset)


def read_item(m, layout, i):
    return read_bytes(m.file(".items", layout.names[i]))


@pytest.mark.budget(90)
def test_random_items_fetch_little_more_than_themselves(nginx, mount, big):
    """200 random items (whole-file reads) of the 256 MiB dataset: right bytes,
    and bytes fetched <= 1.1 x their bytes + the headers of their chunks."""
    m = mount(nginx(big.root).url)
    rng = random.Random(20240610)
    picks = rng.sample(range(len(big.items)), 200)
    before = m.stats()["bytes_fetched"]
    total, chunks = 0, set()
    for i in picks:
        want = big.data(i)
        assert read_item(m, big, i) == want, "item %d" % i
        total += len(want)
        chunks.add(big.items[i][3])
    fetched = m.stats()["bytes_fetched"] - before
    headers = sum(big.header_size(k) for k in chunks)
    print("200 items: %d bytes, %d fetched, %d of headers" % (total, fetched, headers))
    assert fetched <= 1.1 * total + headers, \
        "%d bytes fetched for 200 items of %d bytes (+ %d of headers)" % (fetched, total, headers)
    assert m.stats()["read_errors"] == 0


def chunk_requests(srv, name):
    """Access-log entries of GETs of /name."""
    return [r for r in srv.requests() if r["request"].split()[1:2] == ["/" + name]
            and r["request"].startswith("GET ")]


def header_requested(srv, name):
    return any(r["range"].startswith("bytes=0-") or r["range"] in ("", "-")
               for r in chunk_requests(srv, name))


@pytest.mark.budget(60)
def test_next_chunk_header_fetched_ahead(nginx, mount, big):
    """Reading the items of chunk 0 in order (from its first), the header of
    chunk 1 is fetched before the reader opens an item of chunk 1."""
    srv = nginx(big.root)
    m = mount(srv.url)
    names = [c["filename"] for c in big.index["chunks"]]
    first1 = big.chunk_first[1]
    assert read_item(m, big, 0) == big.data(0)
    early = header_requested(srv, names[1])
    for i in range(1, first1):       # every item of chunk 0, in order
        assert read_item(m, big, i) == big.data(i), "item %d" % i
    wait_for(lambda: header_requested(srv, names[1]), scaled(10),
             "a request of %s from byte 0 (its header) while chunk 0 is read in order"
             % names[1])
    st = m.stats()
    assert st["chunk_headers"] >= 2
    assert read_item(m, big, first1) == big.data(first1)
    assert read_item(m, big, first1 + 1) == big.data(first1 + 1)
    if early:
        pytest.skip("chunk 1's header was fetched before chunk 0 was read in order "
                    "(eagerly): nothing to tell about the prefetch")


@pytest.mark.budget(60)
def test_concurrent_readers(nginx, mount, big):
    """8 threads read different items (whole files, 25 each) at once."""
    m = mount(nginx(big.root).url)
    picks = random.Random(8).sample(range(len(big.items)), 200)
    errors = []
    barrier = threading.Barrier(8)

    def worker(ids):
        try:
            barrier.wait(timeout=scaled(10))
            for i in ids:
                with open(m.file(".items", big.names[i]), "rb") as f:
                    got = f.read()
                if got != big.data(i):
                    errors.append("item %d: %d bytes differ" % (i, len(got)))
            leaf = read_bytes(m.file(".items", big.names[ids[0]] + ".d", "1.bin"))
            if leaf != big.data(ids[0])[16:]:
                errors.append("leaf 1 of item %d differs" % ids[0])
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("%r" % e)

    threads = [threading.Thread(target=worker, args=(picks[k::8],), daemon=True)
               for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(60))
        assert not t.is_alive(), "a reader thread is stuck"
    assert not errors, "\n".join(errors[:20])
    assert m.stats()["read_errors"] == 0


# --------------------------------------------------------------------------
# listings


def write_tiny_dataset(out, chunk_sizes, seed, payload=(0, 40)):
    """A LitData dataset of len(chunk_sizes) chunks of tiny ["int", "bytes"]
    items; returns ([(chunk name, [item bytes])], total items)."""
    rng = random.Random(seed)
    entries, chunks, index = [], [], 0
    for k, count in enumerate(chunk_sizes):
        items = [(struct.pack("<q", index + j), rng.randbytes(rng.randint(*payload)))
                 for j in range(count)]
        index += count
        data = litgen.encode_chunk(items)
        name = "chunk-0-%d.bin" % k
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        entries.append({"chunk_bytes": len(data), "chunk_size": count, "dim": None,
                        "filename": name})
        chunks.append((name, formats.litdata_items(data)))
    config = {"chunk_bytes": 1 << 20, "chunk_size": None, "compression": None,
              "data_format": ["int", "bytes"], "data_spec": None, "encryption": None,
              "item_loader": "PyTreeLoader"}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"chunks": entries, "config": config, "updated_at": "0"}, f)
    return chunks, index


@pytest.fixture(scope="module")
def many_chunks(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("many-chunks"))
    rng = random.Random(2000)
    sizes = [rng.randint(1, 5) for _ in range(2000)]
    chunks, total = write_tiny_dataset(out, sizes, seed=2001)
    return out, chunks, total


@pytest.mark.budget(90)
def test_listing_of_2000_chunks(nginx, mount, many_chunks):
    """.items/ of a dataset of 2000 small chunks lists every item, in order,
    and the ls -l-style stat of every entry gives the item's size."""
    src, chunks, total = many_chunks
    m = mount(nginx(src).url)
    sizes = [len(it) for _, items in chunks for it in items]
    names = formats.item_names(total)
    assert len(names[0]) == len(str(total - 1))

    def listing():
        out = []
        with os.scandir(m.file(".items")) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    out.append((e.name, None))
                else:
                    out.append((e.name, e.stat(follow_symlinks=False).st_size))
        return out

    got = run_with_deadline(listing, scaled(60), "ls -l of .items")
    want = [x for n, s in zip(names, sizes) for x in ((n, s), (n + ".d", None))]
    assert len(got) == len(want)
    assert got == want
    flat = [it for _, items in chunks for it in items]
    for i in [0, 1, total // 3, total - 2, total - 1]:
        assert read_bytes(m.file(".items", names[i])) == flat[i]


MILLION_CHUNKS = 100
MILLION_PER_CHUNK = 10000


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    """A LitData dataset of 100 chunks of 10,000 one-leaf items of 1 byte
    (1,000,000 items; 9 MB of chunks), written with numpy."""
    out = str(tmp_path_factory.mktemp("million"))
    n = MILLION_PER_CHUNK
    header = 4 + 4 * (n + 1)
    offsets = (header + 5 * np.arange(n + 1, dtype=np.uint32)).astype("<u4")
    g = np.random.default_rng(1000000)
    entries = []
    for k in range(MILLION_CHUNKS):
        body = np.empty((n, 5), dtype=np.uint8)
        body[:, 0:4] = np.frombuffer(struct.pack("<I", 1), dtype=np.uint8)
        body[:, 4] = g.integers(0, 256, n, dtype=np.uint8)
        data = struct.pack("<I", n) + offsets.tobytes() + body.tobytes()
        name = "chunk-0-%d.bin" % k
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        entries.append({"chunk_bytes": len(data), "chunk_size": n, "dim": None,
                        "filename": name})
    config = {"chunk_bytes": 1 << 20, "chunk_size": n, "compression": None,
              "data_format": ["bytes"], "data_spec": None, "encryption": None,
              "item_loader": "PyTreeLoader"}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"chunks": entries, "config": config, "updated_at": "0"}, f)
    return out


@pytest.mark.budget(120)
def test_listing_of_a_million_items_is_streamed(nginx, mount, million):
    """os.scandir of .items/ with 1,000,000 items returns every name in order
    while the daemon's peak RSS grows by less than 64 MiB."""
    total = MILLION_CHUNKS * MILLION_PER_CHUNK
    # Block memory faulted in ahead would grow the peak too: what is measured is the listing's.
    m = mount(nginx(million).url, "--lazy-memory")
    assert os.path.exists(m.file(".items", "000000"))
    hwm0 = m.vm_hwm()

    def listing():
        count, bad = 0, None
        with os.scandir(m.file(".items")) as it:
            for e in it:
                want = "%06d" % (count // 2) + (".d" if count % 2 else "")
                if e.name != want and bad is None:
                    bad = (count, e.name, want)
                count += 1
        return count, bad

    count, bad = run_with_deadline(listing, scaled(100), "scandir of 1,000,000 items")
    assert bad is None, "entry %d is %r, want %r" % bad
    assert count == 2 * total
    growth = m.vm_hwm() - hwm0
    print("peak RSS growth listing 1,000,000 items: %.1f MiB%s" % (
        growth / MiB, " (not asserted: sanitizer build)" if SANITIZED else ""))
    if not SANITIZED:
        assert growth < 64 * MiB, "the daemon's peak RSS grew by %d MiB listing the items" % (
            growth >> 20)
    with open(os.path.join(million, "chunk-0-57.bin"), "rb") as f:
        f.seek(4 + 4 * (MILLION_PER_CHUNK + 1) + 5 * 1234)
        want = f.read(5)
    assert read_bytes(m.file(".items", "%06d" % (57 * MILLION_PER_CHUNK + 1234))) == want
    last = read_bytes(m.file(".items", "999999"))
    with open(os.path.join(million, "chunk-0-%d.bin" % (MILLION_CHUNKS - 1)), "rb") as f:
        assert last == f.read()[-5:]
