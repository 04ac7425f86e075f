"""scripts/demo URL against nginx serving each kind of dataset chunkfs shows:
it mounts, reads the first MiB of the right file (checked against the source),
unmounts, and leaves no cache directory and no work directory behind."""
import hashlib
import json
import os
import re
import signal
import subprocess
import tarfile

import pytest

from cfsutil import MiB, chunkfs_env, data_dir, force_unmount, scaled, tail

DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "demo")
KINDS = ["litdata-mixed", "litdata-mixed-zstd", "mds-plain", "mds-zstd", "wds"]


@pytest.fixture(scope="module")
def server(module_nginx, tmp_path_factory):
    """nginx listing directories: each fixture kind, a plain directory of files
    and an empty directory."""
    root = tmp_path_factory.mktemp("demo-root")
    for kind in KINDS:
        os.symlink(data_dir(kind), root / kind)
    (root / "plain").mkdir()
    (root / "plain" / "b.txt").write_bytes(b"second\n")
    (root / "plain" / "a.bin").write_bytes(bytes(range(256)) * 8192)
    (root / "empty").mkdir()
    return module_nginx(str(root), extra_conf="        autoindex on;\n"), str(root)


def run_demo(chunkfs_bin, url, tmp_path):
    """scripts/demo URL with HOME and TMPDIR of the test's own; (returncode,
    stdout, stderr). On a timeout the demo is sent SIGTERM (its trap unmounts
    and stops what it started), then SIGKILL."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    # XDG_CACHE_HOME too: root's default cache directory is /var/cache/chunkfs without it
    env = chunkfs_env(HOME=home, XDG_CACHE_HOME=home / ".cache", TMPDIR=tmp,
                      CHUNKFS_BIN=chunkfs_bin, CHUNKFS_OPTS=None)
    p = subprocess.Popen([DEMO, url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, text=True)
    try:
        out, err = p.communicate(timeout=scaled(120))
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=scaled(30))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
        pytest.fail("scripts/demo %s did not finish; stderr:\n%s" % (url, tail(err)))
    finally:
        for point in mounts_below(str(tmp)):
            force_unmount(point)
    return p.returncode, out, err


def mounts_below(directory):
    """Mount points below directory (a path without spaces), from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(directory + "/")]


def left_behind(tmp_path):
    """What the demo left in the test's HOME cache and TMPDIR."""
    cache = tmp_path / "home" / ".cache" / "chunkfs"
    return (sorted(os.listdir(cache)) if cache.exists() else None,
            sorted(os.listdir(tmp_path / "tmp")))


def source_bytes(root, kind, name):
    """The bytes of name (a file of the dataset, or NAME.tar.d/MEMBER) at the source."""
    path = os.path.join(root, kind, name)
    if ".tar.d/" in name:
        archive, member = name.split(".tar.d/", 1)
        with tarfile.open(os.path.join(root, kind, archive + ".tar")) as tar:
            return tar.extractfile(member).read()
    with open(path, "rb") as f:
        return f.read()


def expected_first(root, kind):
    """The file the demo should read: the first chunk or shard the index lists,
    else the first tar shard's first member, else the first file."""
    directory = os.path.join(root, kind)
    index = os.path.join(directory, "index.json")
    if os.path.exists(index):
        with open(index) as f:
            idx = json.load(f)
        if "chunks" in idx:
            return idx["chunks"][0]["filename"]
        shard = idx["shards"][0]
        return (shard.get("zip_data") or shard["raw_data"])["basename"]
    names = sorted(os.listdir(directory))
    tars = [n for n in names if n.endswith(".tar")]
    if tars:
        with tarfile.open(os.path.join(directory, tars[0])) as tar:
            members = sorted(m.name for m in tar.getmembers() if m.isfile())
        return tars[0] + ".d/" + members[0]
    return names[0]


@pytest.mark.parametrize("kind", KINDS + ["plain"])
def test_demo_url(chunkfs_bin, server, tmp_path, kind):
    srv, root = server
    rc, out, err = run_demo(chunkfs_bin, srv.url + kind + "/", tmp_path)
    assert rc == 0, "scripts/demo failed:\n%s\n%s" % (tail(out), tail(err))
    assert out.rstrip().endswith("demo OK"), tail(out)
    want = expected_first(root, kind)
    assert "=== first MiB of %s\n" % want in out, tail(out)
    data = source_bytes(root, kind, want)[:MiB]
    m = re.search(r"^read (\d+) bytes in .*sha256 ([0-9a-f]{64})$", out, re.M)
    assert m, tail(out)
    assert int(m.group(1)) == len(data)
    assert m.group(2) == hashlib.sha256(data).hexdigest(), "the demo read other bytes"
    assert left_behind(tmp_path) == (None, [])


def test_demo_url_without_files_says_what_it_expects(chunkfs_bin, server, tmp_path):
    srv, _ = server
    url = srv.url + "empty/"
    rc, out, err = run_demo(chunkfs_bin, url, tmp_path)
    assert rc != 0, tail(out)
    assert "%s shows no file to read: give a directory holding a LitData or MosaicML MDS " \
           "index.json, WebDataset .tar shards, or files" % url in err, tail(err)
    assert left_behind(tmp_path) == (None, [])
