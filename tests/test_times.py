"""File times: a file shows its object's Last-Modified (an HTTP HEAD, nginx's
JSON autoindex) or LastModified (S3 ListObjectsV2); a tar member its own
header's mtime; an item, its NNN.d/ and its leaves their chunk's; a
decompressed chunk its compressed one's; directories the mount's start."""
import calendar
import io
import os
import shutil
import tarfile
import time
from xml.etree import ElementTree

import pytest

import formats
from cfsutil import chunkfs_env, data_dir, index_chunks
from s3fixture import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, S3rver, upload_tree

MIXED = "litdata-mixed"
ZSTD = "litdata-mixed-zstd"
T0 = 1500000000            # 2017-07-14T02:40:00Z: the first file's mtime, then one day apart
DAY = 86400
PREFIX = "ds"
PLAIN = "plain"


def set_mtimes(directory):
    """Give every file of directory its own whole-second mtime: {name: seconds}."""
    times = {}
    for i, name in enumerate(sorted(os.listdir(directory))):
        times[name] = T0 + i * DAY
        os.utime(os.path.join(directory, name), (times[name], times[name]))
    return times


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A plain and a zstd LitData dataset and a directory of plain files, every file
    with a known mtime: (root, {dir: {name: seconds}})."""
    root = tmp_path_factory.mktemp("times")
    times = {}
    for name in (MIXED, ZSTD):
        shutil.copytree(data_dir(name), str(root / name))
        times[name] = set_mtimes(str(root / name))
    (root / PLAIN).mkdir()
    for i in range(3):
        (root / PLAIN / ("f%d.txt" % i)).write_bytes(b"file %d\n" % i)
    times[PLAIN] = set_mtimes(str(root / PLAIN))
    return str(root), times


def mtime(path):
    return os.stat(path).st_mtime_ns


def check_dataset(m, sub, times):
    """Chunks and index.json show the source's mtimes, items and their leaves their
    chunk's, a decompressed chunk its compressed one's."""
    for name, secs in times.items():
        assert mtime(m.file(sub, name)) == secs * 10**9, name
    index = formats.load_index(data_dir(sub))
    first_chunk = index["chunks"][0]["filename"]
    want = times[first_chunk] * 10**9
    assert mtime(m.file(sub, ".items", "000")) == want
    assert mtime(m.file(sub, ".items", "000.d")) == want
    leaf = sorted(os.listdir(m.file(sub, ".items", "000.d")))[0]
    assert mtime(m.file(sub, ".items", "000.d", leaf)) == want
    if index["config"].get("compression") == "zstd":
        plain = first_chunk[:-len(".zstd.bin")] + ".bin"
        assert mtime(m.file(sub, ".decompressed", plain)) == want


def test_http_json_listing(mount, module_nginx, remote):
    """nginx's JSON autoindex gives each file's "mtime": files carry the source's
    mtimes, items their chunk's; directories the mount's start."""
    root, times = remote
    server = module_nginx(root, extra_conf="        autoindex on; autoindex_format json;\n")
    before = time.time_ns()
    m = mount(server.url)
    after = time.time_ns()
    check_dataset(m, MIXED, times[MIXED])
    check_dataset(m, ZSTD, times[ZSTD])
    for name, secs in times[PLAIN].items():
        assert mtime(m.file(PLAIN, name)) == secs * 10**9, name
    dirs = [m.path, m.file(MIXED), m.file(MIXED, ".items"), m.file(ZSTD, ".decompressed")]
    shown = {mtime(d) for d in dirs}
    assert len(shown) == 1, "directories differ in time: %r" % shown
    assert before - 10**9 <= shown.pop() <= after, "not the mount's start"


def test_http_head(mount, module_nginx, remote):
    """nginx's HTML autoindex gives no size and no time: a file is sized by a HEAD at
    its lookup, whose Last-Modified is its time. A chunk the index sizes (no HEAD)
    shows the mount's start, as index.json does."""
    root, times = remote
    server = module_nginx(root, extra_conf="        autoindex on;\n")
    m = mount(server.url)
    for name, secs in times[PLAIN].items():
        assert mtime(m.file(PLAIN, name)) == secs * 10**9, name
    start = mtime(m.path)
    for name in times[MIXED]:
        assert mtime(m.file(MIXED, name)) == start, name


def tar_bytes(fmt, members):
    """A tar archive in format fmt of (name, data or None for a directory, mtime)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, data, when in members:
            info = tarfile.TarInfo(name)
            info.mtime = when
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return out.getvalue()


TAR_MEMBERS = [("sub", None, T0 - 5 * DAY), ("sub/a.txt", b"alpha\n", T0),
               ("sub/b.bin", b"\x00" * 700, T0 + 123), ("deep/er/c.txt", b"c\n", 86399),
               ("zero.txt", b"epoch\n", 0)]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                 tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"])
def test_tar_member_mtimes(mount, nginx, tmp_path, fmt):
    """Members, and directories that have a member of their own, show the header's
    mtime (pax's fractional mtime to the microsecond); the archive its Last-Modified."""
    members = list(TAR_MEMBERS)
    if fmt == tarfile.PAX_FORMAT:
        members.append(("frac.txt", b"f\n", T0 + 0.25))
    root = tmp_path / "tars"
    root.mkdir()
    (root / "t.tar").write_bytes(tar_bytes(fmt, members))
    os.utime(root / "t.tar", (T0 + 7, T0 + 7))
    m = mount(nginx(str(root), extra_conf="        autoindex on;\n").url)
    assert mtime(m.file("t.tar")) == (T0 + 7) * 10**9
    for name, data, when in members:
        assert mtime(m.file("t.tar.d", *name.split("/"))) == int(when * 10**6) * 1000, name
        if data is not None:
            with open(m.file("t.tar.d", *name.split("/")), "rb") as f:
                assert f.read() == data, name


def last_modified(client, bucket, prefix):
    """{key: LastModified in microseconds since the epoch} of a ListObjectsV2 of prefix."""
    query = [("list-type", "2"), ("prefix", prefix + "/"), ("delimiter", "/")]
    status, _, body = client.request("GET", bucket, query=query)
    assert status == 200, body[:500]
    out = {}
    root = ElementTree.fromstring(body)
    tag = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    for c in root.iter(tag + "Contents"):
        text = c.findtext(tag + "LastModified")
        when = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
        frac = text[19:].rstrip("Z")
        us = round(float(frac) * 10**6) if frac else 0
        out[c.findtext(tag + "Key")] = calendar.timegm(when) * 10**6 + us
    return out


@pytest.fixture(scope="module")
def s3_times(tmp_path_factory):
    """An S3 server holding litdata-mixed under PREFIX, stopped by PID at the end."""
    server = S3rver(tmp_path_factory.mktemp("s3times"), [BUCKET])
    try:
        server.start()
        upload_tree(server.client(), BUCKET, PREFIX, data_dir(MIXED))
        yield server
    finally:
        server.stop()


def test_s3_last_modified(mount, s3_times, tmp_path):
    """Objects show the LastModified their ListObjectsV2 entry gives, to the microsecond;
    items their chunk's."""
    listed = last_modified(s3_times.client(), BUCKET, PREFIX)
    assert len(listed) == len(os.listdir(data_dir(MIXED)))
    home = tmp_path / "home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = chunkfs_env(base, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                      HOME=str(home))
    m = mount("s3://%s/%s" % (BUCKET, PREFIX), "--endpoint=" + s3_times.url,
              "--region=" + REGION, "--s3-addressing=path", env=env)
    for key, us in listed.items():
        name = key.rsplit("/", 1)[1]
        assert mtime(m.file(name)) == us * 1000, name
    first_chunk = index_chunks(data_dir(MIXED))[0][0]
    assert mtime(m.file(".items", "000")) == listed[PREFIX + "/" + first_chunk] * 1000
