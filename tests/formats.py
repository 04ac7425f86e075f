"""Independent parsers of the dataset formats that chunkfs shows as items.

Written from the format descriptions (tests/data/README.md, litdata's
streaming/writer.py and serializers.py, mosaicml streaming's
base/format/mds/writer.py and encodings.py), never from chunkfs's code, so
the item tests compare chunkfs against a second reading of the bytes.

LitData chunk: uint32 LE item count N, N+1 uint32 LE offsets absolute from the
start of the chunk, then the items. A PyTree item: one uint32 LE size per leaf
(data_format order), then the leaves. TokensLoader items have no per-leaf
header: the item is its one leaf (the tokens).

MDS shard: uint32 LE N, N+1 uint32 LE offsets absolute from the start of the
shard, the shard's config JSON, then the samples. A sample: one uint32 LE size
per variable-size column (column_sizes null), in column order, then every
column's bytes in column order.
"""
import io
import json
import os
import struct
import subprocess

import numpy as np


class FormatError(ValueError):
    pass


# --------------------------------------------------------------------------
# LitData


def litdata_offsets(data):
    """The N+1 offsets of a LitData chunk (bytes), checked."""
    if len(data) < 4:
        raise FormatError("chunk of %d bytes has no item count" % len(data))
    (n,) = struct.unpack_from("<I", data, 0)
    header = 4 + 4 * (n + 1)
    if len(data) < header:
        raise FormatError("chunk of %d bytes shorter than its header (%d items)" % (len(data), n))
    offsets = struct.unpack_from("<%dI" % (n + 1), data, 4)
    if offsets[0] < header:
        raise FormatError("first offset %d inside the header" % offsets[0])
    for a, b in zip(offsets, offsets[1:]):
        if b < a:
            raise FormatError("offsets decrease (%d then %d)" % (a, b))
    if offsets[-1] > len(data):
        raise FormatError("last offset %d past the end (%d)" % (offsets[-1], len(data)))
    return offsets


def litdata_header_size(data):
    (n,) = struct.unpack_from("<I", data, 0)
    return 4 + 4 * (n + 1)


def litdata_items(data):
    """The items (bytes) of a LitData chunk, in order."""
    offsets = litdata_offsets(data)
    return [bytes(data[a:b]) for a, b in zip(offsets, offsets[1:])]


def pytree_leaves(item, nleaves):
    """Split a PyTree item into its nleaves leaves (bytes)."""
    if len(item) < 4 * nleaves:
        raise FormatError("item of %d bytes shorter than its %d leaf sizes" % (len(item), nleaves))
    sizes = struct.unpack_from("<%dI" % nleaves, item, 0)
    pos = 4 * nleaves
    leaves = []
    for size in sizes:
        leaves.append(bytes(item[pos:pos + size]))
        pos += size
    if pos != len(item):
        raise FormatError("leaf sizes add up to %d, item has %d bytes" % (pos, len(item)))
    return leaves


# numpy dtypes by litdata's dtype index (litdata: _NUMPY_DTYPES_MAPPING, the
# order of numpy's sctypes). Only the unambiguous head of the table.
LITDATA_NUMPY_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                        "uint64", "float16", "float32", "float64"]


def litdata_leaf_ext(fmt):
    if fmt in ("int", "float", "bytes"):
        return "bin"
    if fmt == "str":
        return "txt"
    if fmt == "jpeg":
        return "jpg"
    if fmt in ("numpy", "tensor") or fmt.startswith(("no_header_numpy:", "no_header_tensor:")):
        return "npy"
    return "bin"


def litdata_leaf_array(fmt, leaf):
    """The numpy array a "numpy" / "no_header_numpy:N" leaf holds."""
    if fmt == "numpy":
        dtype_index, ndim = struct.unpack_from("<II", leaf, 0)
        shape = struct.unpack_from("<%dI" % ndim, leaf, 8)
        raw = leaf[8 + 4 * ndim:]
        dtype = np.dtype(LITDATA_NUMPY_DTYPES[dtype_index]).newbyteorder("<")
        arr = np.frombuffer(raw, dtype=dtype)
        return arr.reshape(shape), raw
    if fmt.startswith("no_header_numpy:"):
        dtype = np.dtype(LITDATA_NUMPY_DTYPES[int(fmt.split(":")[1])]).newbyteorder("<")
        return np.frombuffer(leaf, dtype=dtype), leaf
    raise FormatError("no array for leaf format %r" % fmt)


# --------------------------------------------------------------------------
# leaf names (docs/formats.md "Leaf names")

DICT_TYPES = ("builtins.dict", "collections.OrderedDict", "collections.defaultdict")
STEM_MAX = 255 - 1 - 16


def _spec_paths(node, path, named, bad, out):
    """Appends (path, usable) for each leaf under a torch pytree treespec JSON node."""
    if node["type"] is None:
        out.append(".".join(path) if named and not bad else None)
        return
    children = node["children_spec"]
    keys = None
    if node["type"] in DICT_TYPES:
        ctx = json.loads(node["context"])
        keys = ctx["dict_context"] if node["type"] == "collections.defaultdict" else ctx
        assert len(keys) == len(children)
    for i, child in enumerate(children):
        key = keys[i] if keys is not None else None
        is_str = isinstance(key, str)
        part = key if is_str else str(i)
        too_long = len(".".join(path + [part]).encode()) > STEM_MAX
        _spec_paths(child, path if too_long else path + [part], named or is_str,
                    bad or too_long or (keys is not None and not is_str), out)


def stem_ok(name):
    if name is None or name in ("", ".", "..") or name.isdigit():
        return False
    b = name.encode()
    return len(b) <= STEM_MAX and not any(c == 0x2f or c < 0x20 or c == 0x7f for c in b)


def leaf_stems(names, n):
    """The file name stems of n leaves given their keys (None: no key): a key when it is a
    safe name no other leaf has, else the position."""
    names = list(names) if names is not None else [None] * n
    return [names[i] if stem_ok(names[i]) and names.count(names[i]) == 1 else str(i)
            for i in range(n)]


def litdata_leaf_stems(config, n):
    """Stems of the n leaves of a LitData item, from config.data_spec (positions when it
    describes another number of leaves)."""
    spec = config.get("data_spec")
    paths = None
    if spec is not None and config.get("item_loader") != "TokensLoader":
        version, root = json.loads(spec)
        assert version == 1
        paths = []
        _spec_paths(root, [], False, False, paths)
        if len(paths) != n:
            paths = None
    return leaf_stems(paths, n)


def litdata_item_files(config, item):
    """[(file name, expected)] of the leaves of one LitData item, in leaf order.
    expected is bytes, or ("npy", array, raw data bytes)."""
    fmts = config["data_format"]
    if config.get("item_loader") == "TokensLoader":
        dtype = np.dtype(LITDATA_NUMPY_DTYPES[int(fmts[0].split(":")[1])]).newbyteorder("<")
        return [("0.npy", ("npy", np.frombuffer(item, dtype=dtype), item))]
    leaves = pytree_leaves(item, len(fmts))
    stems = litdata_leaf_stems(config, len(fmts))
    out = []
    for stem, fmt, leaf in zip(stems, fmts, leaves):
        ext = litdata_leaf_ext(fmt)
        if ext == "npy":
            arr, raw = litdata_leaf_array(fmt, leaf)
            out.append(("%s.npy" % stem, ("npy", arr, raw)))
        else:
            out.append(("%s.%s" % (stem, ext), leaf))
    return out


# --------------------------------------------------------------------------
# MDS


def mds_items(data):
    """The samples (bytes) of an MDS shard, in order (same header as LitData)."""
    return litdata_items(data)


def mds_leaf_ext(encoding):
    if encoding.startswith("ndarray"):
        return "npy"
    return {"str": "txt", "jpeg": "jpg", "png": "png", "json": "json"}.get(encoding, "bin")


def mds_columns(shard_info, sample):
    """The column values (bytes) of one MDS sample, in column order."""
    sizes = shard_info["column_sizes"]
    nvar = sum(1 for s in sizes if s is None)
    var_sizes = list(struct.unpack_from("<%dI" % nvar, sample, 0))
    pos = 4 * nvar
    cols = []
    for fixed in sizes:
        size = fixed if fixed is not None else var_sizes.pop(0)
        cols.append(bytes(sample[pos:pos + size]))
        pos += size
    if pos != len(sample):
        raise FormatError("columns add up to %d, sample has %d bytes" % (pos, len(sample)))
    return cols


def mds_item_files(shard_info, sample):
    """[(file name, expected)] of the columns of one MDS sample (see litdata_item_files)."""
    out = []
    cols = mds_columns(shard_info, sample)
    stems = leaf_stems(shard_info.get("column_names"), len(cols))
    for stem, enc, col in zip(stems, shard_info["column_encodings"], cols):
        ext = mds_leaf_ext(enc)
        if ext == "npy":
            parts = enc.split(":")
            if len(parts) != 3:
                raise FormatError("only ndarray:DTYPE:SHAPE columns are parsed here, not %r" % enc)
            shape = tuple(int(x) for x in parts[2].split(","))
            arr = np.frombuffer(col, dtype=np.dtype(parts[1]).newbyteorder("<")).reshape(shape)
            out.append(("%s.npy" % stem, ("npy", arr, col)))
        else:
            out.append(("%s.%s" % (stem, ext), col))
    return out


# --------------------------------------------------------------------------
# datasets


def zstd_decompress(path):
    """Bytes of the zstd CLI's decompression of path (the reference decoder)."""
    r = subprocess.run(["zstd", "-dc", "-q", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise FormatError("zstd -dc %s failed: %s" % (path, r.stderr.decode(errors="replace")))
    return r.stdout


class Item:
    """One item of a dataset: its global index, bytes, leaf files, chunk name."""

    def __init__(self, index, data, files, chunk):
        self.index = index
        self.data = data
        self.files = files
        self.chunk = chunk


def load_index(dataset_dir):
    with open(os.path.join(dataset_dir, "index.json"), "rb") as f:
        return json.load(f)


def is_mds(index):
    return "shards" in index


def chunk_plain_bytes(dataset_dir, name, compressed):
    path = os.path.join(dataset_dir, name)
    if compressed:
        return zstd_decompress(path)
    with open(path, "rb") as f:
        return f.read()


def dataset_items(dataset_dir):
    """Every item of the dataset in dataset_dir, in dataset order (list of Item)."""
    index = load_index(dataset_dir)
    items = []
    if is_mds(index):
        for shard in index["shards"]:
            zipped = shard.get("zip_data")
            name = zipped["basename"] if zipped else shard["raw_data"]["basename"]
            data = chunk_plain_bytes(dataset_dir, name, bool(zipped))
            samples = mds_items(data)
            if len(samples) != shard["samples"]:
                raise FormatError("%s holds %d samples, index says %d"
                                  % (name, len(samples), shard["samples"]))
            for s in samples:
                items.append(Item(len(items), s, mds_item_files(shard, s), name))
        return items
    config = index["config"]
    compressed = bool(config.get("compression"))
    for chunk in index["chunks"]:
        data = chunk_plain_bytes(dataset_dir, chunk["filename"], compressed)
        its = litdata_items(data)
        if len(its) != chunk["chunk_size"]:
            raise FormatError("%s holds %d items, index says %d"
                              % (chunk["filename"], len(its), chunk["chunk_size"]))
        for it in its:
            items.append(Item(len(items), it, litdata_item_files(config, it), chunk["filename"]))
    return items


def item_names(count):
    """The names chunkfs gives items 0..count-1: zero-padded to the width of count-1."""
    width = len(str(max(count - 1, 0)))
    return ["%0*d" % (width, i) for i in range(count)]


def check_npy_file(content, expected_array, expected_raw, what):
    """content (bytes of a .npy file) loads with numpy as expected_array, and
    its data part is exactly expected_raw."""
    assert content[:6] == b"\x93NUMPY", "%s is not a .npy file: %r" % (what, content[:16])
    arr = np.load(io.BytesIO(content), allow_pickle=False)
    assert arr.dtype == expected_array.dtype, "%s: dtype %s, want %s" % (what, arr.dtype,
                                                                        expected_array.dtype)
    assert arr.shape == expected_array.shape, "%s: shape %s, want %s" % (what, arr.shape,
                                                                        expected_array.shape)
    assert arr.tobytes() == expected_array.tobytes(), "%s: values differ" % what
    assert content.endswith(expected_raw), "%s: data part is not the leaf's bytes" % what
    assert len(content) == npy_header_len(content) + len(expected_raw), \
        "%s: %d bytes, want header + %d" % (what, len(content), len(expected_raw))
    return arr


def npy_header_len(content):
    major = content[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", content, 8)
        return 10 + hlen
    (hlen,) = struct.unpack_from("<I", content, 8)
    return 12 + hlen


# --------------------------------------------------------------------------
# zstd frames (RFC 8878): enough to find where each block starts


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_BLOCK_MAX = 128 << 10


def zstd_blocks(frame):
    """[(offset of the block header, block type, block content size, last)]
    of the first frame in frame (bytes). Block types: 0 raw, 1 RLE, 2 compressed."""
    if frame[:4] != ZSTD_MAGIC:
        raise FormatError("not a zstd frame")
    fhd = frame[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single else 1) + [0, 1, 2, 4][dict_flag]
    pos += [1 if single else 0, 2, 4, 8][fcs_flag]
    blocks = []
    while True:
        h = int.from_bytes(frame[pos:pos + 3], "little")
        last, btype, size = h & 1, (h >> 1) & 3, h >> 3
        blocks.append((pos, btype, size, bool(last)))
        pos += 3 + (1 if btype == 1 else size)
        if last:
            return blocks
