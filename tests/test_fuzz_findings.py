"""What fuzzing the parsers found (docs/hostile.md, "Fuzzing"), on a real mount:
an empty body, which GLib hands over as NULL (an index.json: a NULL GError
dereference; a ListObjectsV2 page: an error never set), an empty zstd
chunk, whose stream could neither deliver nor fail (a reader waited for
ever), and idle zstd streams freed at unmount through GSlice. Each ends in
a clean error within a bound, the daemon lives on, and the rest is still
served byte for byte."""
import errno
import hashlib
import json
import os
import shutil
import struct
import subprocess

import pytest

from cfsutil import chunkfs_env, data_dir, sha256_file
from itemutil import errname, errno_of, read_bytes
import formats
from test_hostile import run_on_s3_listing


@pytest.mark.log_allow(r"^empty/index\.json: .*: not a dataset index: the JSON is not an object; "
                       r"showing the directory as it is \(EIO\)$")
def test_empty_index_json(mount, nginx, tmp_path):
    """An index.json of 0 bytes: its directory shows its files and no .items/."""
    root = tmp_path / "www"
    shutil.copytree(data_dir("litdata-mixed"), root / "ok")
    shutil.copytree(data_dir("litdata-mixed"), root / "empty")
    (root / "empty" / "index.json").write_bytes(b"")
    m = mount(nginx(str(root), extra_conf="        autoindex on;\n").url)
    d = m.file("empty")
    assert sorted(os.listdir(d)) == sorted(os.listdir(root / "empty"))
    e = errno_of(lambda: os.stat(os.path.join(d, ".items")), "stat of empty/.items")
    assert e == errno.ENOENT, "empty/.items: %s (want ENOENT)" % errname(e)
    assert sha256_file(os.path.join(d, "chunk-0-0.bin")) == \
        sha256_file(root / "empty" / "chunk-0-0.bin")
    assert read_bytes(m.file("ok", ".items", "000")) == \
        formats.dataset_items(data_dir("litdata-mixed"))[0].data
    assert m.alive()


def test_empty_s3_listing(chunkfs_bin, nginx, tmp_path):
    """A ListObjectsV2 answer of 0 bytes at the root: the mount fails with a message,
    not a signal."""
    www = tmp_path / "www"
    (www / "bkt" / "p").mkdir(parents=True)
    listing = tmp_path / "listing.xml"
    listing.write_bytes(b"")
    rc, stderr, _ = run_on_s3_listing(chunkfs_bin, nginx, tmp_path, www, listing)
    assert rc != 0 and rc < 128 and rc not in (-11, -6), \
        "chunkfs exited %d:\n%s" % (rc, stderr)
    assert "empty" in stderr, stderr


def test_empty_zstd_chunk(mount, nginx, tmp_path):
    """An MDS shard whose zstd file is empty (and listed so): reading its decompressed
    view fails with EIO at once instead of waiting for ever; the other shards read
    right."""
    root = tmp_path / "www"
    shutil.copytree(data_dir("mds-zstd"), root)
    index = json.loads((root / "index.json").read_text())
    first = index["shards"][0]
    (root / first["zip_data"]["basename"]).write_bytes(b"")
    first["zip_data"]["bytes"] = 0
    (root / "index.json").write_text(json.dumps(index))
    m = mount(nginx(str(root)).url)
    plain = m.file(".decompressed", first["raw_data"]["basename"])
    e = errno_of(lambda: read_bytes(plain), "read of %s" % plain)
    assert e == errno.EIO, "%s: %s (want EIO)" % (plain, errname(e))
    second = index["shards"][1]["raw_data"]
    data = read_bytes(m.file(".decompressed", second["basename"]))
    assert hashlib.sha1(data).hexdigest() == second["hashes"]["sha1"]
    assert m.alive()


def test_idle_zstd_streams_at_unmount(mount, nginx, tmp_path):
    """Streams left idle by partial reads are freed at unmount without handing their
    own list links to GSlice (with G_SLICE=always-malloc the sanitizer build saw a
    free of memory malloc never gave; the mount's teardown fails on such a report).
    Each chunk is followed by a skippable frame of 100 KB (RFC 8878 section 3.1.2),
    so that its first piece does not reach its end and the stream stays."""
    root = tmp_path / "www"
    shutil.copytree(data_dir("litdata-mixed-zstd"), root)
    skippable = struct.pack("<II", 0x184D2A50, 100000) + bytes(100000)
    names = ("chunk-0-0", "chunk-0-1")
    for name in names:
        with open(root / (name + ".zstd.bin"), "ab") as f:
            f.write(skippable)
    m = mount(nginx(str(root)).url, env=chunkfs_env(G_SLICE="always-malloc"))
    for name in names:
        want = subprocess.run(["zstd", "-dc", str(root / (name + ".zstd.bin"))],
                              capture_output=True, check=True, timeout=60).stdout
        with open(m.file(".decompressed", name + ".bin"), "rb", buffering=0) as f:
            assert f.read(100) == want[:100]
    assert m.alive()


# A zstd frame whose descriptor sets the reserved bit (RFC 8878 section 3.1.1.1.1), so that
# its header is refused, and whose window descriptor starts a v0.7 frame (magic 0xFD2FB527)
# of one raw block, "hello".
PRE_1_0_IN_HEADER = (bytes.fromhex("28b52ffd08") + bytes.fromhex("27b52ffd2005") +
                     bytes([0x40, 0, 5]) + b"hello" + bytes([0xc0, 0, 0]))


@pytest.mark.log_allow(r"^\.decompressed/shard\.00000\.mds bytes \d+-\d+: shard\.00000\.mds\.zstd: "
                       r"bad zstd data near compressed byte \d+: .*; EIO from here on \(EIO\)$")
def test_pre_1_0_frame_after_a_cut_header(serve, mount, tmp_path):
    """A shard of PRE_1_0_IN_HEADER sent 5 bytes at a time, cut right after the frame's
    descriptor: libzstd, handed the rest of a header it gathered over calls, looked for a
    pre-1.0 frame at the start of that call when the header was bad, and decoded "hello"
    (the same bytes in one piece failed). Headers go to libzstd whole now: the shard's
    decompressed view is EIO; the other shards read right."""
    root = tmp_path / "www"
    shutil.copytree(data_dir("mds-zstd"), root)
    index = json.loads((root / "index.json").read_text())
    first = index["shards"][0]
    (root / first["zip_data"]["basename"]).write_bytes(PRE_1_0_IN_HEADER)
    first["zip_data"]["bytes"] = len(PRE_1_0_IN_HEADER)
    first["raw_data"]["bytes"] = len(b"hello")
    (root / "index.json").write_text(json.dumps(index))
    srv = serve(str(root))
    srv.set_fault(first["zip_data"]["basename"], "trickle", bytes=5, interval=0.05)
    m = mount(srv.url)
    plain = m.file(".decompressed", first["raw_data"]["basename"])
    e = errno_of(lambda: read_bytes(plain), "read of %s" % plain)
    assert e == errno.EIO, "%s: %s (want EIO)" % (plain, errname(e))
    assert srv.fired(first["zip_data"]["basename"], "trickle"), "the shard was not trickled"
    second = index["shards"][1]["raw_data"]
    data = read_bytes(m.file(".decompressed", second["basename"]))
    assert hashlib.sha1(data).hexdigest() == second["hashes"]["sha1"]
    assert m.alive()
