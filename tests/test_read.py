"""Every byte of every file of a mounted dataset equals the source."""
import hashlib
import os
import stat
import subprocess

import pytest

from cfsutil import (MiB, check_hidden, data_dir, dataset_listing, dataset_names,
                      dataset_views, index_chunks, scaled, sha256_bytes, sha256_file,
                      source_sha256)

SMALL = ["litdata-mixed", "litdata-tokens"]
METHODS = ["cat", "cp", "python"]


def check_listing(m, src):
    names = dataset_names(src)
    assert sorted(os.listdir(m.path)) == sorted(dataset_listing(src))
    check_hidden(m.path, dataset_views(src) + [".chunkfs"])
    env = dict(os.environ, LC_ALL="C")
    ls = subprocess.run(["ls", m.path], capture_output=True, text=True, timeout=scaled(30),
                        env=env, check=True)
    assert ls.stdout.split() == sorted(names)
    ls_a = subprocess.run(["ls", "-A", m.path], capture_output=True, text=True,
                          timeout=scaled(30), env=env, check=True)
    assert ls_a.stdout.split() == sorted(dataset_listing(src))
    assert os.path.isdir(m.file(".chunkfs"))
    for name in names:
        st = os.stat(m.file(name))
        assert stat.S_ISREG(st.st_mode), name
        assert st.st_size == os.path.getsize(os.path.join(src, name)), name
        assert not os.access(m.file(name), os.W_OK), name


def check_bytes(m, src, method, tmp_path):
    names = dataset_names(src)
    if method == "cat":
        for name in names:
            r = subprocess.run(["cat", m.file(name)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=scaled(120))
            assert r.returncode == 0, r.stderr
            assert len(r.stdout) == os.path.getsize(os.path.join(src, name)), name
            assert sha256_bytes(r.stdout) == source_sha256(os.path.join(src, name)), name
    elif method == "cp":
        dst = tmp_path / "copy"
        dst.mkdir()
        r = subprocess.run(["cp"] + [m.file(n) for n in names] + [str(dst)],
                           capture_output=True, text=True, timeout=scaled(180))
        assert r.returncode == 0, r.stderr
        for name in names:
            assert sha256_file(dst / name) == source_sha256(os.path.join(src, name)), name
            os.unlink(dst / name)
    else:
        for i, name in enumerate(names):
            path, want = m.file(name), source_sha256(os.path.join(src, name))
            size = os.path.getsize(os.path.join(src, name))
            if i % 2 == 0:
                # odd-sized unbuffered reads that straddle block boundaries
                h, total = hashlib.sha256(), 0
                with open(path, "rb", buffering=0) as f:
                    for _ in range(size + 2):  # bounded: every pass reads >= 1 byte
                        piece = f.read(777_777)
                        if not piece:
                            break
                        h.update(piece)
                        total += len(piece)
                    assert f.read(4096) == b""
                assert total == size, name
                assert h.hexdigest() == want, name
            else:
                with open(path, "rb") as f:
                    data = f.read()
                assert len(data) == size, name
                assert sha256_bytes(data) == want, name


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", SMALL)
def test_fixture_dataset(nginx, mount, tmp_path, dataset, method):
    src = data_dir(dataset)
    m = mount(nginx(src).url)
    check_listing(m, src)
    check_bytes(m, src, method, tmp_path)


@pytest.mark.parametrize("method", METHODS)
def test_big_dataset(nginx, mount, tmp_path, big_dataset, method):
    """256 MiB generated dataset, a cold mount per method."""
    m = mount(nginx(big_dataset).url)
    check_listing(m, big_dataset)
    assert sum(size for _, size in index_chunks(big_dataset)) >= 256 * MiB
    check_bytes(m, big_dataset, method, tmp_path)


def test_zstd_dataset(nginx, mount, tmp_path):
    """Compressed chunks are shown as the server has them: sizes come from the
    server (the index gives uncompressed sizes), bytes are the compressed bytes."""
    src = data_dir("litdata-mixed-zstd")
    m = mount(nginx(src).url)
    names = dataset_names(src)
    assert sorted(os.listdir(m.path)) == sorted(dataset_listing(src))
    check_hidden(m.path, dataset_views(src) + [".chunkfs"])
    for name in names:
        assert os.stat(m.file(name)).st_size == os.path.getsize(os.path.join(src, name)), name
    for name in names:
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name)), name
    r = subprocess.run(["cat"] + [m.file(n) for n in names], stdout=subprocess.PIPE,
                       timeout=scaled(60), check=True)
    want = b""
    for n in names:
        with open(os.path.join(src, n), "rb") as f:
            want += f.read()
    assert r.stdout == want
    for name in names:
        assert os.stat(m.file(name)).st_size == os.path.getsize(os.path.join(src, name)), name


def test_reopen_and_reread(nginx, mount):
    """A file read twice, through two opens, gives the same bytes both times."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url)
    for name in dataset_names(src):
        want = source_sha256(os.path.join(src, name))
        assert sha256_file(m.file(name)) == want, name
        assert sha256_file(m.file(name)) == want, name
