"""Memory that listings hold (docs/hostile.md): a relisting after --metadata-ttl
removes the names the server no longer lists, a removed node is freed once the
kernel has forgotten it and nothing holds it, and a server that renames every
object at every listing does not grow the daemon. The views of a dataset and of a
tar archive, with their indexes and tables, follow the names that show them.

nginx serves a directory with its JSON autoindex; the tests rename, remove and
add files there between listings. The kernel's FORGETs are provoked with
`echo 2 > /proc/sys/vm/drop_caches` (unused dentries and inodes are dropped,
and FUSE sends FORGET for each inode it drops). Every wait is a condition with
a deadline.
"""
import ctypes
import errno
import io
import json
import os
import shutil
import struct
import tarfile

import pytest

from cfsutil import (check_hidden, data_dir, dataset_listing, open_direct, run_with_deadline,
                     scaled, wait_for)
from faultserver import FaultServer
from itemutil import read_bytes
import formats

AUTOINDEX = "        autoindex on; autoindex_format json;\n"
TTL = "--metadata-ttl=1"
CONTROL_NODES = 5          # the root, .chunkfs/ and its stats, metrics and errors
DROP_CACHES = "/proc/sys/vm/drop_caches"


def drop_caches():
    """Make the kernel drop unused dentries and inodes: FUSE forgets their lookups."""
    if not os.access(DROP_CACHES, os.W_OK):
        pytest.skip("%s is not writable (needs root)" % DROP_CACHES)
    with open(DROP_CACHES, "w") as f:
        f.write("2")


def content(gen, i):
    """The bytes of file i of generation gen: different in every generation."""
    return (b"%d:%d|" % (gen, i)) * (700 + 37 * i)


def listed(m, sub=""):
    """What the mount shows in sub (.chunkfs left out), sorted; relists once the TTL passed."""
    names = run_with_deadline(lambda: os.listdir(m.file(sub)), scaled(10), "readdir")
    return sorted(n for n in names if n != ".chunkfs")


def wait_listed(m, names, sub=""):
    """Wait until the mount shows exactly names in sub (the relisting after the TTL)."""
    want = sorted(names)
    wait_for(lambda: listed(m, sub) == want, scaled(15), "the listing of /%s to be %s"
             % (sub, want[:4]))


def node_count(m):
    return m.stats()["nodes"]


def test_renaming_server_keeps_nodes_bounded(nginx, mount, tmp_path):
    """A server that renames every object at every listing: each relisting shows
    exactly the current names, each reads its own bytes, an old name is gone,
    and once the kernel forgot them the daemon holds no node of an old name
    (about 300 bytes each, and its object, were kept for ever before)."""
    files, rounds = 8, 12
    root = tmp_path / "www"
    root.mkdir()
    for i in range(files):
        (root / ("g0-%d.bin" % i)).write_bytes(content(0, i))
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    m = mount(srv.url, TTL)
    baseline = CONTROL_NODES + files
    for gen in range(rounds):
        names = ["g%d-%d.bin" % (gen, i) for i in range(files)]
        if gen:
            for i in range(files):
                (root / names[i]).write_bytes(content(gen, i))
                os.unlink(root / ("g%d-%d.bin" % (gen - 1, i)))
        wait_listed(m, names)
        for i, name in enumerate(names):
            assert read_bytes(m.file(name)) == content(gen, i), "%s: wrong bytes" % name
        if gen:
            assert not os.path.exists(m.file("g%d-0.bin" % (gen - 1))), "an old name is still there"
        drop_caches()
        wait_for(lambda: node_count(m) <= baseline, scaled(10),
                 "the nodes of old names to be freed (round %d: %d nodes, want <= %d)"
                 % (gen, node_count(m), baseline))
    wait_for(lambda: m.stats()["objects"] <= files, scaled(10),
             "the objects of old names to be freed (%d)" % m.stats()["objects"])


def test_name_that_comes_back_is_a_new_inode(nginx, mount, tmp_path):
    """A removed name gives ENOENT after the relisting; when it comes back it is a new
    node with a new inode and the new bytes."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.bin").write_bytes(content(1, 1))
    (root / "b.bin").write_bytes(content(1, 2))
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    m = mount(srv.url, TTL)
    old_ino = os.stat(m.file("a.bin")).st_ino
    assert read_bytes(m.file("a.bin")) == content(1, 1)
    os.unlink(root / "a.bin")
    wait_for(lambda: not os.path.exists(m.file("a.bin")), scaled(15),
             "a.bin to be gone after the relisting")
    assert listed(m) == ["b.bin"]
    (root / "a.bin").write_bytes(content(2, 1))
    wait_for(lambda: os.path.exists(m.file("a.bin")), scaled(15), "a.bin to come back")
    assert os.stat(m.file("a.bin")).st_ino != old_ino
    assert read_bytes(m.file("a.bin")) == content(2, 1)
    assert read_bytes(m.file("b.bin")) == content(1, 2)


@pytest.mark.log_allow(r"^big\.bin bytes \d+-\d+: HTTP 404 \(ENOENT\)$")
def test_open_file_across_its_removal(nginx, mount, tmp_path):
    """A file held open while the relisting removes it reads its bytes or fails with
    EIO (the server no longer has it), never crashes the daemon or gives wrong
    bytes; after the close and the kernel's forget its node is freed, and the
    mount serves the other files."""
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(3 << 20)
    (root / "big.bin").write_bytes(data)
    (root / "other.bin").write_bytes(content(0, 3))
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    m = mount(srv.url, TTL)
    fd = os.open(m.file("big.bin"), os.O_RDONLY)
    try:
        assert os.pread(fd, 65536, 0) == data[:65536]
        os.unlink(root / "big.bin")
        wait_listed(m, ["other.bin"])
        drop_caches()
        got = bytearray()
        err = 0
        while len(got) < len(data):
            try:
                piece = run_with_deadline(lambda: os.pread(fd, 1 << 20, len(got)), scaled(30),
                                          "read of the removed file")
            except OSError as e:
                err = e.errno
                break
            if not piece:
                break
            got += piece
        assert bytes(got) == data[:len(got)], "wrong bytes from a removed file"
        assert err in (0, errno.EIO, errno.ESTALE), "read failed with %s" % errno.errorcode[err]
        assert err or len(got) == len(data), "short read before the end without an error"
    finally:
        os.close(fd)
    drop_caches()
    wait_for(lambda: node_count(m) <= CONTROL_NODES + 1, scaled(10),
             "the removed file's node to be freed after the close")
    assert read_bytes(m.file("other.bin")) == content(0, 3)


SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}.get(os.uname().machine)


def getdents(fd, size=4096):
    """The names of one getdents64(2) call on fd with a buffer of size bytes (a
    small buffer: the directory is read in several calls, as a reader of a large
    directory does), "." and ".." left out; [] at the end."""
    if SYS_GETDENTS64 is None:
        pytest.skip("getdents64 syscall number unknown on %s" % os.uname().machine)
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_GETDENTS64, fd, buf, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    names, pos = [], 0
    while pos < n:
        reclen = struct.unpack_from("<H", buf.raw, pos + 16)[0]
        name = buf.raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode()
        if name not in (".", ".."):
            names.append(name)
        pos += reclen
    return names


def test_readdir_resumed_across_a_relisting(nginx, mount, tmp_path):
    """A readdir that has read its first batches of entries, then sees the directory
    relisted with names removed before and after its position and names added,
    reads on without skipping or repeating a name that stayed (its offsets were
    indexes into the children before: removing names before the position
    skipped as many)."""
    names = ["%04d-%s.bin" % (i, "x" * 200) for i in range(300)]
    root = tmp_path / "www"
    (root / "many").mkdir(parents=True)
    for n in names:
        (root / "many" / n).write_bytes(b"")
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    m = mount(srv.url, TTL)
    assert listed(m, "many") == names
    added = ["new-%04d.bin" % i for i in range(20)]
    fd = os.open(m.file("many"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = []
        for _ in range(3):
            seen += run_with_deadline(lambda: getdents(fd), scaled(10), "getdents")
        assert 0 < len(seen) < 100, "the first batches read %d names" % len(seen)
        removed = set(seen[1:-1:2]) | set(names[200:250])
        for n in removed:
            os.unlink(root / "many" / n)
        for n in added:
            (root / "many" / n).write_bytes(b"")
        wait_for(lambda: os.path.exists(m.file("many", added[-1])), scaled(15),
                 "the relisting that shows the new names")
        for _ in range(len(names)):
            batch = run_with_deadline(lambda: getdents(fd), scaled(10), "getdents")
            if not batch:
                break
            seen += batch
    finally:
        os.close(fd)
    repeated = sorted({n for n in seen if seen.count(n) > 1})
    assert not repeated, "names read twice: %s" % [n[:4] for n in repeated[:5]]
    missing = [n for n in names if n not in removed and n not in set(seen)]
    assert not missing, "%d names that stayed were skipped, e.g. %s" % (
        len(missing), [n[:4] for n in missing[:5]])
    assert set(seen) <= set(names) | set(added)
    ahead = [n[:4] for n in names[200:250] if n in set(seen)]
    assert not ahead, "names removed ahead of the position were still read: %s" % ahead[:5]


def test_relisting_keeps_what_is_shown_for_a_listed_name(nginx, mount, tmp_path):
    """A dataset's .items/ and chunks, and NAME.tar.d/, are not in the server's listing:
    relistings keep them while index.json and NAME.tar are listed, and remove them
    with those."""
    src = data_dir("litdata-mixed")
    root = tmp_path / "www"
    shutil.copytree(src, root / "ds")
    members = {"a.txt": b"alpha\n", "b/c.bin": bytes(range(256)) * 4}
    with tarfile.open(root / "x.tar", "w") as tar:
        for name, data in members.items():
            path = tmp_path / "member"
            path.write_bytes(data)
            tar.add(str(path), arcname=name)
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    m = mount(srv.url, TTL)
    items = formats.dataset_items(src)
    assert listed(m, "ds") == sorted(dataset_listing(src))
    assert read_bytes(m.file("x.tar.d", "a.txt")) == members["a.txt"]
    def listings_of_ds():
        return sum(1 for r in srv.requests() if r["request"].startswith("GET /ds/ "))

    before = listings_of_ds()

    def relisted():
        listed(m, "ds")
        return listings_of_ds() > before
    wait_for(relisted, scaled(15), "a relisting of ds/")
    assert listed(m, "ds") == sorted(dataset_listing(src))
    assert read_bytes(m.file("ds", ".items", formats.item_names(len(items))[0])) == items[0].data
    assert listed(m) == ["ds", "x.tar"]
    check_hidden(m.path, ["x.tar.d"])
    assert read_bytes(m.file("x.tar.d", "b", "c.bin")) == members["b/c.bin"]
    os.unlink(root / "x.tar")
    os.unlink(root / "ds" / "index.json")
    wait_listed(m, ["ds"])
    chunk_files = sorted(n for n in os.listdir(src) if n != "index.json")
    wait_listed(m, chunk_files, "ds")


# --------------------------------------------------------------------------
# views: .items/ and NAME.tar.d/ go with index.json and NAME.tar

SRC = data_dir("litdata-mixed")
ITEMS = formats.dataset_items(SRC)
NAMES = formats.item_names(len(ITEMS))
MEMBERS = {"a.txt": b"alpha\n" * 50, "d/b.bin": bytes(range(256)) * 16, "d/e/c.bin": b"c" * 999}


def replace_file(path, data, scratch):
    """Write data to path in one step (written in the directory scratch, outside what
    the server shows, then renamed), so that the server never serves half of it."""
    tmp = scratch / ("new-" + path.name)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def tar_bytes(members):
    """A tar archive holding members (name -> bytes)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def first_plain_leaf(item):
    """(name, bytes) of the first leaf of item whose file is its raw bytes."""
    return next((name, data) for name, data in item.files if isinstance(data, bytes))


def use_views(m, ds, tar):
    """Read items, a leaf and the tar members through the views of ds/ and tar: each
    view loads its tables (chunk offsets, a leaf table, the member index)."""
    for i in (0, len(ITEMS) // 2, len(ITEMS) - 1):
        assert read_bytes(m.file(ds, ".items", NAMES[i])) == ITEMS[i].data, \
            "%s/.items/%s: wrong bytes" % (ds, NAMES[i])
    leaf, data = first_plain_leaf(ITEMS[1])
    assert read_bytes(m.file(ds, ".items", NAMES[1] + ".d", leaf)) == data
    for name, data in MEMBERS.items():
        assert read_bytes(m.file(tar + ".d", *name.split("/"))) == data, \
            "%s.d/%s: wrong bytes" % (tar, name)


def view_stats(m):
    st = m.stats()
    return st["views"], st["view_bytes"]


def test_renaming_server_keeps_views_bounded(nginx, mount, tmp_path):
    """A server that renames its dataset directory and its tar archive at every
    listing: each round shows the new names, reads the right bytes through the new
    views, and once the kernel forgot the old inodes the daemon holds two views and
    the bytes of one round's tables, not those of every round (views, their index
    and tables were kept until unmount before)."""
    rounds = 8
    root = tmp_path / "www"
    shutil.copytree(SRC, root / "ds0")
    (root / "t0.tar").write_bytes(tar_bytes(MEMBERS))
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    m = mount(srv.url, TTL)
    first = None
    for gen in range(rounds):
        ds, tar = "ds%d" % gen, "t%d.tar" % gen
        if gen:
            os.rename(root / ("ds%d" % (gen - 1)), root / ds)
            os.rename(root / ("t%d.tar" % (gen - 1)), root / tar)
        wait_listed(m, [ds, tar])
        check_hidden(m.path, [tar + ".d"])
        use_views(m, ds, tar)
        drop_caches()
        wait_for(lambda: view_stats(m)[0] <= 2, scaled(10),
                 "the views of old names to be freed (round %d: %d views)"
                 % (gen, view_stats(m)[0]))
        if first is None:
            first = view_stats(m)[1]
            assert first > 0, "the views hold no bytes after being used"
        assert view_stats(m)[1] <= first, \
            "round %d: views hold %d bytes, %d after the first round" \
            % (gen, view_stats(m)[1], first)
    os.rename(root / ("ds%d" % (rounds - 1)), root / "gone")
    os.unlink(root / ("t%d.tar" % (rounds - 1)))
    wait_listed(m, ["gone"])
    drop_caches()
    wait_for(lambda: view_stats(m) == (0, 0), scaled(10),
             "every view to be freed once nothing shows one (%s)" % (view_stats(m),))


def test_item_file_open_across_its_index_removal(nginx, mount, tmp_path):
    """An item file held open while a relisting drops index.json (the chunks stay on
    the server) reads its bytes after the kernel's forgets; its view goes once the
    file is closed and forgotten, and a new view shows the items when index.json is
    back."""
    root = tmp_path / "www"
    shutil.copytree(SRC, root / "ds")
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    m = mount(srv.url, TTL)
    last = len(ITEMS) - 1
    fd = open_direct(m.file("ds", ".items", NAMES[last]))
    try:
        assert view_stats(m)[0] == 1
        os.rename(root / "ds" / "index.json", root / "index.json.away")
        chunks = sorted(n for n in os.listdir(SRC) if n != "index.json")
        wait_listed(m, chunks, "ds")
        drop_caches()
        data = ITEMS[last].data
        got = b""
        while len(got) < len(data):
            piece = os.pread(fd, 1 << 20, len(got))
            assert piece, "EOF at %d of %d bytes" % (len(got), len(data))
            got += piece
        assert got == data, "the open item read wrong bytes after its view was removed"
    finally:
        os.close(fd)
    drop_caches()
    wait_for(lambda: view_stats(m) == (0, 0), scaled(10),
             "the view to be freed after the close (%s)" % (view_stats(m),))
    os.rename(root / "index.json.away", root / "ds" / "index.json")
    wait_for(lambda: os.path.isdir(m.file("ds", ".items")), scaled(15), ".items to come back")
    assert read_bytes(m.file("ds", ".items", NAMES[last])) == ITEMS[last].data
    assert view_stats(m)[0] == 1


def index_of(chunks):
    """The index.json of litdata-mixed cut to its first chunks chunks, and their items."""
    index = formats.load_index(SRC)
    index["chunks"] = index["chunks"][:chunks]
    count = sum(c["chunk_size"] for c in index["chunks"])
    return json.dumps(index).encode(), ITEMS[:count]


def members_of(gen):
    """Tar members whose archive is larger in every generation (by one tar record,
    10240 bytes, which the archive's size is a multiple of)."""
    return {"a.txt": (b"%d" % gen) * (10240 * (gen + 1)), "d/b.bin": bytes([gen]) * 700}


def test_replaced_index_and_archive_get_new_views(nginx, mount, tmp_path):
    """index.json and NAME.tar replaced in place by other objects (other sizes) at
    every round: the relisting shows the new ones, their views serve the new index's
    items and the new members, and once the kernel forgot the old inodes two views
    are left (a listed name was kept whatever it listed, with its first view, before)."""
    root = tmp_path / "www"
    shutil.copytree(SRC, root / "ds")
    tar_path = root / "t.tar"
    srv = nginx(str(root), extra_conf=AUTOINDEX)
    first = None
    m = None
    old_views = set()
    for gen, chunks in enumerate(range(10, 2, -1)):
        index, items = index_of(chunks)
        replace_file(root / "ds" / "index.json", index, tmp_path)
        replace_file(tar_path, tar_bytes(members_of(gen)), tmp_path)
        m = m or mount(srv.url, TTL)

        def shown():
            """The new index.json and t.tar are listed, and the kernel's names of
            their views (trusted for the TTL) lead to the new ones."""
            views = (os.stat(m.file("ds", ".items")).st_ino, os.stat(m.file("t.tar.d")).st_ino)
            return os.stat(m.file("ds", "index.json")).st_size == len(index) and \
                os.stat(m.file("t.tar")).st_size == tar_path.stat().st_size and \
                not set(views) & old_views and views
        views = wait_for(shown, scaled(15), "round %d: the new index.json and t.tar" % gen)
        old_views |= set(views)
        names = formats.item_names(len(items))
        assert read_bytes(m.file("ds", ".items", names[-1])) == items[-1].data
        assert len(os.listdir(m.file("ds", ".items"))) == 2 * len(items)
        for name, data in members_of(gen).items():
            assert read_bytes(m.file("t.tar.d", *name.split("/"))) == data, \
                "round %d: t.tar.d/%s: wrong bytes" % (gen, name)
        drop_caches()
        wait_for(lambda: view_stats(m)[0] <= 2, scaled(10),
                 "the views of replaced objects to be freed (round %d: %d views)"
                 % (gen, view_stats(m)[0]))
        first = first or view_stats(m)[1]
        assert view_stats(m)[1] <= first, "round %d: views hold %d bytes, %d in the first" \
            % (gen, view_stats(m)[1], first)


def test_archive_replaced_with_another_etag_gets_a_new_view(mount, tmp_path):
    """S3 lists ETags: an archive replaced by another of the same size (same members,
    other bytes) is shown anew, and its view serves the new bytes (the old node and
    view were kept, and reads of the archive failed with EIO on the changed ETag)."""
    bucket = tmp_path / "www" / "bkt" / "p"
    bucket.mkdir(parents=True)
    with FaultServer(str(tmp_path / "www"), s3_page_keys=100) as srv:
        for gen in range(3):
            members = {"a.txt": b"%d" % gen * 3000, "b.bin": bytes([gen]) * 600}
            replace_file(bucket / "t.tar", tar_bytes(members), tmp_path)
            if not gen:
                m = mount("s3://bkt/p/", "--endpoint=" + srv.url.rstrip("/"), TTL,
                          "--region=us-east-1", "--s3-addressing=path", "--no-sign-request")
            wait_for(lambda: read_bytes(m.file("t.tar.d", "a.txt")) == members["a.txt"],
                     scaled(15), "round %d: the new archive's bytes" % gen)
            assert read_bytes(m.file("t.tar.d", "b.bin")) == members["b.bin"]
            drop_caches()
            wait_for(lambda: view_stats(m)[0] == 1, scaled(10),
                     "the replaced archive's view to be freed (round %d: %d views)"
                     % (gen, view_stats(m)[0]))
