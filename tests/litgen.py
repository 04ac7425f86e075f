#!/usr/bin/env python3
"""Write a deterministic LitData dataset (chunks + index.json) for tests and the demo.

The layout is the one litdata's writer produces (streaming/writer.py): a chunk is
uint32 LE item count N, N+1 uint32 LE offsets absolute from the chunk start, then
the items; an item is one uint32 LE size per leaf, then the leaves in data_format
order. Items here have two leaves: "int" (int64 LE, the global item index) and
"bytes" (pseudo-random bytes from a seeded generator).

Usage: litgen.py OUT_DIR [--chunks N] [--chunk-bytes B] [--item-min B] [--item-max B] [--seed S]
"""
import argparse
import json
import os
import random
import struct


def chunk_items(rng, target, item_min, item_max, first_index, alphabet=None):
    """Leaves of items for one chunk of about target bytes; with alphabet (bytes),
    the "bytes" leaves are letters of it (compressible) instead of random bytes."""
    table = bytes(alphabet[i % len(alphabet)] for i in range(256)) if alphabet else None
    items, total, index = [], 4, first_index
    while total < target:
        size = rng.randint(item_min, item_max)
        leaf = rng.randbytes(size)
        items.append((struct.pack("<q", index), leaf.translate(table) if table else leaf))
        total += 4 + 8 + 8 + size
        index += 1
    return items


def encode_chunk(items):
    bodies = [struct.pack("<II", len(a), len(b)) + a + b for a, b in items]
    header_len = 4 + 4 * (len(items) + 1)
    offsets, pos = [], header_len
    for body in bodies:
        offsets.append(pos)
        pos += len(body)
    offsets.append(pos)
    return struct.pack("<I", len(items)) + struct.pack("<%dI" % len(offsets), *offsets) + b"".join(bodies)


def write_dataset(out, chunks=4, chunk_bytes=64 << 20, item_min=64 << 10, item_max=256 << 10, seed=1,
                  alphabet=None):
    """Write the dataset into out; returns the list of chunk file names. alphabet:
    see chunk_items."""
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    entries, names, index = [], [], 0
    for i in range(chunks):
        items = chunk_items(rng, chunk_bytes, item_min, item_max, index, alphabet)
        index += len(items)
        data = encode_chunk(items)
        name = "chunk-0-%d.bin" % i
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        entries.append({"chunk_bytes": len(data), "chunk_size": len(items), "dim": None, "filename": name})
        names.append(name)
    config = {"chunk_bytes": chunk_bytes, "chunk_size": None, "compression": None,
              "data_format": ["int", "bytes"], "data_spec": None, "encryption": None,
              "item_loader": "PyTreeLoader"}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"chunks": entries, "config": config, "updated_at": "0"}, f)
    return names


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--chunk-bytes", type=int, default=64 << 20)
    p.add_argument("--item-min", type=int, default=64 << 10)
    p.add_argument("--item-max", type=int, default=256 << 10)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    write_dataset(a.out, a.chunks, a.chunk_bytes, a.item_min, a.item_max, a.seed)


if __name__ == "__main__":
    main()
