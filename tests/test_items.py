"""`.items/`: every item of every fixture dataset, as the format defines it.

Each item file holds the item's serialized bytes, each NNN.d/ its leaves; the
reference is tests/formats.py, an independent parser of the chunks.
"""
import errno
import json
import os
import random
import struct
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import formats
from cfsutil import check_erofs, check_hidden, data_dir, scaled
from itemutil import check_item, errno_of, errname, read_bytes

DATASETS = ["litdata-mixed", "litdata-mixed-zstd", "litdata-tokens", "mds-plain", "mds-zstd"]


@pytest.fixture(scope="module")
def server(module_nginx):
    return module_nginx(data_dir(""))


@pytest.fixture(scope="module")
def items_of():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = formats.dataset_items(data_dir(name))
        return cache[name]
    return get


def mount_dataset(mount, server, name):
    return mount(server.url + name + "/")


@pytest.mark.parametrize("name", DATASETS)
def test_every_item(mount, server, items_of, name):
    """Names, count, readdir order, stat sizes, bytes and leaves of every item."""
    items = items_of(name)
    m = mount_dataset(mount, server, name)
    check_hidden(m.path, [".items"])
    items_dir = m.file(".items")
    st = os.stat(items_dir)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_mode & 0o222 == 0, "writable mode bits on .items: %o" % st.st_mode
    names = formats.item_names(len(items))
    want = [x for n in names for x in (n, n + ".d")]
    got = os.listdir(items_dir)
    assert len(got) == len(want), "%d entries in .items, want %d" % (len(got), len(want))
    assert got == want, "readdir order of .items differs from dataset order"
    for n, item in zip(names, items):
        check_item(items_dir, n, item)
    assert m.stats()["read_errors"] == 0


@pytest.mark.parametrize("name", ["litdata-mixed", "mds-plain"])
def test_scandir_stat_and_partial_reads(mount, server, items_of, name):
    """ls -l of .items gives every item's size; preads inside an item file
    (odd offsets, across the end) give the item's bytes."""
    items = items_of(name)
    m = mount_dataset(mount, server, name)
    names = formats.item_names(len(items))
    with os.scandir(m.file(".items")) as it:
        entries = list(it)
    sizes = {e.name: e.stat().st_size for e in entries if not e.is_dir()}
    dirs = [e.name for e in entries if e.is_dir()]
    assert sizes == {n: len(i.data) for n, i in zip(names, items)}
    assert dirs == [n + ".d" for n in names]
    for n, item in list(zip(names, items))[::7]:
        fd = os.open(m.file(".items", n), os.O_RDONLY)
        try:
            size = len(item.data)
            for off, length in [(0, 1), (1, 7), (size // 3, size // 2), (size - 5, 100),
                                (size, 10), (size + 100, 10)]:
                assert os.pread(fd, length, off) == item.data[off:off + length], (n, off, length)
        finally:
            os.close(fd)


def by_index_leaf(items):
    """{int leaf value: item} for LitData mixed items (the first leaf is an int64)."""
    out = {}
    for item in items:
        key = int.from_bytes(item.files[0][1], "little", signed=True)
        assert key not in out, "two items with int leaf %d" % key
        out[key] = item
    return out


def test_mixed_and_mixed_zstd_hold_the_same_items(mount, server):
    """The plain and the zstd LitData fixtures show the same 150 items, as a set."""
    got = {}
    for name in ["litdata-mixed", "litdata-mixed-zstd"]:
        m = mount_dataset(mount, server, name)
        d = m.file(".items")
        names = [n for n in os.listdir(d) if not n.endswith(".d")]
        assert len(names) == 150, "%s: %d items" % (name, len(names))
        got[name] = {}
        for n in names:
            key = int.from_bytes(read_bytes(os.path.join(d, n + ".d", "index.bin")), "little",
                                 signed=True)
            got[name][key] = read_bytes(os.path.join(d, n))
    assert sorted(got["litdata-mixed"]) == list(range(150))
    assert got["litdata-mixed"] == got["litdata-mixed-zstd"]


def test_mds_plain_and_zstd_hold_the_same_samples(mount, server, items_of):
    """mds-plain and mds-zstd: the same 200 samples in the same order (their
    shards split them differently)."""
    cols = {}
    for name in ["mds-plain", "mds-zstd"]:
        m = mount_dataset(mount, server, name)
        d = m.file(".items")
        names = formats.item_names(200)
        assert [n for n in os.listdir(d) if not n.endswith(".d")] == names
        cols[name] = []
        for n in names:
            leaf_dir = os.path.join(d, n + ".d")
            cols[name].append({leaf: read_bytes(os.path.join(leaf_dir, leaf))
                               for leaf in os.listdir(leaf_dir)})
    assert cols["mds-plain"] == cols["mds-zstd"]
    ids = [int.from_bytes(c["id.bin"], "little", signed=True) for c in cols["mds-plain"]]
    assert ids == [int.from_bytes(i.files[2][1], "little", signed=True)
                   for i in items_of("mds-plain")]


def test_litdata_leaf_types(mount, server, items_of):
    """Leaves of litdata-mixed as a loader would use them, named by the keys of
    the item's dict (config.data_spec), in the dict's order: .npy with numpy,
    .jpg with PIL, .txt as UTF-8, int/float as 8-byte little-endian."""
    items = items_of("litdata-mixed")
    m = mount_dataset(mount, server, "litdata-mixed")
    for item in [items[0], items[1], items[15], items[16], items[77], items[149]]:
        d = m.file(".items", formats.item_names(150)[item.index] + ".d")
        assert os.listdir(d) == ["index.bin", "score.bin", "caption.txt", "blob.bin",
                                 "image.jpg", "matrix.npy", "tokens.npy"]
        leaves = formats.pytree_leaves(item.data, 7)
        index = int.from_bytes(read_bytes(os.path.join(d, "index.bin")), "little",
                               signed=True)
        assert read_bytes(os.path.join(d, "index.bin")) == leaves[0] and len(leaves[0]) == 8
        assert 0 <= index < 150
        score = np.frombuffer(read_bytes(os.path.join(d, "score.bin")), dtype="<f8")
        assert score.shape == (1,) and leaves[1] == score.tobytes()
        text = read_bytes(os.path.join(d, "caption.txt")).decode("utf-8")
        assert text == leaves[2].decode("utf-8")
        assert read_bytes(os.path.join(d, "blob.bin")) == leaves[3]
        with Image.open(os.path.join(d, "image.jpg")) as im:
            assert im.format == "JPEG"
            im.load()
            assert im.size[0] > 0 and im.size[1] > 0
        assert read_bytes(os.path.join(d, "image.jpg")) == leaves[4]
        matrix = np.load(os.path.join(d, "matrix.npy"))
        want, _ = formats.litdata_leaf_array("numpy", leaves[5])
        assert matrix.dtype == np.float32 and matrix.ndim == 2
        assert matrix.shape == want.shape and np.array_equal(matrix, want)
        tokens = np.load(os.path.join(d, "tokens.npy"))
        assert tokens.dtype == np.int16 and tokens.ndim == 1
        assert tokens.tobytes() == leaves[6]
        # np.load through a memory map, as loaders of big arrays do (in a
        # child: a page that cannot be read is a SIGBUS)
        assert mmap_load(os.path.join(d, "matrix.npy")) == (want.tobytes(), str(want.shape),
                                                            "float32")


def leaf(type_=None, context=None, children=()):
    return {"type": type_, "context": context, "children_spec": list(children)}


def dict_node(keys, children):
    return leaf("builtins.dict", json.dumps(keys), children)


# {"image", "meta": {"label", "id"}, "boxes": [_, _], "a/b", "x": {"y"}, "x.y", ".."} as
# torch's treespec_dumps writes it: "a/b" and ".." are no file names, and "x" > "y" and
# "x.y" would both be x.y; those leaves keep their positions.
NESTED_SPEC = [1, dict_node(
    ["image", "meta", "boxes", "a/b", "x", "x.y", ".."],
    [leaf(), dict_node(["label", "id"], [leaf(), leaf()]),
     leaf("builtins.list", "null", [leaf(), leaf()]), leaf(), dict_node(["y"], [leaf()]),
     leaf(), leaf()])]
NESTED_FORMAT = ["jpeg", "str", "int", "no_header_numpy:2", "no_header_numpy:2", "bytes",
                 "bytes", "bytes", "str"]
NESTED_NAMES = ["image.jpg", "meta.label.txt", "meta.id.bin", "boxes.0.npy", "boxes.1.npy",
                "5.bin", "6.bin", "7.bin", "8.txt"]


def write_pytree_dataset(out, spec, data_format, nitems, seed):
    """One LitData chunk of nitems PyTree items of len(data_format) random leaves."""
    os.makedirs(out)
    rng = random.Random(seed)
    items = []
    for _ in range(nitems):
        leaves = [rng.randbytes(4 * rng.randint(0, 8)) for _ in data_format]
        items.append(struct.pack("<%dI" % len(leaves), *map(len, leaves)) + b"".join(leaves))
    offsets = [4 + 4 * (nitems + 1)]
    for it in items:
        offsets.append(offsets[-1] + len(it))
    chunk = struct.pack("<I%dI" % len(offsets), nitems, *offsets) + b"".join(items)
    with open(os.path.join(out, "chunk-0-0.bin"), "wb") as f:
        f.write(chunk)
    config = {"chunk_bytes": None, "chunk_size": nitems, "compression": None,
              "data_format": data_format, "data_spec": json.dumps(spec), "encryption": None,
              "item_loader": "PyTreeLoader"}
    chunks = [{"chunk_bytes": len(chunk), "chunk_size": nitems, "dim": None,
               "filename": "chunk-0-0.bin"}]
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"chunks": chunks, "config": config, "updated_at": "0"}, f)


def test_nested_leaf_names(mount, nginx, tmp_path):
    """Nested dicts join their keys with '.', a list inside a dict adds the index; a key
    that is no file name, and two keys that would give one name, give position names.
    Every leaf's bytes are the item's field, cut from the chunk independently."""
    src = str(tmp_path / "nested")
    write_pytree_dataset(src, NESTED_SPEC, NESTED_FORMAT, 5, seed=15)
    items = formats.dataset_items(src)
    assert [n for n, _ in items[0].files] == NESTED_NAMES
    m = mount(nginx(src).url)
    for n, item in zip(formats.item_names(len(items)), items):
        check_item(m.file(".items"), n, item)
        fields = formats.pytree_leaves(item.data, len(NESTED_FORMAT))
        assert read_bytes(m.file(".items", n + ".d", "meta.label.txt")) == fields[1]
        assert read_bytes(m.file(".items", n + ".d", "7.bin")) == fields[7]


def test_unreadable_data_spec_gives_position_names(mount, nginx, tmp_path):
    """A data_spec that cannot be read (here: fewer leaves than data_format) never refuses
    the dataset: its leaves are named by position."""
    spec = [1, dict_node(["a"], [leaf()])]
    src = str(tmp_path / "short-spec")
    write_pytree_dataset(src, spec, ["bytes", "str"], 3, seed=16)
    items = formats.dataset_items(src)
    m = mount(nginx(src).url)
    for n, item in zip(formats.item_names(len(items)), items):
        assert os.listdir(m.file(".items", n + ".d")) == ["0.bin", "1.txt"]
        fields = formats.pytree_leaves(item.data, 2)
        assert read_bytes(m.file(".items", n + ".d", "0.bin")) == fields[0]
        assert read_bytes(m.file(".items", n + ".d", "1.txt")) == fields[1]


MMAP_LOAD = r"""
import sys
import numpy as np
a = np.load(sys.argv[1], mmap_mode="r")
sys.stdout.buffer.write(np.ascontiguousarray(a).tobytes())
sys.stderr.write("%s %s" % (a.shape, a.dtype))
"""


def mmap_load(path):
    """(array bytes, shape, dtype) of np.load(path, mmap_mode="r") in a child process."""
    r = subprocess.run([sys.executable, "-c", MMAP_LOAD, path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=scaled(30))
    assert r.returncode == 0, "np.load(mmap_mode='r') of %s: exit %d %s" % (
        path, r.returncode, r.stderr.decode(errors="replace")[-2000:])
    shape, dtype = r.stderr.decode().rsplit(" ", 1)
    return r.stdout, shape, dtype


def test_tokens_and_mds_leaf_types(mount, server, items_of):
    """TokensLoader items: one 0.npy, 1-D int32, the item's bytes (a data_spec
    of one leaf has no key). MDS columns, named by column_names in column
    order: ndarray -> .npy, str -> .txt, the rest -> .bin."""
    m = mount_dataset(mount, server, "litdata-tokens")
    items = items_of("litdata-tokens")
    names = formats.item_names(len(items))
    for n, item in zip(names, items):
        d = m.file(".items", n + ".d")
        assert os.listdir(d) == ["0.npy"]
        arr = np.load(os.path.join(d, "0.npy"))
        assert arr.dtype == np.int32 and arr.ndim == 1
        assert arr.tobytes() == item.data
    m = mount_dataset(mount, server, "mds-plain")
    items = items_of("mds-plain")
    for item in items[::13]:
        d = m.file(".items", "%03d.d" % item.index)
        assert os.listdir(d) == ["arr.npy", "blob.bin", "id.bin", "label.bin", "text.txt"]
        arr = np.load(os.path.join(d, "arr.npy"))
        assert arr.dtype == np.float32 and arr.shape == (4,)
        cols = formats.mds_columns(formats.load_index(data_dir("mds-plain"))["shards"][0],
                                   item.data)
        assert arr.tobytes() == cols[0]
        assert read_bytes(os.path.join(d, "text.txt")).decode("utf-8") == cols[4].decode("utf-8")
        assert read_bytes(os.path.join(d, "id.bin")) == cols[2]
        assert read_bytes(os.path.join(d, "blob.bin")) == cols[1]
        assert read_bytes(os.path.join(d, "label.bin")) == cols[3]


# A named leaf is found by its name only: not by its position (000.d/0.bin), nor without or
# with another extension.
NO_SUCH_NAMES = ["150", "0000", "00", "abc", "-1", "1e2", " 000", "000 ", "000.d/9.bin",
                 "000.d/0.txt", "000.d/7.npy", "000.d/0", "000.d/00.bin", "000.x", "000.d.d",
                 "149.d/7.bin", "150.d", "150.d/0.bin", "999999999999999999999999",
                 "000.d/0.bin", "000.d/index", "000.d/index.txt", "000.d/.bin", "000.d/index.",
                 "000.d/Index.bin", "000.d/index.bin.bin", "000.d/caption", "000.d/matrix.bin"]


def test_names_that_do_not_exist(mount, server):
    m = mount_dataset(mount, server, "litdata-mixed")
    bad = []
    for name in NO_SUCH_NAMES:
        e = errno_of(lambda: os.stat(m.file(".items", name)), "stat of .items/" + name)
        if e != errno.ENOENT:
            bad.append("%r: %s (want ENOENT)" % (name, errname(e)))
        e = errno_of(lambda: open(m.file(".items", name), "rb").close(), "open of " + name)
        if e != errno.ENOENT:
            bad.append("open %r: %s (want ENOENT)" % (name, errname(e)))
    assert not bad, "\n".join(bad)
    assert os.path.exists(m.file(".items", "149"))


def test_items_are_read_only(mount, server, items_of):
    m = mount_dataset(mount, server, "litdata-mixed")
    d = m.file(".items")
    ops = {
        "create": lambda: open(os.path.join(d, "new"), "xb"),
        "create 150": lambda: os.open(os.path.join(d, "150"), os.O_CREAT | os.O_WRONLY, 0o644),
        "create leaf": lambda: open(os.path.join(d, "000.d", "new.bin"), "xb"),
        "open for write": lambda: open(os.path.join(d, "000"), "r+b"),
        "open leaf for write": lambda: os.open(os.path.join(d, "000.d", "index.bin"),
                                               os.O_WRONLY),
        "truncate": lambda: os.truncate(os.path.join(d, "000"), 0),
        "mkdir": lambda: os.mkdir(os.path.join(d, "x")),
        "unlink": lambda: os.unlink(os.path.join(d, "000")),
        "rmdir": lambda: os.rmdir(os.path.join(d, "000.d")),
        "rename": lambda: os.rename(os.path.join(d, "000"), os.path.join(d, "001")),
        "chmod": lambda: os.chmod(os.path.join(d, "000"), 0o666),
        "mkdir .items": lambda: os.mkdir(m.file(".items", "000.d", "x")),
    }
    check_erofs(ops)
    assert read_bytes(os.path.join(d, "000")) == items_of("litdata-mixed")[0].data


def test_item_view_cost(mount, server, items_of):
    """Reading one item fetches its chunk's header and the item, not the dataset."""
    items = items_of("litdata-mixed")
    m = mount_dataset(mount, server, "litdata-mixed")
    before = m.stats()
    check_item(m.file(".items"), "077", items[77], leaves=False)
    st = m.stats()
    assert st["chunk_headers"] - before["chunk_headers"] >= 1
    # the dataset is 240 KiB; its chunks about 25 KiB each
    assert st["bytes_fetched"] - before["bytes_fetched"] < 100 * 1024, st

