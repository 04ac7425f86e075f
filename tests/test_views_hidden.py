"""Views out of the way of tree walkers, as ZFS hides .zfs (snapdir=hidden):
.items/, .decompressed/, NAME.tar.d/ and .chunkfs/ are not listed by readdir
of their directory, so os.walk, du, find, tar and cp -r see exactly the
remote's tree, yet each opens by name; --views=visible (-o views=visible)
lists them."""
import io
import os
import shutil
import subprocess
import tarfile

import pytest

import formats
from cfsutil import data_dir, run_with_deadline, scaled, sha256_file, source_sha256
from itemutil import read_bytes

DATASETS = {"ds": "litdata-mixed", "zds": "litdata-mixed-zstd", "mds": "mds-plain",
            "wds": "wds"}
HIDDEN = {"ds": [".items"], "zds": [".items", ".decompressed"], "mds": [".items"],
          "wds": ["shard-000000.tar.d", "shard-000001.tar.d"], "": [".chunkfs"]}


@pytest.fixture(scope="module")
def remote(tmp_path_factory, module_nginx):
    """A tree of the fixture datasets served by nginx with its HTML autoindex,
    so that every directory of it is listed: (source root, server)."""
    root = tmp_path_factory.mktemp("views-hidden")
    for name, fixture in DATASETS.items():
        shutil.copytree(data_dir(fixture), str(root / name))
    return str(root), module_nginx(str(root), extra_conf="        autoindex on;\n")


def walk(top):
    """(sorted relative paths of every directory and file under top, total file bytes)."""
    paths, total = [], 0
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        for name in dirnames + filenames:
            paths.append(os.path.normpath(os.path.join(rel, name)))
        for name in filenames:
            total += os.stat(os.path.join(dirpath, name)).st_size
    return sorted(paths), total


def run(argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=scaled(60))


def test_walk_sees_the_remote_tree(mount, remote):
    """os.walk of the mount names exactly the source's directories and files,
    with their sizes: no view and no .chunkfs."""
    src, server = remote
    m = mount(server.url)
    got = run_with_deadline(lambda: walk(m.path), scaled(60), "os.walk of the mount")
    assert got == walk(src)
    for sub, fixture in DATASETS.items():
        assert sorted(os.listdir(m.file(sub))) == sorted(os.listdir(data_dir(fixture))), sub


def archived(top):
    """The sorted member names of tar's archive of top (written to a pipe)."""
    tar = subprocess.run(["tar", "-cf", "-", "-C", top, "."], check=True, capture_output=True,
                         timeout=scaled(60))
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        return sorted(t.getnames())


def test_du_find_cp_tar(mount, remote, tmp_path):
    """du --apparent-size counts the source's bytes, find the source's entries,
    tar archives the source's names, and cp -r copies exactly the source's files,
    byte for byte."""
    src, server = remote
    m = mount(server.url)
    _, total = walk(src)
    du = run(["du", "-sb", "--apparent-size", m.path]).stdout.split()[0]
    assert int(du) == total, "du says %s bytes, the source holds %d" % (du, total)
    found = run(["find", m.path]).stdout.splitlines()
    assert len(found) == len(run(["find", src]).stdout.splitlines())
    assert archived(m.path) == archived(src)
    dest = str(tmp_path / "copy")
    run(["cp", "-r", m.path, dest])
    assert walk(dest) == walk(src)
    for rel in walk(src)[0]:
        path = os.path.join(src, rel)
        if os.path.isfile(path):
            assert sha256_file(os.path.join(dest, rel)) == source_sha256(path), rel


def test_views_open_by_name(mount, remote, tmp_path):
    """Each hidden directory resolves when named: stat, listing, cd, and reads
    of an item, a decompressed chunk, a tar member and .chunkfs/stats, byte-exact."""
    src, server = remote
    m = mount(server.url)
    for sub, names in HIDDEN.items():
        for name in names:
            assert os.path.isdir(m.file(sub, name)), os.path.join(sub, name)
    items = formats.dataset_items(data_dir("litdata-mixed"))
    assert len(os.listdir(m.file("ds", ".items"))) == 2 * len(items)
    assert read_bytes(m.file("ds", ".items", "000")) == items[0].data
    zitems = formats.dataset_items(data_dir("litdata-mixed-zstd"))
    assert read_bytes(m.file("zds", ".items", "001")) == zitems[1].data
    index = formats.load_index(data_dir("litdata-mixed-zstd"))
    raw = index["chunks"][0]["filename"]
    plain = raw[:-len(".zstd.bin")] + ".bin"
    assert read_bytes(m.file("zds", ".decompressed", plain)) == \
        formats.zstd_decompress(os.path.join(src, "zds", raw))
    shard = os.path.join(src, "wds", "shard-000001.tar")
    with tarfile.open(shard) as tf:
        member = next(x for x in tf.getmembers() if x.isfile())
        want = tf.extractfile(member).read()
    listed = run(["sh", "-c", 'cd "$1" && ls', "sh", m.file("wds", "shard-000001.tar.d")])
    assert member.name.split("/")[0] in listed.stdout.split()
    assert read_bytes(m.file("wds", "shard-000001.tar.d", member.name)) == want
    assert b"mem_cap" in read_bytes(m.file(".chunkfs", "stats"))


@pytest.mark.parametrize("how", [["--views=visible"], ["-o", "views=visible"]])
def test_views_visible(mount, remote, how):
    """--views=visible, or -o views=visible, lists the views and .chunkfs/ again."""
    src, server = remote
    m = mount(server.url, *how)
    for sub, names in HIDDEN.items():
        want = sorted(os.listdir(os.path.join(src, sub)) + names)
        assert sorted(os.listdir(m.file(sub))) == want, sub
