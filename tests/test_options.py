"""Command-line options: --version, --help, sizes, and the options that tune the mount."""
import os
import re

import pytest

from cfsutil import (GiB, KiB, MiB, check_hidden, data_dir, dataset_listing, dataset_names,
                      dataset_views, index_chunks, mountinfo, run_chunkfs, sha256_file,
                      source_sha256)

OPTIONS = ["-f", "-d", "-o", "--mem-cache", "--block-size", "--readahead", "--max-connections",
           "--fetch-threads", "--connect-timeout", "--timeout", "--retries", "--metrics-addr",
           "--version", "--help"]


def test_version(chunkfs_bin):
    r = run_chunkfs(chunkfs_bin, ["--version"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+", r.stdout), r.stdout
    assert "chunkfs" in r.stdout.lower()


def test_help(chunkfs_bin):
    r = run_chunkfs(chunkfs_bin, ["--help"])
    assert r.returncode == 0, r.stderr
    missing = [o for o in OPTIONS if not re.search(r"(^|[\s,\[])%s\b" % re.escape(o), r.stdout)]
    assert not missing, "--help does not mention %s:\n%s" % (missing, r.stdout)
    assert "URL" in r.stdout and "MOUNTPOINT" in r.stdout.upper()


def check_all_bytes(m, src):
    for name in dataset_names(src):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name)), name


@pytest.mark.parametrize("text,value", [
    ("64M", 64 * MiB),
    ("1G", GiB),
    ("8388608", 8 * MiB),
    ("64m", 64 * MiB),
    ("4096K", 4 * MiB),
    ("64MiB", 64 * MiB),
])
def test_mem_cache_sizes(nginx, mount, text, value):
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, "--mem-cache=" + text)
    check_all_bytes(m, src)
    st = m.stats()
    assert st["mem_cap"] == value
    assert st["mem_bytes"] <= value


def test_mem_cache_separate_argument(nginx, mount):
    """--mem-cache SIZE (value as the next argument) works as --mem-cache=SIZE."""
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, "--mem-cache", "40M")
    assert m.stats()["mem_cap"] == 40 * MiB


def test_default_mem_cache(nginx, mount):
    """Default: 1/8 of RAM, at most 1 GiB."""
    with open("/proc/meminfo") as f:
        total = int(next(line for line in f if line.startswith("MemTotal:")).split()[1]) * KiB
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url)
    cap = m.stats()["mem_cap"]
    want = min(total // 8, GiB)
    assert abs(cap - want) <= 4 * MiB, (cap, want)


@pytest.mark.parametrize("block", ["65536", "256K", "4M"])
def test_block_sizes(nginx, mount, big_dataset, block):
    name, size = index_chunks(big_dataset)[2]
    m = mount(nginx(big_dataset).url, "--block-size=" + block, "--mem-cache=64M")
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(big_dataset, name))
    st = m.stats()
    assert st["mem_bytes"] <= st["mem_cap"] == 64 * MiB


def test_readahead_off(nginx, mount, big_dataset):
    name, _ = index_chunks(big_dataset)[0]
    m = mount(nginx(big_dataset).url, "--readahead=0")
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(big_dataset, name))
    assert m.stats()["readahead_bytes"] == 0


def test_readahead_on_sequential_read(nginx, mount, big_dataset):
    """A sequential scan gets readahead (default window)."""
    name, _ = index_chunks(big_dataset)[0]
    m = mount(nginx(big_dataset).url)
    assert sha256_file(m.file(name)) == source_sha256(os.path.join(big_dataset, name))
    assert m.stats()["readahead_bytes"] > 0


def test_network_options(nginx, mount):
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, "--max-connections=1", "--connect-timeout=5", "--timeout=10",
              "--retries=1", "--readahead=1M")
    check_all_bytes(m, src)


def test_debug_and_fuse_options(nginx, mount):
    src = data_dir("litdata-mixed")
    m = mount(nginx(src).url, "-d", "-o", "allow_other,default_permissions")
    check_all_bytes(m, src)
    info = mountinfo(m.path)
    assert "allow_other" in info["super_options"], info
    assert "default_permissions" in info["super_options"], info
    assert "ro" in info["mount_options"].split(","), info
    assert m.read_log().strip(), "-d logged nothing"


def test_url_without_trailing_slash(nginx, mount):
    """A dataset URL without its trailing slash names the same directory."""
    srv = nginx(data_dir(""))
    src = data_dir("litdata-mixed")
    m = mount(srv.url + "litdata-mixed")
    assert sorted(os.listdir(m.path)) == sorted(dataset_listing(src))
    check_hidden(m.path, dataset_views(src) + [".chunkfs"])
    check_all_bytes(m, src)
