"""Seed corpora of the fuzz targets, made from the fixtures in tests/data.

    seeds.py OUT    writes OUT/fuzz_dsindex/, OUT/fuzz_chunk/, OUT/fuzz_spill/ and OUT/fuzz_tar/

fuzz_chunk inputs are: schema number (1 byte), item count n and chunk size (uint32 LE each),
then the chunk; the schema numbers are those of fuzz_chunk.c.
"""
import json
import os
import struct
import sys
import tarfile

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
CHUNK_SCHEMAS = {"litdata-mixed": 0, "litdata-tokens": 1, "mds-plain": 2}
TENSORS, ARRAYS = 3, 4


def read(*path):
    with open(os.path.join(DATA, *path), "rb") as f:
        return f.read()


def write(out, target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


def chunks(index):
    """(file name, item count) of every plain chunk an index lists."""
    if "chunks" in index:
        return [(c["filename"], c["chunk_size"]) for c in index["chunks"]]
    return [(s["raw_data"]["basename"], s["samples"]) for s in index["shards"]]


def items(chunk):
    n = struct.unpack_from("<I", chunk)[0]
    offsets = struct.unpack_from("<%dI" % (n + 1), chunk, 4)
    return [chunk[offsets[i]:offsets[i + 1]] for i in range(n)]


def fuzz_input(schema, items_):
    """A chunk of the items behind fuzz_chunk's prefix."""
    n = len(items_)
    offsets = [4 + 4 * (n + 1)]
    for item in items_:
        offsets.append(offsets[-1] + len(item))
    body = struct.pack("<%dI" % (n + 2), n, *offsets) + b"".join(items_)
    return struct.pack("<BII", schema, n, len(body)) + body


def pytree(leaves):
    return struct.pack("<%dI" % len(leaves), *map(len, leaves)) + b"".join(leaves)


def synthetic(out):
    """Items of fuzz_chunk's schemas that no fixture has, made of fixture leaves."""
    mixed = items(read("litdata-mixed", "chunk-0-0.bin"))[0]
    sizes = struct.unpack_from("<7I", mixed)
    leaves, pos = [], 28
    for size in sizes:
        leaves.append(mixed[pos:pos + size])
        pos += size
    jpeg, matrix, int16s = leaves[4], leaves[5], leaves[6]
    arr = items(read("mds-plain", "shard.00000.mds"))[0][8:24]
    # litdata TensorSerializer: the numpy leaf's layout with torch's dtype index 0 (float32)
    tensor = struct.pack("<I", 0) + matrix[4:]
    write(out, "fuzz_chunk", "tensors", fuzz_input(TENSORS, [
        pytree([tensor, int16s[:8], matrix, jpeg, int16s, int16s[:16]])]))
    # mosaicml NDArray: dynamic dtype (34: float32) and shape (1 dim, uint8); static uint16
    # dtype with a dynamic shape (2 dims); float64 (2, 3); then a JPEG and a str_int
    columns = [bytes([34, 1 << 2, 4]) + arr, bytes([2 << 2, 2, 2]) + arr[:8], arr * 3, jpeg,
               b"12345"]
    head = struct.pack("<4I", *(len(c) for i, c in enumerate(columns) if i != 2))
    write(out, "fuzz_chunk", "arrays", fuzz_input(ARRAYS, [head + b"".join(columns)]))


def spill_seeds(out):
    """fuzz_spill inputs: mode, flip (0xffff none), extents, block bytes (see fuzz_spill.c)."""
    jpeg = read("wds", "shard-000000.tar")[512:4608]
    text = b"item 31 h\xc3\xa9llo " * 50
    for name, mode, flip, extents, body in [
            ("whole-raw", 0, 0xffff, [(0, 4096)], jpeg),
            ("two-extents-zstd", 1, 0xffff, [(100, 900), (2000, 96)], text),
            ("flipped-header", 0, 30, [(0, 512)], text),
            ("flipped-payload-zstd", 1, 200, [(0, 4096)], text)]:
        head = struct.pack("<BHB", mode, flip, len(extents))
        head += b"".join(struct.pack("<HH", lo, n) for lo, n in extents)
        write(out, "fuzz_spill", name, head + body)


def main(out):
    for dataset in sorted(os.listdir(DATA)):
        if not os.path.isfile(os.path.join(DATA, dataset, "index.json")):
            continue
        text = read(dataset, "index.json")
        write(out, "fuzz_dsindex", dataset + ".json", text)
        if dataset not in CHUNK_SCHEMAS:
            continue
        schema = CHUNK_SCHEMAS[dataset]
        for name, n in chunks(json.loads(text)):
            chunk = read(dataset, name)
            head = struct.pack("<BII", schema, n, len(chunk))
            write(out, "fuzz_chunk", "%s-%s" % (dataset, name), head + chunk)
        # A short seed mutates faster.
        first = items(read(dataset, chunks(json.loads(text))[0][0]))[:3]
        write(out, "fuzz_chunk", dataset + "-first-items", fuzz_input(schema, first))
    synthetic(out)
    spill_seeds(out)
    for name in sorted(os.listdir(os.path.join(DATA, "wds"))):
        archive = read("wds", name)
        write(out, "fuzz_tar", name, archive)
        # The first 8 samples (24 members, with the GNU long names of shard 0) and an end
        # marker: a short seed.
        with tarfile.open(os.path.join(DATA, "wds", name)) as t:
            cut = t.getmembers()[24].offset
        write(out, "fuzz_tar", "head-" + name, archive[:cut] + bytes(2 * 512))


if __name__ == "__main__":
    main(sys.argv[1])
