"""zstd datasets: `.decompressed/` equals `zstd -dc`, reads like a plain dataset
to a loader, items of a big compressed chunk stream, a corrupt frame fails
cleanly (EIO, never wrong bytes)."""
import errno
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import formats
import litgen
from cfsutil import MiB, data_dir, scaled, sha256_file
from itemutil import errno_of, errname, read_bytes, read_until_error

ZSTD_DATASETS = ["litdata-mixed-zstd", "mds-zstd"]


@pytest.fixture(scope="module")
def server(module_nginx):
    return module_nginx(data_dir(""))


def plain_index(name):
    """The index.json .decompressed/ must show for fixture name."""
    index = formats.load_index(data_dir(name))
    if formats.is_mds(index):
        for shard in index["shards"]:
            shard["compression"] = None
            shard["zip_data"] = None
        return index, [s["raw_data"]["basename"] for s in index["shards"]]
    index["config"]["compression"] = None
    for chunk in index["chunks"]:
        assert chunk["filename"].endswith(".zstd.bin")
        chunk["filename"] = chunk["filename"][:-len(".zstd.bin")] + ".bin"
    return index, [c["filename"] for c in index["chunks"]]


def compressed_names(name):
    index = formats.load_index(data_dir(name))
    if formats.is_mds(index):
        return [s["zip_data"]["basename"] for s in index["shards"]]
    return [c["filename"] for c in index["chunks"]]


@pytest.mark.parametrize("name", ZSTD_DATASETS)
def test_decompressed_dir(mount, server, name):
    """.decompressed/: index.json (compression null, plain names) and one file
    per chunk equal to zstd -dc of the raw file; the raw files stay as they are."""
    m = mount(server.url + name + "/")
    want_index, plain = plain_index(name)
    d = m.file(".decompressed")
    assert sorted(os.listdir(d)) == sorted(["index.json"] + plain)
    raw_index = read_bytes(m.file(".decompressed", "index.json"))
    assert os.stat(m.file(".decompressed", "index.json")).st_size == len(raw_index)
    assert json.loads(raw_index) == want_index
    for zname, pname in zip(compressed_names(name), plain):
        want = formats.zstd_decompress(os.path.join(data_dir(name), zname))
        path = os.path.join(d, pname)
        assert os.stat(path).st_size == len(want), pname
        assert read_bytes(path) == want, pname
        assert sha256_file(m.file(zname)) == sha256_file(os.path.join(data_dir(name), zname))
    # index.json at the top is the raw one, byte for byte
    assert read_bytes(m.file("index.json")) == read_bytes(os.path.join(data_dir(name),
                                                                       "index.json"))
    st = m.stats()
    assert st["decompressed_bytes"] > 0 and st["read_errors"] == 0


# A LitData-style reader, run in a child process (a failed page fault of the
# mapping is a SIGBUS, which must fail the test, not kill pytest): json index,
# each chunk opened read-only and mmapped, uint32 count and offsets, items
# sliced, PyTree leaves split by their uint32 sizes. Prints JSON:
# [[int leaf, sha256 of the item, [sha256 of each leaf]], ...].
LOADER = r"""
import hashlib, json, mmap, os, struct, sys
import numpy as np
root = sys.argv[1]
with open(os.path.join(root, "index.json"), "r") as f:
    index = json.load(f)
config = index["config"]
assert not config["compression"], config
nleaves = len(config["data_format"])
out = []
for chunk in index["chunks"]:
    fd = os.open(os.path.join(root, chunk["filename"]), os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    with mm:
        assert len(mm) == chunk["chunk_bytes"], (chunk, len(mm))
        (count,) = struct.unpack("<I", mm[:4])
        assert count == chunk["chunk_size"], (chunk, count)
        offsets = np.frombuffer(mm[4:4 + 4 * (count + 1)], dtype="<u4")
        for i in range(count):
            item = mm[int(offsets[i]):int(offsets[i + 1])]
            sizes = np.frombuffer(item[:4 * nleaves], dtype="<u4")
            leaves, pos = [], 4 * nleaves
            for s in sizes:
                leaves.append(item[pos:pos + int(s)])
                pos += int(s)
            assert pos == len(item), (chunk, i)
            key = int(np.frombuffer(leaves[0], dtype="<i8")[0])
            out.append([key, hashlib.sha256(item).hexdigest(),
                        [hashlib.sha256(l).hexdigest() for l in leaves]])
json.dump(out, sys.stdout)
"""


def test_loader_reads_decompressed_dir(mount, server):
    """A LitData-style reader (mmap, read-only) pointed at
    litdata-mixed-zstd/.decompressed gets the 150 items of litdata-mixed."""
    m = mount(server.url + "litdata-mixed-zstd/")
    try:
        r = subprocess.run([sys.executable, "-c", LOADER, m.file(".decompressed")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=scaled(60))
    except subprocess.TimeoutExpired:
        pytest.fail("the loader did not finish within %d s" % scaled(60))
    assert r.returncode == 0, "the loader failed (%s):\n%s\n---- log ----\n%s" % (
        "SIGBUS: a page of the mapping could not be read" if r.returncode == -7
        else "exit %d" % r.returncode, r.stderr.decode(errors="replace")[-3000:],
        m.read_log()[-3000:])
    got = {key: (item, leaves) for key, item, leaves in json.loads(r.stdout)}
    want = {int.from_bytes(i.files[0][1], "little", signed=True): i
            for i in formats.dataset_items(data_dir("litdata-mixed"))}
    assert sorted(got) == sorted(want) == list(range(150))
    for key, (item, leaves) in got.items():
        assert item == hashlib.sha256(want[key].data).hexdigest(), \
            "item with int leaf %d differs" % key
        assert leaves == [hashlib.sha256(x).hexdigest()
                          for x in formats.pytree_leaves(want[key].data, 7)]


def test_mds_reader_reads_decompressed_dir(mount, server):
    """An MDS-style reader (index.json, raw_data basenames, offsets) pointed at
    mds-zstd/.decompressed gets the 200 samples of mds-plain, in order."""
    m = mount(server.url + "mds-zstd/")
    root = m.file(".decompressed")
    with open(os.path.join(root, "index.json")) as f:
        index = json.load(f)
    samples = []
    for shard in index["shards"]:
        assert shard["compression"] is None and shard["zip_data"] is None
        with open(os.path.join(root, shard["raw_data"]["basename"]), "rb") as f:
            data = f.read()
        assert len(data) == shard["raw_data"]["bytes"]
        n = struct.unpack_from("<I", data)[0]
        assert n == shard["samples"]
        offsets = struct.unpack_from("<%dI" % (n + 1), data, 4)
        samples += [data[a:b] for a, b in zip(offsets, offsets[1:])]
    assert samples == [i.data for i in formats.dataset_items(data_dir("mds-plain"))]


# --------------------------------------------------------------------------
# one big compressed chunk, streamed


BIG_UNCOMPRESSED = 32 * MiB


@pytest.fixture(scope="module")
def big_zstd(tmp_path_factory):
    """A LitData dataset of one 32 MiB chunk of compressible items (2 bits of
    entropy a byte), compressed with the zstd CLI as LitData lays it out."""
    out = tmp_path_factory.mktemp("big-zstd")
    g = np.random.default_rng(20240607)
    rng_sizes = g.integers(64 << 10, 256 << 10, 1000)
    items, total, i = [], 4, 0
    while total < BIG_UNCOMPRESSED:
        size = int(rng_sizes[i])
        body = (g.integers(0, 4, size, dtype=np.uint8) + ord("a")).tobytes()
        items.append((struct.pack("<q", i), body))
        total += 4 + 8 + 8 + size
        i += 1
    plain = litgen.encode_chunk(items)
    plain_path = out / "plain.bin"
    plain_path.write_bytes(plain)
    data = out / "data"
    data.mkdir()
    subprocess.run(["zstd", "-q", "-3", str(plain_path), "-o", str(data / "chunk-0-0.zstd.bin")],
                   check=True, timeout=60)
    config = {"chunk_bytes": 64 << 20, "chunk_size": None, "compression": "zstd",
              "data_format": ["int", "bytes"], "data_spec": None, "encryption": None,
              "item_loader": "PyTreeLoader"}
    index = {"chunks": [{"chunk_bytes": len(plain), "chunk_size": len(items), "dim": None,
                         "filename": "chunk-0-0.zstd.bin"}],
             "config": config, "updated_at": "0"}
    (data / "index.json").write_text(json.dumps(index))
    return {"dir": str(data), "plain": plain, "items": formats.litdata_items(plain),
            "compressed": os.path.getsize(data / "chunk-0-0.zstd.bin")}


@pytest.mark.budget(60)
def test_item_of_big_compressed_chunk_streams(nginx, mount, big_zstd):
    """Item 0 of a 32 MiB compressed chunk served at 2 MiB/s is answered after
    a small part of the frame arrived; a late item of the chunk reads right too."""
    items = big_zstd["items"]
    compressed = big_zstd["compressed"]
    assert compressed > 6 * MiB
    m = mount(nginx(big_zstd["dir"], limit_rate="2m").url)
    names = formats.item_names(len(items))
    t0 = time.monotonic()
    got = read_bytes(m.file(".items", names[0]))
    elapsed = time.monotonic() - t0
    st = m.stats()
    assert got == items[0]
    assert st["bytes_fetched"] < compressed / 4, \
        "%d bytes fetched (%.1f s) to answer item 0 of a %d-byte frame" % (
            st["bytes_fetched"], elapsed, compressed)
    last = len(items) - 1
    late = read_bytes(m.file(".items", names[last]), timeout=60)
    assert late == items[last]
    leaves = formats.pytree_leaves(items[last], 2)
    assert read_bytes(m.file(".items", names[last] + ".d", "1.bin")) == leaves[1]
    assert m.stats()["decompressed_bytes"] >= len(big_zstd["plain"]) - len(items[last])


# --------------------------------------------------------------------------
# a corrupt frame


CORRUPT_CHUNK = "chunk-0-3.zstd.bin"      # the 4th chunk: items 48..63


def corrupt_copy(tmp_path):
    """A copy of litdata-mixed-zstd whose CORRUPT_CHUNK has 64 bytes flipped,
    at the middle or the first place after it where zstd -dc then fails
    without writing a wrong byte (the frame has no checksum: flipped literals
    alone decode silently). Returns (dir, corrupted bytes, the right
    decompressed bytes, how many of them zstd -dc still wrote)."""
    src = tmp_path / "dataset"
    shutil.copytree(data_dir("litdata-mixed-zstd"), src)
    path = src / CORRUPT_CHUNK
    original = path.read_bytes()
    truth = formats.zstd_decompress(str(path))
    for pos in range(len(original) // 2, len(original) - 64, 97):
        data = bytearray(original)
        for k in range(pos, pos + 64):
            data[k] ^= 0xA5
        path.write_bytes(bytes(data))
        r = subprocess.run(["zstd", "-dc", "-q", str(path)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0 and truth.startswith(r.stdout):
            return src, bytes(data), truth, len(r.stdout)
    pytest.fail("no corruption of %s that zstd -dc detects" % CORRUPT_CHUNK)


@pytest.mark.log_allow(r"^\.decompressed/chunk-[\d-]+\.bin bytes \d+-\d+: chunk-[\d-]+\.zstd\.bin: bad zstd data near compressed byte \d+: .*; EIO from here on \(EIO\)$")
def test_corrupt_zstd_frame(nginx, mount, tmp_path):
    """Items of the corrupt chunk past what zstd -dc can decode give EIO (the
    others EIO or their right bytes, never wrong ones; the fixture's frames
    are one block, so here that is all of them); so does its .decompressed
    file past the corruption; a log line names the chunk; the other chunks'
    items read right; the raw file reads whole."""
    src, corrupted, truth, decodable = corrupt_copy(tmp_path)
    index = formats.load_index(str(src))
    chunk_names = [c["filename"] for c in index["chunks"]]
    k = chunk_names.index(CORRUPT_CHUNK)
    first = sum(c["chunk_size"] for c in index["chunks"][:k])
    count = index["chunks"][k]["chunk_size"]
    bad = set(range(first, first + count))
    offsets = formats.litdata_offsets(truth)
    items = formats.dataset_items(data_dir("litdata-mixed-zstd"))   # the uncorrupted ones
    names = formats.item_names(len(items))
    m = mount(nginx(str(src)).url)
    problems = []
    for i in sorted(bad):
        path = m.file(".items", names[i])
        got, err = read_until_error(path)
        if err == 0:
            if got != items[i].data:
                problems.append("item %d: %d wrong bytes served" % (i, len(got)))
            elif offsets[i - first + 1] > decodable:
                problems.append("item %d (past the corruption) read without error" % i)
        elif err != errno.EIO:
            problems.append("item %d: %s (want EIO)" % (i, errname(err)))
        elif not items[i].data.startswith(got):
            problems.append("item %d: wrong bytes before the error" % i)
    assert not problems, "\n".join(problems)
    # the decompressed file: a prefix of the truth, then EIO
    plain = m.file(".decompressed", CORRUPT_CHUNK.replace(".zstd.bin", ".bin"))
    got, err = read_until_error(plain)
    assert err == errno.EIO, "reading %s to the end: %s (want EIO)" % (plain, errname(err))
    assert truth.startswith(got), "wrong bytes before the error in " + plain
    # the rest of the dataset is unaffected
    for i, item in enumerate(items):
        if i not in bad:
            assert read_bytes(m.file(".items", names[i])) == item.data, "item %d" % i
    assert read_bytes(m.file(CORRUPT_CHUNK)) == corrupted
    log = m.read_log()
    assert "chunk-0-3" in log, "no log line names the chunk:\n" + log
    st = m.stats()
    assert st["read_errors"] >= 1
    assert m.alive()


@pytest.mark.log_allow(r"^\.decompressed/chunk-[\d-]+\.bin bytes \d+-\d+: chunk-[\d-]+\.zstd\.bin: bad zstd data near compressed byte \d+: .*; EIO from here on \(EIO\)$")
def test_corrupt_zstd_frame_deadline(nginx, mount, tmp_path):
    """The failing reads end at once, again and again (no hang, no retry storm)."""
    src, _, _, _ = corrupt_copy(tmp_path)
    m = mount(nginx(str(src)).url)
    for attempt in range(3):
        t0 = time.monotonic()
        e = errno_of(lambda: read_bytes(m.file(".items", "063")), "read of item 63")
        assert e == errno.EIO, errname(e)
        assert time.monotonic() - t0 < scaled(5)


def words_dataset(out, chunks=2, chunk_bytes=2 * MiB, seed=99):
    """A zstd LitData dataset (zstd CLI, no checksum, as LitData writes it) of
    word-salad items: many 128 KiB blocks a chunk. Returns (dir, [plain chunk])."""
    g = np.random.default_rng(seed)
    words = [bytes(g.integers(97, 123, int(n), dtype=np.uint8)) for n in g.integers(2, 10, 500)]
    entries, plains, index = [], [], 0
    for c in range(chunks):
        items, total = [], 4
        while total < chunk_bytes:
            body = b" ".join(words[i] for i in g.integers(0, 500, int(g.integers(4000, 12000))))
            items.append((struct.pack("<q", index), body))
            total += 4 + 8 + 8 + len(body)
            index += 1
        plain = litgen.encode_chunk(items)
        plains.append(plain)
        p = os.path.join(out, "plain-%d" % c)
        with open(p, "wb") as f:
            f.write(plain)
        name = "chunk-0-%d.zstd.bin" % c
        subprocess.run(["zstd", "-q", "-3", "--no-check", p, "-o", os.path.join(out, name)],
                       check=True, timeout=60)
        os.unlink(p)
        entries.append({"chunk_bytes": len(plain), "chunk_size": len(items), "dim": None,
                        "filename": name})
    config = {"chunk_bytes": chunk_bytes, "chunk_size": None, "compression": "zstd",
              "data_format": ["int", "bytes"], "data_spec": None, "encryption": None,
              "item_loader": "PyTreeLoader"}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"chunks": entries, "config": config, "updated_at": "0"}, f)
    return plains


@pytest.mark.log_allow(r"^\.decompressed/chunk-[\d-]+\.bin bytes \d+-\d+: chunk-[\d-]+\.zstd\.bin: bad zstd data near compressed byte \d+: .*; EIO from here on \(EIO\)$")
def test_corrupt_block_in_the_middle_of_a_frame(nginx, mount, tmp_path):
    """A frame of 17 blocks with a block in the middle corrupt: items that
    reach into that block or past it give EIO, the ones before it EIO or their
    right bytes; .decompressed/ gives a right prefix then EIO; what is served
    does not depend on the order of the reads (items first, or the
    .decompressed file first), and an item is served only if the same bytes
    of .decompressed/ are; the other chunk reads right; the raw file reads whole."""
    src = tmp_path / "words"
    src.mkdir()
    plains = words_dataset(str(src))
    path = src / "chunk-0-0.zstd.bin"
    original = path.read_bytes()
    blocks = formats.zstd_blocks(original)
    assert len(blocks) >= 10 and all(b[1] == 2 for b in blocks)
    found = None
    for pos in range(len(original) // 2, len(original) - 64, 97):
        data = bytearray(original)
        for k in range(pos, pos + 64):
            data[k] ^= 0xA5
        r = subprocess.run(["zstd", "-dc", "-q", "-"], input=bytes(data), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0 and plains[0].startswith(r.stdout):
            found = pos, bytes(data)
            break
    assert found, "no corruption that zstd -dc detects"
    pos, corrupted = found
    path.write_bytes(corrupted)
    # the block holding the first flipped byte; the CLI's blocks are 128 KiB of output each
    j = max(i for i, b in enumerate(blocks) if b[0] <= pos)
    good_end = j * formats.ZSTD_BLOCK_MAX
    assert 0 < good_end < len(plains[0])
    index = formats.load_index(str(src))
    n0 = index["chunks"][0]["chunk_size"]
    items0 = formats.litdata_items(plains[0])
    items1 = formats.litdata_items(plains[1])
    offsets0 = formats.litdata_offsets(plains[0])
    names = formats.item_names(n0 + len(items1))
    url = nginx(str(src)).url
    outcomes = {}
    for order in ["items-first", "decompressed-first"]:
        m = mount(url)
        problems = []

        def read_items():
            errs = []
            for i in range(n0):
                got, err = read_until_error(m.file(".items", names[i]))
                past = offsets0[i + 1] > good_end
                if err == 0 and got != items0[i]:
                    problems.append("item %d: wrong bytes" % i)
                elif err == 0 and past:
                    problems.append("item %d (bytes up to %d, the corrupt block starts at %d) "
                                    "read without error" % (i, offsets0[i + 1], good_end))
                elif err not in (0, errno.EIO):
                    problems.append("item %d: %s (want EIO)" % (i, errname(err)))
                elif not items0[i].startswith(got):
                    problems.append("item %d: wrong bytes before the error" % i)
                errs.append(err)
            return errs

        def read_decompressed():
            got, err = read_until_error(m.file(".decompressed", "chunk-0-0.bin"),
                                        bufsize=64 << 10)
            if err != errno.EIO:
                problems.append("reading .decompressed/chunk-0-0.bin: %s (want EIO)"
                                % errname(err))
            if not plains[0].startswith(got):
                problems.append(".decompressed/chunk-0-0.bin: wrong bytes before the error")
            return len(got)

        if order == "items-first":
            errs = read_items()
            prefix = read_decompressed()
        else:
            prefix = read_decompressed()
            errs = read_items()
        assert not problems, "%s:\n%s" % (order, "\n".join(problems))
        served = [i for i in range(n0) if errs[i] == 0]
        outcomes[order] = (served, prefix)
        for i, item in enumerate(items1):
            assert read_bytes(m.file(".items", names[n0 + i])) == item, "item %d" % (n0 + i)
        assert read_bytes(m.file(".decompressed", "chunk-0-1.bin")) == plains[1]
        assert read_bytes(m.file("chunk-0-0.zstd.bin")) == corrupted
        assert "chunk-0-0" in m.read_log(), "no log line names the chunk"
        assert m.alive() and m.stats()["read_errors"] >= 1
    report = "; ".join("%s: items %s served, .decompressed/chunk-0-0.bin gives %d bytes "
                       "then EIO" % (o, v[0] or "none", v[1]) for o, v in outcomes.items())
    for order, (served, prefix) in outcomes.items():
        for i in served:
            assert offsets0[i + 1] <= prefix, \
                "item %d served but not the same bytes of .decompressed/ (%s)" % (i, report)
    assert outcomes["items-first"] == outcomes["decompressed-first"], \
        "what is served depends on the order of the reads: " + report
