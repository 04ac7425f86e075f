"""WebDataset shards: `X.tar.d/` holds the tar's members, byte for byte as `tar -x`
writes them (GNU long names, pax headers, subdirectories, big members); a
header with a bad checksum ends the member list there."""
import errno
import io
import os
import random
import shutil
import signal
import subprocess
import tarfile

import pytest

from cfsutil import (MiB, check_hidden, data_dir, scaled, sha256_file, source_sha256,
                     wait_for)
from itemutil import errno_of, errname, read_bytes

WDS_SHARDS = ["shard-000000.tar", "shard-000001.tar"]
BAD_SHARD = "shard-000000.tar"
BAD_MEMBERS = [0, 30, 119]  # members whose header gets a wrong checksum (one a copy)
BIG = 8 * MiB + 12345      # a member the header scan has to jump over


def tar_extract(tar_path, out):
    os.makedirs(out)
    subprocess.run(["tar", "-xf", tar_path, "-C", out], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return out


def tree(root):
    """({relative file path: path}, {relative dir path}) of a directory tree."""
    files, dirs = {}, set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            dirs.add(os.path.normpath(os.path.join(rel, d)))
        for f in filenames:
            files[os.path.normpath(os.path.join(rel, f))] = os.path.join(dirpath, f)
    return files, dirs


def make_member_tree(src):
    rng = random.Random(4242)
    entries = {
        "a.cls": b"7",
        "empty.txt": b"",
        "exact.bin": rng.randbytes(1024),
        "big.bin": rng.randbytes(BIG),
        "sub/dir/deep.json": b'{"deep": true}\n',
        "sub/" + "y" * 120 + ".json": b'{"long": "name"}\n',
        "sub/" + "z" * 90 + "/" + "w" * 120 + ".txt": "h\u00e9llo\n".encode(),
        "after-big.cls": b"3",
    }
    for rel, data in entries.items():
        path = os.path.join(src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return ["a.cls", "empty.txt", "exact.bin", "big.bin", "sub", "after-big.cls"]


@pytest.fixture(scope="module")
def tars(tmp_path_factory, module_nginx):
    """root/wds (the fixtures), root/gen (generated gnu and pax tars),
    root/bad (a copy of shard-000000.tar with one header checksum wrong),
    served with autoindex (a WebDataset directory has no index.json)."""
    base = tmp_path_factory.mktemp("tars")
    root = base / "root"
    root.mkdir()
    os.symlink(data_dir("wds"), root / "wds")
    src = base / "src"
    src.mkdir()
    top = make_member_tree(str(src))
    (root / "gen").mkdir()
    for fmt in ["gnu", "pax"]:
        subprocess.run(["tar", "--format=" + fmt, "-cf", str(root / "gen" / (fmt + ".tar")),
                        "-C", str(src)] + top, check=True, timeout=60)
    with tarfile.open(root / "gen" / "pax.tar") as t:
        assert any("path" in ti.pax_headers for ti in t.getmembers()), "no pax path header"
    with tarfile.open(os.path.join(data_dir("wds"), BAD_SHARD)) as t:
        members = t.getmembers()
    for k in BAD_MEMBERS:
        (root / ("bad%d" % k)).mkdir()
        bad = root / ("bad%d" % k) / BAD_SHARD
        shutil.copyfile(os.path.join(data_dir("wds"), BAD_SHARD), bad)
        header = members[k].offset_data - 512      # its own ustar header
        with open(bad, "r+b") as f:
            f.seek(header + 148)
            field = f.read(8)
            value = int(field.rstrip(b"\0 ").decode(), 8)
            f.seek(header + 148)
            f.write(b"%06o\0 " % (value + 1))
    refs = {}
    for rel in ["wds/" + s for s in WDS_SHARDS] + ["gen/gnu.tar", "gen/pax.tar"]:
        refs[rel] = tar_extract(str(root / rel), str(base / "x" / rel))
    srv = module_nginx(str(root), extra_conf="        autoindex on;\n")
    return {"root": str(root), "server": srv, "refs": refs, "members": members}


def compare_tree(mount_dir, ref_dir):
    got_files, got_dirs = tree(mount_dir)
    want_files, want_dirs = tree(ref_dir)
    assert sorted(got_files) == sorted(want_files), \
        "members differ: missing %r, extra %r" % (sorted(set(want_files) - set(got_files)),
                                                  sorted(set(got_files) - set(want_files)))
    assert got_dirs == want_dirs
    for rel, path in want_files.items():
        assert os.stat(got_files[rel]).st_size == os.path.getsize(path), rel
        assert sha256_file(got_files[rel]) == source_sha256(path), rel
    return want_files


@pytest.mark.parametrize("shard", WDS_SHARDS)
def test_fixture_shard_members(mount, tars, shard):
    """Every member of the fixture shards (GNU tar's and Python tarfile's)
    equals tar -x's file, the member with a name over 100 characters included."""
    m = mount(tars["server"].url + "wds/")
    assert sorted(os.listdir(m.path)) == sorted(WDS_SHARDS)
    check_hidden(m.path, [".chunkfs"] + [s + ".d" for s in WDS_SHARDS])
    files = compare_tree(m.file(shard + ".d"), tars["refs"]["wds/" + shard])
    assert len(files) == 120
    if shard == "shard-000000.tar":   # GNU format: a ././@LongLink member
        assert any(len(name) > 100 for name in files), "no long-named member in the fixture"
    assert sha256_file(m.file(shard)) == source_sha256(os.path.join(data_dir("wds"), shard))
    assert m.stats()["read_errors"] == 0


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_generated_tar(mount, tars, fmt):
    """Subdirectories, an empty member, a name over 100 characters in a
    subdirectory, a path over 255 characters, and a member over 8 MiB that the
    header scan jumps over: listing the members does not fetch the big one."""
    name = fmt + ".tar"
    m = mount(tars["server"].url + "gen/")
    size = os.path.getsize(os.path.join(tars["root"], "gen", name))
    before = m.stats()["bytes_fetched"]
    got_files, _ = tree(m.file(name + ".d"))
    assert "after-big.cls" in got_files and "big.bin" in got_files
    assert os.stat(got_files["big.bin"]).st_size == BIG
    fetched = m.stats()["bytes_fetched"] - before
    assert fetched < BIG // 2, "listing the members fetched %d of the tar's %d bytes" % (
        fetched, size)
    compare_tree(m.file(name + ".d"), tars["refs"]["gen/" + name])
    long_path = os.path.join(m.file(name + ".d"), "sub", "z" * 90, "w" * 120 + ".txt")
    assert len(os.path.relpath(long_path, m.file(name + ".d"))) > 200
    assert read_bytes(long_path) == "h\u00e9llo\n".encode()
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(tars["root"], "gen", name))


@pytest.mark.parametrize("bad_member", BAD_MEMBERS)
@pytest.mark.log_allow(r"^shard-\d+\.tar bytes \d+-\d+: tar header at byte \d+: bad checksum; the members after it are not shown \(EIO\)$")
def test_bad_header_checksum(mount, tars, bad_member):
    """Members before the header with a wrong checksum are listed and read
    right; it and the members after it are absent; the log names the shard;
    the raw tar still reads whole."""
    sub = "bad%d" % bad_member
    m = mount(tars["server"].url + sub + "/")
    d = m.file(BAD_SHARD + ".d")
    members = [t for t in tars["members"] if t.isfile()]
    before = [t.name for t in tars["members"][:bad_member] if t.isfile()]
    after = [t.name for t in tars["members"][bad_member:] if t.isfile()]
    assert len(before) == bad_member and len(before) + len(after) == len(members)
    ref = tars["refs"]["wds/" + BAD_SHARD]
    got_files, _ = tree(d)
    assert sorted(got_files) == sorted(before)
    for rel in before:
        assert read_bytes(os.path.join(d, rel)) == read_bytes(os.path.join(ref, rel)), rel
    wrong = []
    for rel in after:
        e = errno_of(lambda: os.stat(os.path.join(d, rel)), "stat of " + rel)
        if e != errno.ENOENT:
            wrong.append("%s: %s (want ENOENT)" % (rel, errname(e)))
    assert not wrong, "\n".join(wrong)
    raw = os.path.join(tars["root"], sub, BAD_SHARD)
    assert sha256_file(m.file(BAD_SHARD)) == sha256_file(raw)
    assert BAD_SHARD in m.read_log(), "no log line names the shard:\n" + m.read_log()
    assert m.alive() and m.stats()["mem_cap"] > 0


def test_stop_while_a_tar_is_scanned(mount, nginx, tmp_path):
    """SIGTERM to the daemon while a tar's member list is still being read
    over a slow link (a reader waiting on it): the daemon stops with the scan
    in flight (its request cancelled, its later reads refused) and exits 0
    with no sanitizer report; the reader gets an answer or an error."""
    root = tmp_path / "slow"
    root.mkdir()
    rng = random.Random(99)
    with tarfile.open(root / "many.tar", "w", format=tarfile.GNU_FORMAT) as t:
        for i in range(4000):
            data = rng.randbytes(700)
            info = tarfile.TarInfo("m%05d.bin" % i)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    srv = nginx(str(root), limit_rate="512k", extra_conf="        autoindex on;\n")
    m = mount(srv.url, "--readahead=0")
    lister = subprocess.Popen(["ls", m.file("many.tar.d")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: m.stats()["bytes_fetched"] > 0, scaled(20), "the scan to start")
        assert m.stats()["bytes_fetched"] < os.path.getsize(root / "many.tar"), \
            "the scan ended before the daemon was stopped: the test proves nothing"
        os.kill(m.pid, signal.SIGTERM)
        m.proc.wait(timeout=scaled(20))
    finally:
        lister.wait(timeout=scaled(20))  # answered, or failed by the connection's end
    assert m.unmount() == []
    assert m.returncode == 0, m.read_log()
