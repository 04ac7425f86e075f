"""Bad chunk headers and bad indexes: EIO on the affected items, one log line
naming the object, the raw chunk still readable, the rest of the dataset and
the daemon unaffected. Every case works on a corrupted copy in a tmp dir."""
import errno
import json
import os
import shutil
import stat
import struct

import pytest

import formats
from cfsutil import GiB, data_dir, run_with_deadline, scaled, sha256_file, vm_peak
from itemutil import check_item, errno_of, errname, read_bytes, read_until_error

LIT_TARGET = "chunk-0-1.bin"       # items 16..31 of litdata-mixed
MDS_TARGET = "shard.00001.mds"     # samples 70..137 of mds-plain


def put_u32(path, offset, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack("<I", value))


def get_u32(path, offset):
    with open(path, "rb") as f:
        f.seek(offset)
        return struct.unpack("<I", f.read(4))[0]


def edit_index(src, fn):
    with open(os.path.join(src, "index.json")) as f:
        index = json.load(f)
    fn(index)
    with open(os.path.join(src, "index.json"), "w") as f:
        json.dump(index, f)


def set_chunk_field(src, name, field, value):
    def fn(index):
        for c in index["chunks"]:
            if c["filename"] == name:
                c[field] = value
    edit_index(src, fn)


# case -> (fixture, target object, function(src dir, target path) that corrupts
# the copy; the invalid item ranges (relative to the chunk) are computed from
# the corrupted copy where they exist.
def count_smaller(src, path):
    put_u32(path, 0, get_u32(path, 0) - 1)


def count_larger_in_index(src, path):
    set_chunk_field(src, os.path.basename(path), "chunk_size", get_u32(path, 0) + 1)


def count_huge(src, path):
    put_u32(path, 0, 0x7FFFFFFF)


def offsets_decrease(src, path):
    a, b = get_u32(path, 4 + 4 * 5), get_u32(path, 4 + 4 * 6)
    put_u32(path, 4 + 4 * 5, b)
    put_u32(path, 4 + 4 * 6, a)


def last_offset_past_end(src, path):
    n = get_u32(path, 0)
    put_u32(path, 4 + 4 * n, os.path.getsize(path) + 100)


def middle_offset_past_end(src, path):
    put_u32(path, 4 + 4 * 8, os.path.getsize(path) + 4096)


def offset_huge(src, path):
    put_u32(path, 4 + 4 * 3, 0xFFFFFFF0)


def truncated_header(src, path):
    with open(path, "r+b") as f:
        f.truncate(40)                         # 16 items need a 72-byte header
    set_chunk_field(src, os.path.basename(path), "chunk_bytes", 40)


def truncated_to_3_bytes(src, path):
    with open(path, "r+b") as f:
        f.truncate(3)                          # not even the item count
    set_chunk_field(src, os.path.basename(path), "chunk_bytes", 3)


def mds_count_smaller(src, path):
    put_u32(path, 0, get_u32(path, 0) - 1)


def mds_count_larger_in_index(src, path):
    def fn(index):
        for s in index["shards"]:
            if s["raw_data"]["basename"] == os.path.basename(path):
                s["samples"] += 1
    edit_index(src, fn)


CASES = {
    "count-smaller-in-header": ("litdata-mixed", LIT_TARGET, count_smaller),
    "count-larger-in-index": ("litdata-mixed", LIT_TARGET, count_larger_in_index),
    "count-huge": ("litdata-mixed", LIT_TARGET, count_huge),
    "offsets-decrease": ("litdata-mixed", LIT_TARGET, offsets_decrease),
    "last-offset-past-end": ("litdata-mixed", LIT_TARGET, last_offset_past_end),
    "middle-offset-past-end": ("litdata-mixed", LIT_TARGET, middle_offset_past_end),
    "offset-near-4GiB": ("litdata-mixed", LIT_TARGET, offset_huge),
    "truncated-header": ("litdata-mixed", LIT_TARGET, truncated_header),
    "truncated-to-3-bytes": ("litdata-mixed", LIT_TARGET, truncated_to_3_bytes),
    "mds-count-smaller-in-header": ("mds-plain", MDS_TARGET, mds_count_smaller),
    "mds-count-larger-in-index": ("mds-plain", MDS_TARGET, mds_count_larger_in_index),
}


def expected_layout(src):
    """[(object name, count the index gives)] in dataset order."""
    index = formats.load_index(src)
    if formats.is_mds(index):
        return [(s["raw_data"]["basename"], s["samples"]) for s in index["shards"]]
    return [(c["filename"], c["chunk_size"]) for c in index["chunks"]]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.log_allow(r": bad chunk header: .*; its items give EIO \(EIO\)$")
def test_bad_chunk_header(nginx, mount, tmp_path, case):
    fixture, target, corrupt = CASES[case]
    src = str(tmp_path / "dataset")
    shutil.copytree(data_dir(fixture), src)
    good_items = formats.dataset_items(data_dir(fixture))
    by_chunk = {}
    for item in good_items:
        by_chunk.setdefault(item.chunk, []).append(item)
    target_path = os.path.join(src, target)
    corrupt(src, target_path)
    layout = expected_layout(src)
    total = sum(n for _, n in layout)
    names = formats.item_names(total)
    m = mount(nginx(src).url)
    items_dir = m.file(".items")
    listing = run_listing(items_dir)
    assert listing == [x for n in names for x in (n, n + ".d")], \
        "the listing of .items/ is not every item of the index, in order"
    problems = []
    first = 0
    for obj, count in layout:
        ids = range(first, first + count)
        first += count
        if obj == target:
            for i in ids:
                for what, fn in [("stat", lambda: os.stat(os.path.join(items_dir, names[i]))),
                                 ("read", lambda: read_bytes(os.path.join(items_dir, names[i])))]:
                    e = errno_of(fn, "%s of item %s" % (what, names[i]))
                    if e != errno.EIO:
                        problems.append("%s of item %s (in %s): %s (want EIO)"
                                        % (what, names[i], obj, errname(e)))
            continue
        for i, item in zip(ids, by_chunk[obj]):
            path = os.path.join(items_dir, names[i])
            got, err = read_until_error(path)
            if err or got != item.data:
                problems.append("item %s of %s (unaffected): %s, %d bytes, want %d bytes"
                                % (names[i], obj, errname(err), len(got), len(item.data)))
    assert not problems, "\n".join(problems[:40])
    # the raw object still reads, byte for byte the corrupted copy
    assert sha256_file(m.file(target)) == sha256_file(target_path)
    log = m.read_log()
    assert target in log, "no log line names %s:\n%s" % (target, log)
    lines = [line for line in log.splitlines() if target in line]
    assert len(lines) <= 3, "the problem is logged again and again:\n" + "\n".join(lines)
    assert m.alive()
    st = m.stats()
    assert st["mem_bytes"] <= st["mem_cap"]


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: bad chunk header: .*; its items give EIO \(EIO\)$")
def test_bad_header_listing_and_leaves(nginx, mount, tmp_path):
    """With a bad chunk header, listing .items/ still works (the other items
    are there) and the leaves of an affected item give EIO, not wrong bytes."""
    src = str(tmp_path / "dataset")
    shutil.copytree(data_dir("litdata-mixed"), src)
    offsets_decrease(src, os.path.join(src, LIT_TARGET))
    m = mount(nginx(src).url)
    names = formats.item_names(150)
    listing = run_listing(m.file(".items"))
    assert [n for n in listing if not n.endswith(".d")] == names
    for n in names[16:32]:
        e = errno_of(lambda: os.listdir(m.file(".items", n + ".d")), "listdir of %s.d" % n)
        if e == 0:
            for leaf in os.listdir(m.file(".items", n + ".d")):
                got, err = read_until_error(m.file(".items", n + ".d", leaf))
                assert err == errno.EIO, "%s.d/%s: %s (want EIO)" % (n, leaf, errname(err))
        else:
            assert e in (errno.EIO, errno.ENOENT), "%s.d: %s" % (n, errname(e))
    assert read_bytes(m.file(".items", "032")) == formats.dataset_items(
        data_dir("litdata-mixed"))[32].data


def run_listing(path):
    return run_with_deadline(lambda: os.listdir(path), scaled(30), "listdir of " + path)


# --------------------------------------------------------------------------
# bad index.json: the directory is shown as it is, without .items/


def _index(fn):
    def make():
        with open(os.path.join(data_dir("litdata-mixed"), "index.json")) as f:
            index = json.load(f)
        fn(index)
        return json.dumps(index).encode()
    return make


def _mds_index(fn):
    def make():
        with open(os.path.join(data_dir("mds-plain"), "index.json")) as f:
            index = json.load(f)
        fn(index)
        return json.dumps(index).encode()
    return make


BAD_INDEXES = {
    "not-json": ("litdata-mixed", lambda: b"{this is not json\n"),
    "truncated-json": ("litdata-mixed", lambda: open(os.path.join(
        data_dir("litdata-mixed"), "index.json"), "rb").read()[:700]),
    "no-chunks": ("litdata-mixed", _index(lambda i: i.pop("chunks"))),
    "chunk-no-size": ("litdata-mixed", _index(lambda i: i["chunks"][1].pop("chunk_size"))),
    "chunk-size-string": ("litdata-mixed",
                          _index(lambda i: i["chunks"][2].update(chunk_size="16"))),
    "mds-no-samples": ("mds-plain", _mds_index(lambda i: i["shards"][1].pop("samples"))),
    "mds-no-basename": ("mds-plain",
                        _mds_index(lambda i: i["shards"][2]["raw_data"].pop("basename"))),
}

# Indexes that locate every item but do not say what the leaves are: either
# the directory is shown without .items/, or .items/ holds the items' bytes
# (with no NNN.d/ for the items whose leaves are unknown).
LEAFLESS_INDEXES = {
    "no-config": ("litdata-mixed", _index(lambda i: i.pop("config"))),
    "no-data-format": ("litdata-mixed", _index(lambda i: i["config"].pop("data_format"))),
    "mds-no-column-sizes": ("mds-plain",
                            _mds_index(lambda i: i["shards"][0].pop("column_sizes"))),
}


@pytest.fixture(scope="module")
def bad_index_server(tmp_path_factory, module_nginx):
    """root/ok (a copy of litdata-mixed) and root/<case> (the fixture's objects
    with a bad index.json), served with autoindex so that directories without
    a usable index are still listed."""
    root = tmp_path_factory.mktemp("bad-indexes")
    shutil.copytree(data_dir("litdata-mixed"), root / "ok")
    for case, (fixture, make) in list(BAD_INDEXES.items()) + list(LEAFLESS_INDEXES.items()):
        shutil.copytree(data_dir(fixture), root / case)
        (root / case / "index.json").write_bytes(make())
    return str(root), module_nginx(str(root), extra_conf="        autoindex on;\n")


@pytest.mark.parametrize("case", sorted(BAD_INDEXES))
@pytest.mark.log_allow(r"^[\w-]+/index\.json: .*: not a dataset index: .*; showing the directory as it is \(EIO\)$")
def test_bad_index_shows_directory_as_is(mount, bad_index_server, case):
    root, srv = bad_index_server
    m = mount(srv.url)
    assert os.path.isdir(m.file("ok", ".items")), "the good copy has no .items/ (setup)"
    d = m.file(case)
    assert stat.S_ISDIR(os.stat(d).st_mode)
    objects = sorted(os.listdir(os.path.join(root, case)))
    assert sorted(os.listdir(d)) == objects, "%s shows %r" % (case, sorted(os.listdir(d)))
    e = errno_of(lambda: os.stat(os.path.join(d, ".items")), "stat of .items")
    assert e == errno.ENOENT, "%s/.items: %s (want ENOENT)" % (case, errname(e))
    for name in objects:
        want = sha256_file(os.path.join(root, case, name))
        assert sha256_file(os.path.join(d, name)) == want, name
    assert read_bytes(m.file("ok", ".items", "000")) == formats.dataset_items(
        data_dir("litdata-mixed"))[0].data
    assert case in m.read_log(), "no log line names the directory %s" % case
    assert m.alive()


@pytest.mark.parametrize("case", sorted(LEAFLESS_INDEXES))
def test_index_without_leaf_description(mount, bad_index_server, case):
    root, srv = bad_index_server
    fixture = LEAFLESS_INDEXES[case][0]
    m = mount(srv.url)
    d = m.file(case)
    objects = sorted(os.listdir(os.path.join(root, case)))
    assert sorted(os.listdir(d)) == objects
    for name in objects:
        assert sha256_file(os.path.join(d, name)) == sha256_file(os.path.join(root, case, name))
    items = formats.dataset_items(data_dir(fixture))
    if os.path.isdir(os.path.join(d, ".items")):
        names = formats.item_names(len(items))
        listing = os.listdir(os.path.join(d, ".items"))
        assert [n for n in listing if not n.endswith(".d")] == names
        for n, item in zip(names, items):
            check_item(os.path.join(d, ".items"), n, item, leaves=(n + ".d") in listing)
    assert case in m.read_log(), "no log line names %s and what its index misses" % case
    assert m.alive()


# --------------------------------------------------------------------------
# leaf counts at and past the limit (255 leaves: what a leaf's inode number holds)


def write_wide_dataset(out, nleaves, nitems=3):
    """A LitData dataset of one chunk whose items have nleaves "bytes" leaves each,
    leaf j of item i being bytes([i, j % 256]) * (j % 3 + 1); returns the items'
    leaves."""
    items = [[bytes([i, j % 256]) * (j % 3 + 1) for j in range(nleaves)] for i in range(nitems)]
    bodies = [struct.pack("<%dI" % nleaves, *map(len, leaves)) + b"".join(leaves)
              for leaves in items]
    header = 4 + 4 * (nitems + 1)
    offsets = [header]
    for body in bodies:
        offsets.append(offsets[-1] + len(body))
    chunk = struct.pack("<%dI" % (nitems + 2), nitems, *offsets) + b"".join(bodies)
    os.makedirs(out)
    with open(os.path.join(out, "chunk-0-0.bin"), "wb") as f:
        f.write(chunk)
    index = {"chunks": [{"chunk_bytes": len(chunk), "chunk_size": nitems, "dim": None,
                         "filename": "chunk-0-0.bin"}],
             "config": {"chunk_bytes": 1 << 26, "chunk_size": None, "compression": None,
                        "data_format": ["bytes"] * nleaves, "data_spec": None,
                        "encryption": None, "item_loader": "PyTreeLoader"},
             "updated_at": "1"}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    return items


@pytest.mark.parametrize("nleaves", [255, 256, 300])
def test_leaf_count_limit(nginx, mount, tmp_path, nleaves):
    """Up to 255 leaves an item's NNN.d/ holds every leaf; past that the items
    show without NNN.d/ (one log line says why) and the daemon lives on."""
    src = str(tmp_path / "wide")
    items = write_wide_dataset(src, nleaves)
    m = mount(nginx(src).url)
    d = m.file(".items")
    if nleaves > 255:
        e = errno_of(lambda: os.listdir(os.path.join(d, "0.d")), "listdir of 0.d")
        assert e == errno.ENOENT, "0.d/: %s (want ENOENT)" % errname(e)
        assert m.alive()
    listing = run_listing(d)
    if nleaves <= 255:
        assert listing == ["0", "0.d", "1", "1.d", "2", "2.d"]
        for i, leaves in enumerate(items):
            names = run_listing(os.path.join(d, "%d.d" % i))
            assert sorted(names, key=lambda n: int(n.split(".")[0])) == \
                ["%d.bin" % j for j in range(nleaves)]
            for j in (0, 1, nleaves // 2, nleaves - 1):
                assert read_bytes(os.path.join(d, "%d.d" % i, "%d.bin" % j)) == leaves[j]
    else:
        assert listing == ["0", "1", "2"]
        for name in ("0.d/0.bin", "1.d/%d.bin" % (nleaves - 1)):
            e = errno_of(lambda: os.stat(os.path.join(d, name)), "stat of " + name)
            assert e == errno.ENOENT, "%s: %s (want ENOENT)" % (name, errname(e))
        assert "255 leaves" in m.read_log(), m.read_log()
    for i, leaves in enumerate(items):
        body = struct.pack("<%dI" % nleaves, *map(len, leaves)) + b"".join(leaves)
        assert read_bytes(os.path.join(d, str(i))) == body
    assert m.alive()


# --------------------------------------------------------------------------
# an index that gives a chunk more items than its header could hold


@pytest.mark.parametrize("count", [2 ** 32 - 1, 2 ** 24 + 1, 1000000])
@pytest.mark.log_allow(r"^chunk-0-1\.bin: bad chunk header: .*; its items give EIO \(EIO\)$",
                       r"^a dataset of \d+ items: \.items shows the first \d+$")
def test_item_count_bounds_header(nginx, mount, tmp_path, sanitized, count):
    """The header buffer is sized by the index's item count: a count above 2^24
    (a 64 MiB header) or whose header is larger than the chunk makes that
    chunk's items EIO without reserving the memory; the other chunks read."""
    src = str(tmp_path / "dataset")
    shutil.copytree(data_dir("litdata-mixed"), src)
    set_chunk_field(src, LIT_TARGET, "chunk_size", count)
    items = formats.dataset_items(data_dir("litdata-mixed"))
    width = len(str(min(150 - 16 + count, 2 ** 32) - 1))
    names = {i: "%0*d" % (width, i) for i in (0, 15, 16, 17, 31, 16 + count)}
    m = mount(nginx(src).url)
    d = m.file(".items")
    for i in (16, 17, 31):
        e = errno_of(lambda: read_bytes(os.path.join(d, names[i])), "read of " + names[i])
        assert e == errno.EIO, "item %s: %s (want EIO)" % (names[i], errname(e))
    for i in (0, 15):
        assert read_bytes(os.path.join(d, names[i])) == items[i].data
    if count < 2 ** 32 - 16:
        assert read_bytes(os.path.join(d, names[16 + count])) == items[32].data
    if not sanitized:   # the sanitizers reserve terabytes of shadow memory
        assert vm_peak(m.pid) < 4 * GiB, "the daemon reserved %d bytes" % vm_peak(m.pid)
    lines = [line for line in m.read_log().splitlines() if LIT_TARGET in line]
    assert lines and ("more than the 16777216" in lines[0] or "larger than the chunk" in lines[0]), \
        "\n".join(lines) or m.read_log()
    assert m.alive()
