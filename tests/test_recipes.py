"""The recipes of docs/recipes.md, run as a user would run them against real
mounts: a torch DataLoader with 4 workers over .items/, WebDataset shards
through tarfile and NAME.tar.d/, numpy.memmap of a failing chunk (SIGBUS,
then .chunkfs/errors), a dead mount recovered with fusermount3 -u and -uz
(or gone by itself with -o auto_unmount), allow_other for another uid, and
what LitData and MosaicML streaming (not in Debian) do on the mount: their
reads in place, and the writes a compressed dataset makes, refused.

A code block that a test runs is read out of docs/recipes.md (the block after
its `<!-- recipe: NAME -->` line) and run with the mount's paths put in for
the doc's, so the page and the tests cannot drift apart."""
import errno
import importlib.util
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile

import pytest

import formats
from cfsutil import (FUSERMOUNT, REPO_DIR, data_dir, force_unmount, index_chunks, is_mounted,
                     run_chunkfs, scaled, sha256_file, source_sha256, wait_for)
from itemutil import errname, errno_of, read_bytes
from test_visibility import errors_of

RECIPES = os.path.join(REPO_DIR, "docs", "recipes.md")
NOBODY = 65534
WDS_SHARDS = ["shard-000000.tar", "shard-000001.tar"]
FAILING = "chunk-0-1.bin"


def recipe(name, paths):
    """The code block of docs/recipes.md marked `<!-- recipe: name -->`, with
    each doc path of paths ({doc path: real path}) replaced; every doc path
    must be in the block, so a changed page fails here rather than passing
    untested."""
    with open(RECIPES, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- recipe: %s -->\n```python\n(.*?)\n```\n" % re.escape(name), text, re.S)
    assert m, "docs/recipes.md has no python block after <!-- recipe: %s -->" % name
    code = m.group(1)
    for doc_path, real in paths.items():
        assert doc_path in code, "the %s recipe no longer names %s" % (name, doc_path)
        code = code.replace(doc_path, real)
    return code


def run_python(code, what, timeout=60):
    """Run code in a child of this Python (its crashes and signals stay
    there) within a deadline: (returncode, stdout bytes, stderr text)."""
    try:
        r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        pytest.fail("%s did not finish within %d s" % (what, scaled(timeout)), pytrace=False)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def server(module_nginx):
    """tests/data over HTTP, with autoindex for the WebDataset directory (no index.json)."""
    return module_nginx(data_dir(""), extra_conf="        autoindex on;\n")


# --------------------------------------------------------------------------
# a torch DataLoader over .items/


HARNESS = r"""
import pickle, sys
assert loader.num_workers == 4, loader.num_workers
got = []
for name, item, leaves in loader:
    got.append((name, item, dict(leaves)))
pickle.dump(got, sys.stdout.buffer)
"""


def check_leaves(leaves, want_files, name):
    assert sorted(leaves) == sorted(n for n, _ in want_files), name
    for leaf, want in want_files:
        if isinstance(want, tuple):
            formats.check_npy_file(leaves[leaf], want[1], want[2], "%s.d/%s" % (name, leaf))
        else:
            assert leaves[leaf] == want, "%s.d/%s differs from the source" % (name, leaf)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not importable: apt-get install python3-torch")
def test_torch_dataloader_recipe(mount, server):
    """The recipe's map-style Dataset with a DataLoader of 4 workers over
    .items/ of litdata-mixed: every item comes once, its bytes and each leaf
    of NNN.d/ equal to the item decoded from the source chunk."""
    m = mount(server.url + "litdata-mixed/")
    code = recipe("torch-dataloader", {"/mnt/ds": m.path}) + HARNESS
    rc, out, err = run_python(code, "the DataLoader")
    assert rc == 0, "the DataLoader failed (%d):\n%s" % (rc, err[-3000:])
    got = pickle.loads(out)
    want = formats.dataset_items(data_dir("litdata-mixed"))
    names = formats.item_names(len(want))
    assert sorted(name for name, _, _ in got) == names, "an item missing or twice"
    by_name = {name: (item, leaves) for name, item, leaves in got}
    for name, it in zip(names, want):
        item, leaves = by_name[name]
        assert item == it.data, "item %s differs from the source" % name
        check_leaves(leaves, it.files, name)
    assert m.stats()["read_errors"] == 0


# --------------------------------------------------------------------------
# WebDataset


def source_members(tar_path):
    """{member name: bytes} of the regular files of a tar, read from the source."""
    with tarfile.open(tar_path) as tar:
        return {mb.name: tar.extractfile(mb).read() for mb in tar.getmembers() if mb.isfile()}


def test_webdataset_recipe(mount, server):
    """The recipe's tar stream over each mounted shard and its walk of
    NAME.tar.d/ both give every member's bytes, as the source tar holds them."""
    m = mount(server.url + "wds/")
    for shard in WDS_SHARDS:
        code = recipe("webdataset", {"/mnt/wds/shard-000000.tar": m.file(shard)})
        scope = {}
        exec(compile(code, "docs/recipes.md:webdataset", "exec"), scope)
        want = source_members(os.path.join(data_dir("wds"), shard))
        assert len(want) > 100, shard
        assert scope["samples"] == want, "the tar stream of %s differs from the source" % shard
        assert scope["members"] == want, "%s.d/ differs from the source" % shard
    assert sha256_file(m.file(WDS_SHARDS[0])) == \
        source_sha256(os.path.join(data_dir("wds"), WDS_SHARDS[0]))


# --------------------------------------------------------------------------
# numpy.memmap of a failing chunk


@pytest.mark.log_allow(r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 503; giving up after 1 attempts \(EIO\)$")
def test_mmap_sigbus_recipe(serve, mount, small):
    """The recipe's numpy.memmap of a chunk the server fails (503) dies of
    SIGBUS in its own process; .chunkfs/errors names the chunk, and the other
    chunks still read. (tests/test_fault_matrix.py runs every fault against
    an mmap reader; this is the recipe's own code and the place it says to look.)"""
    srv = serve(small)
    srv.set_fault(FAILING, "status", code=503)
    m = mount(srv.url, "--retries=0", "--timeout=5")
    rc, out, err = run_python(recipe("mmap-sigbus", {"/mnt/ds": m.path}), "the memmap reader")
    assert rc == -signal.SIGBUS, "the reader ended with %d, not SIGBUS:\n%s" % (rc, err[-2000:])
    rows = [r for r in errors_of(m) if r["object"] == FAILING]
    assert rows and rows[0]["errno"] == "EIO" and "HTTP 503" in rows[0]["cause"], errors_of(m)
    other = "chunk-1-2.bin"
    assert sha256_file(m.file(other)) == source_sha256(os.path.join(small, other))


# --------------------------------------------------------------------------
# a dead mount


def fusermount(*args):
    return subprocess.run([FUSERMOUNT] + list(args), capture_output=True, text=True,
                          timeout=scaled(30))


def kill_daemon(m):
    """kill -9 of the mount's daemon, by its PID; the mount stays, dead."""
    m.kill()
    assert is_mounted(m.path)
    e = errno_of(lambda: os.listdir(m.path), "ls of the dead mount")
    assert e == errno.ENOTCONN, "ls of a dead mount: %s (want ENOTCONN)" % errname(e)


def close_dead(fd):
    """Close a descriptor of a dead mount: the kernel's flush to the gone
    daemon fails with ENOTCONN, and the descriptor is closed all the same."""
    try:
        os.close(fd)
    except OSError as e:
        assert e.errno == errno.ENOTCONN, "close on a dead mount: %s" % errname(e)


def test_dead_mount_recipe(chunkfs_bin, mount, server, tmp_path):
    """A killed daemon leaves a mount whose stat fails with ENOTCONN; chunkfs
    refuses it; fusermount3 -u removes it. With a file held open, -u fails
    busy and -uz removes it. The mountpoint is a plain, empty directory
    again, and a new mount there works."""
    src = data_dir("litdata-mixed")
    url = server.url + "litdata-mixed/"
    m = mount(url)
    path = m.path
    kill_daemon(m)
    r = run_chunkfs(chunkfs_bin, ["-f", "--cache-dir=%s" % (tmp_path / "refused"), url, path])
    assert r.returncode != 0 and "already a mount (unmount it first)" in r.stderr, r.stderr
    r = fusermount("-u", path)
    assert r.returncode == 0, r.stderr
    assert not is_mounted(path) and os.listdir(path) == []

    m = mount(url, mountpoint=path)
    name = index_chunks(src)[0][0]
    held = os.open(m.file(name), os.O_RDONLY)
    try:
        assert os.pread(held, 4096, 0) == read_bytes(os.path.join(src, name))[:4096]
        kill_daemon(m)
        r = fusermount("-u", path)
        assert r.returncode != 0 and "busy" in r.stderr, (r.returncode, r.stderr)
        assert is_mounted(path)
        r = fusermount("-uz", path)
        assert r.returncode == 0, r.stderr
        assert not is_mounted(path)
    finally:
        close_dead(held)
        force_unmount(path)
    assert os.listdir(path) == []

    m = mount(url, mountpoint=path)
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name))


def test_auto_unmount_recipe(mount, server):
    """Mounted with -o auto_unmount, a killed daemon's mount goes away by
    itself (fusermount3 unmounts it), leaving a plain, empty directory."""
    m = mount(server.url + "litdata-mixed/", "-o", "auto_unmount")
    m.kill()
    wait_for(lambda: not is_mounted(m.path), scaled(10), "%s to be unmounted" % m.path)
    assert os.listdir(m.path) == []


# --------------------------------------------------------------------------
# allow_other


@pytest.fixture
def shared_mountpoints():
    """Factory: a new empty directory that another uid can reach (pytest's
    tmp_path is root's alone); removed at teardown, once unmounted."""
    base = tempfile.mkdtemp(prefix="chunkfs-recipes-")
    os.chmod(base, 0o755)
    made = []

    def make():
        path = os.path.join(base, "mnt%d" % len(made))
        os.mkdir(path)
        made.append(path)
        return path

    yield make
    for path in made:
        if force_unmount(path):
            os.rmdir(path)
    os.rmdir(base)


def cat_as_nobody(path):
    """`setpriv ... cat path` as uid and gid 65534: (returncode, stdout, stderr)."""
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                        "--clear-groups", "cat", path], capture_output=True,
                       timeout=scaled(30))
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts as root and reads as uid 65534")
def test_allow_other_recipe(shared_mountpoints, mount, server):
    """Mounted by root with -o allow_other, another uid reads a chunk's bytes;
    without it, the same read is refused with EACCES (Permission denied)."""
    src = data_dir("litdata-mixed")
    url = server.url + "litdata-mixed/"
    name = index_chunks(src)[0][0]
    m = mount(url, "-o", "allow_other", mountpoint=shared_mountpoints())
    rc, out, err = cat_as_nobody(m.file(name))
    assert rc == 0, err
    assert out == read_bytes(os.path.join(src, name))
    m = mount(url, mountpoint=shared_mountpoints())
    rc, out, err = cat_as_nobody(m.file(name))
    assert rc != 0 and out == b"" and "Permission denied" in err, (rc, err)


# --------------------------------------------------------------------------
# LitData and MosaicML streaming: what they do on the mount


def test_mds_reads_in_place(mount, server):
    """What MosaicML streaming does with local= the mount and remote=None:
    os.walk of local sees exactly index.json and the shards (the views are
    hidden), and each sample read as MDSReader.get_sample_data reads it (open,
    the 8-byte offset pair, the sample, close) equals the source sample."""
    src = data_dir("mds-plain")
    m = mount(server.url + "mds-plain/")
    index = formats.load_index(src)
    shards = [s["raw_data"]["basename"] for s in index["shards"]]
    walked = [(os.path.relpath(d, m.path), sorted(fs)) for d, _, fs in os.walk(m.path)]
    assert walked == [(".", sorted(["index.json"] + shards))], walked
    want = iter(formats.dataset_items(src))
    for shard in index["shards"]:
        path = m.file(shard["raw_data"]["basename"])
        for idx in range(shard["samples"]):
            with open(path, "rb", 0) as fp:
                fp.seek((1 + idx) * 4)
                begin, end = struct.unpack("<2I", fp.read(8))
                fp.seek(begin)
                sample = fp.read(end - begin)
            assert sample == next(want).data, "%s sample %d" % (path, idx)


@pytest.mark.parametrize("name,written", [
    ("litdata-mixed-zstd", "chunk-0-3.bin.decompress.lock"),
    ("mds-zstd", "shard.00000.mds.tmp"),
])
def test_compressed_datasets_need_decompressed(mount, server, name, written):
    """The file a loader writes to decompress a chunk beside it (LitData's
    lock, MDS's .tmp) is refused with EROFS on the plain path, and nothing
    is there to be written in .decompressed/, whose index says no compression."""
    m = mount(server.url + name + "/")

    def create():
        with open(m.file(written), "wb"):
            pass
    e = errno_of(create, "create of %s" % written)
    assert e == errno.EROFS, "create of %s: %s (want EROFS)" % (written, errname(e))
    index = formats.load_index(m.file(".decompressed"))
    if formats.is_mds(index):
        assert all(s["compression"] is None and s["zip_data"] is None for s in index["shards"])
    else:
        assert index["config"]["compression"] is None
