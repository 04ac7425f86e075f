"""The spill tier reused by the next mount, in the cases test_spill.py leaves out:
two URLs sharing one --cache-dir at once, --spill-compress on bytes that do not
shrink (stored raw), and a dataset on S3 (whose ETags come from the listing).

Reads go through O_DIRECT (spillutil.read_direct) so that the page cache never
answers for the daemon; every chunk read is compared with its source by sha256.
"""
import concurrent.futures
import os
import subprocess

import pytest

import litgen
from cfsutil import MiB, chunkfs_env, index_chunks, scaled, wait_for
from s3fixture import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, S3rver, upload_tree
from spillutil import (DuSampler, check_all, check_block_file, dataset_bytes, du_command,
                       url_dir)

HEX = "0123456789abcdef"


def url_dirs(cache_dir, mounts):
    """{key: per-URL directory} of mounts ({key: Mount}) sharing cache_dir: the
    directory whose lock holds the mount's PID. cache_dir must hold one such
    directory per mount and nothing else."""
    names = os.listdir(cache_dir)
    assert all(len(n) == 16 and all(c in HEX for c in n) for n in names), names
    by_pid = {}
    for n in names:
        with open(os.path.join(cache_dir, n, "lock")) as f:
            by_pid[int(f.read().strip())] = os.path.join(cache_dir, n)
    assert sorted(by_pid) == sorted(m.pid for m in mounts.values()), \
        "expected one directory per mount in %s: %s" % (cache_dir, by_pid)
    return {key: by_pid[m.pid] for key, m in mounts.items()}


def check_all_at_once(mounts, srcs):
    """check_all of every mount ({key: Mount}) against its dataset (srcs, same
    keys), all at the same time, one thread each."""
    with concurrent.futures.ThreadPoolExecutor(len(mounts)) as pool:
        futures = [pool.submit(check_all, mounts[key], srcs[key]) for key in mounts]
        for f in futures:
            f.result(timeout=scaled(60))


def check_every_block_on_disk(udir, src):
    """Every block of every chunk of src, and nothing else, has a file in the
    per-URL directory udir, whole (one extent of the block's length) and holding
    the source's bytes. Returns the parsed headers by (name, block index)."""
    blocks = {}
    for entry in os.scandir(os.path.join(udir, "blocks")):
        b = check_block_file(entry.path, src, MiB)
        blocks[(b["name"], b["index"])] = b
    for name, size in index_chunks(src):
        for i in range((size + MiB - 1) // MiB):
            b = blocks.get((name, i))
            assert b is not None, "block %d of %s is not in %s" % (i, name, udir)
            assert b["extents"] == [(0, min(MiB, size - i * MiB))], (name, i, b["extents"])
    assert len(blocks) == sum((size + MiB - 1) // MiB for _, size in index_chunks(src)), \
        "blocks of other objects in %s" % udir
    return blocks


# --------------------------------------------------------------------------
# two URLs, one cache directory


def test_two_urls_share_one_cache_dir(nginx, mount, tmp_path):
    """Two datasets of one server (same chunk names, other bytes), mounted at once
    on one --cache-dir with 8 MiB of memory and a 64 MiB spill tier each, and read
    at the same time: each URL spills into a directory of its own, locked by its
    mount, holding only its own blocks and under its own cap (du sampled every few
    ms). After both are remounted, every byte comes back from disk, none fetched."""
    www = tmp_path / "www"
    srcs = {}
    for seed, key in enumerate(("a", "b"), 61):
        srcs[key] = str(www / key)
        litgen.write_dataset(srcs[key], chunks=2, chunk_bytes=12 * MiB, seed=seed)
    srv = nginx(str(www))
    cache = str(tmp_path / "spill")
    cap = 64 * MiB
    args = ("--mem-cache=8M", "--disk-cache=64M", "--cache-dir=" + cache)
    mounts = {key: mount(srv.url + key + "/", *args) for key in srcs}
    dirs = url_dirs(cache, mounts)
    with DuSampler(dirs["a"], cap, mounts["a"]) as sampler_a, \
            DuSampler(dirs["b"], cap, mounts["b"]) as sampler_b:
        check_all_at_once(mounts, srcs)
        wait_for(lambda: all(m.stats()["spills"] > 0 for m in mounts.values()), scaled(10),
                 "both mounts to spill")
        for key, m in mounts.items():
            st = m.stats()
            print("%s: fetched %.1f MiB, %d spills, disk %.1f MiB"
                  % (key, st["bytes_fetched"] / MiB, st["spills"], st["disk_bytes"] / MiB))
            assert st["bytes_fetched"] >= dataset_bytes(srcs[key])
            assert st["disk_cap"] == cap and st["disk_bytes"] <= cap
            assert st["read_errors"] == st["spill_errors"] == st["checksum_failures"] == 0
        for sampler in (sampler_a, sampler_b):
            sampler.drop_mount()
        for m in mounts.values():
            assert m.unmount() == []      # the flush at unmount stays under the cap too
    for sampler in (sampler_a, sampler_b):
        print(sampler.check())
    for key in srcs:
        check_every_block_on_disk(dirs[key], srcs[key])
        alloc, apparent = du_command(dirs[key])
        assert alloc <= cap and apparent <= cap, (key, alloc, apparent)
    before = len(srv.requests())
    again = {key: mount(srv.url + key + "/", *args) for key in srcs}
    assert url_dirs(cache, again) == dirs, "a remount did not find its URL's directory"
    check_all_at_once(again, srcs)
    for key, m in again.items():
        st = m.stats()
        print("%s after the remount: fetched %d bytes, %d disk hits, %d validations"
              % (key, st["bytes_fetched"], st["disk_hits"], st["validations"]))
        assert st["bytes_fetched"] == 0, "%s: blocks on disk were fetched again" % key
        assert st["disk_hits"] >= dataset_bytes(srcs[key]) // MiB
        assert st["read_errors"] == st["checksum_failures"] == 0
    gets = [r for r in srv.requests()[before:]
            if ".bin" in r["request"] and not r["request"].startswith("HEAD ")]
    assert not gets, "chunk bodies fetched after the remount: %s" % gets


# --------------------------------------------------------------------------
# --spill-compress on bytes that do not shrink


def test_spill_compress_stores_incompressible_blocks_raw(nginx, mount, tmp_path):
    """With --spill-compress, blocks of random bytes (zstd cannot shrink them) are
    spilled raw, the source's bytes as they are; a remount reads them back right
    without a fetch. With test_spill_compress (compressible blocks, stored as zstd
    frames): compressed when it shrinks, raw when it does not."""
    src = str(tmp_path / "random")
    litgen.write_dataset(src, chunks=2, chunk_bytes=8 * MiB, seed=71)
    total = dataset_bytes(src)
    cache = str(tmp_path / "spill")
    args = ("--mem-cache=8M", "--disk-cache=64M", "--spill-compress", "--cache-dir=" + cache)
    srv = nginx(src)
    m = mount(srv.url, *args)
    check_all(m, src)
    st = m.stats()
    assert st["spills"] > 0
    assert st["spill_errors"] == st["checksum_failures"] == 0
    assert m.unmount() == []
    blocks = check_every_block_on_disk(url_dir(cache), src)
    for (name, index), b in sorted(blocks.items()):
        assert not b["zstd"], "block %d of %s is stored as zstd" % (index, name)
        assert b["stored_len"] == b["raw_len"] == b["block_len"], (name, index, b["stored_len"])
        # the premise: zstd (chunkfs uses level 1) does not shrink these bytes
        r = subprocess.run(["zstd", "-q", "-1", "--no-check", "-c"], input=b["payload"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout) >= b["raw_len"], \
            "zstd shrinks block %d of %s: the dataset is not random" % (index, name)
    alloc, apparent = du_command(cache)
    print("%.1f MiB of random data take %.1f MiB on disk (%.1f MiB apparent)"
          % (total / MiB, alloc / MiB, apparent / MiB))
    assert apparent >= total
    m2 = mount(srv.url, *args)
    check_all(m2, src)
    st = m2.stats()
    assert st["bytes_fetched"] == 0
    assert st["disk_hits"] >= len(blocks)
    assert st["read_errors"] == st["checksum_failures"] == 0


# --------------------------------------------------------------------------
# S3: the next mount reads from disk


S3_PREFIX = "spill/gen"


@pytest.fixture(scope="module")
def s3_spill(tmp_path_factory):
    """An s3rver (s3fixture.S3rver) holding a generated LitData dataset of 2 chunks
    of about 12 MiB under BUCKET/S3_PREFIX: (server, local copy of the dataset)."""
    src = str(tmp_path_factory.mktemp("s3-spill-data"))
    litgen.write_dataset(src, chunks=2, chunk_bytes=12 * MiB, seed=81)
    server = S3rver(tmp_path_factory.mktemp("s3rver"), [BUCKET])
    try:
        server.start()
        upload_tree(server.client(), BUCKET, S3_PREFIX, src)
        yield server, src
    finally:
        server.stop()


def test_s3_spill_remount_reads_from_disk(s3_spill, mount, tmp_path):
    """An S3 dataset read through 8 MiB of memory into a 64 MiB spill tier is
    whole on disk after the unmount; the next mount reads every byte back from
    disk: nothing fetched, and no request for a chunk reaches the server (the
    ETags come from the listing, so no HEAD either)."""
    server, src = s3_spill
    home = tmp_path / "home"
    home.mkdir()
    env = chunkfs_env({k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                      HOME=home, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    cache = str(tmp_path / "spill")
    url = "s3://%s/%s" % (BUCKET, S3_PREFIX)
    args = ("--endpoint=" + server.url, "--region=" + REGION, "--mem-cache=8M",
            "--disk-cache=64M", "--cache-dir=" + cache)
    m = mount(url, *args, env=env)
    check_all(m, src)
    st = m.stats()
    assert st["bytes_fetched"] >= dataset_bytes(src)
    assert st["spills"] > 0
    assert st["spill_errors"] == st["checksum_failures"] == 0
    assert m.unmount() == []
    blocks = check_every_block_on_disk(url_dir(cache), src)
    mark = server.mark()
    m2 = mount(url, *args, env=env)
    check_all(m2, src)
    st = m2.stats()
    print("after the remount: fetched %d bytes, %d disk hits, %d validations"
          % (st["bytes_fetched"], st["disk_hits"], st["validations"]))
    assert st["bytes_fetched"] == 0
    assert st["validations"] == 0
    assert st["disk_hits"] >= len(blocks)
    assert st["read_errors"] == st["checksum_failures"] == 0
    reqs = server.requests(mark)
    assert reqs, "the remount sent no request (no listing?)"
    chunks = [r for r in reqs if r["url"].split("?")[0].endswith(".bin")]
    assert not chunks, "chunk requests after the remount: %s" % chunks
