"""HTTP servers that list directories: nginx's autoindex, as HTML and as JSON,
serving a nested tree without index.json. The mount shows the tree as it is,
every byte equal; a directory holding a LitData index.json still shows the
chunks its index lists."""
import os
import shutil

import pytest

from cfsutil import data_dir, sha256_file


def make_tree(root):
    """A nested tree: odd names, an empty file, a deep directory, a LitData dataset."""
    files = {
        "top.bin": os.urandom(300_000),
        "a b/café.txt": "naïve text\n".encode() * 100,
        "a b/empty": b"",
        "deep/er/still/x.dat": os.urandom(70_000),
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    shutil.copytree(data_dir("litdata-mixed"), os.path.join(root, "ds"))
    return root


def source_files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = path
    return out


def mounted_files(mnt):
    """The files under mnt, as os.walk finds them: the remote's tree (.chunkfs and
    chunkfs's views are not listed)."""
    out = {}
    for dirpath, _, names in os.walk(mnt):
        for name in names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, mnt)] = path
    return out


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_autoindex_tree(nginx, mount, tmp_path, fmt):
    root = make_tree(str(tmp_path / "www"))
    conf = "autoindex on;" + (" autoindex_format json;" if fmt == "json" else "")
    srv = nginx(root, extra_conf=conf)
    m = mount(srv.url, "-d")
    want, got = source_files(root), mounted_files(m.path)
    assert sorted(got) == sorted(want)
    for rel, src in want.items():
        assert os.path.getsize(got[rel]) == os.path.getsize(src), rel
        assert sha256_file(got[rel]) == sha256_file(src), rel
    assert os.path.isdir(os.path.join(m.path, "deep", "er", "still"))
    # A missing name costs no request once its directory is listed.
    before = len(srv.requests())
    for _ in range(3):
        assert not os.path.exists(os.path.join(m.path, "a b", "nothing-here"))
    assert len(srv.requests()) == before
    heads = [r for r in srv.requests() if r["request"].startswith("HEAD ")]
    if fmt == "json":
        assert heads == [], "the JSON listing gives sizes: no HEAD is needed"
    else:
        assert len(heads) <= len(want), "at most one HEAD per file"
