"""The test harness itself: nginx serves Range requests and logs them; the
generated dataset is what LitData writes; the log scan of every mount's teardown
fails a test on a warning it does not allow."""
import errno
import http.client
import json
import os
import shutil
import struct
import time

from cfsutil import MiB, data_dir, index_chunks, is_mounted, log_problems, scaled, vm_hwm, wait_for


def get(server, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_nginx_serves_ranges(nginx):
    src = data_dir("litdata-mixed")
    srv = nginx(src)
    assert srv.url == "http://127.0.0.1:%d/" % srv.port
    assert srv.pid and os.path.exists("/proc/%d" % srv.pid)
    with open(os.path.join(src, "chunk-0-0.bin"), "rb") as f:
        data = f.read()
    status, headers, body = get(srv, "/chunk-0-0.bin", {"Range": "bytes=100-1099"})
    assert status == 206
    assert headers["Content-Range"] == "bytes 100-1099/%d" % len(data)
    assert body == data[100:1100]
    assert "ETag" in headers
    status, _, body = get(srv, "/index.json")
    assert status == 200 and json.loads(body)["chunks"]
    status, _, _ = get(srv, "/no-such-file")
    assert status == 404
    # nginx logs a request after its response has gone out: wait for the lines.
    entries = wait_for(lambda: (lambda e: e if len(e) >= 3 else None)(srv.requests()),
                       scaled(10), "three access log lines")
    assert [e["status"] for e in entries] == ["206", "200", "404"]
    assert entries[0]["request"] == "GET /chunk-0-0.bin HTTP/1.1"
    assert entries[0]["range"] == "bytes=100-1099"
    assert entries[1]["range"] == "-"
    assert int(entries[0]["body_bytes_sent"]) == 1000


def test_nginx_limit_rate_and_stop(nginx, tmp_path):
    (tmp_path / "blob").write_bytes(os.urandom(3 * MiB))
    srv = nginx(tmp_path, limit_rate="2m")
    t0 = time.monotonic()
    status, _, body = get(srv, "/blob", {"Range": "bytes=0-%d" % (3 * MiB - 1)})
    elapsed = time.monotonic() - t0
    assert status == 206 and len(body) == 3 * MiB
    assert elapsed > 0.9, "limit_rate not applied (%.2f s)" % elapsed
    pid = srv.pid
    srv.stop()
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"


def test_two_servers_extra_conf(nginx, tmp_path):
    a = nginx(data_dir("litdata-mixed"))
    b = nginx(data_dir("litdata-tokens"),
              extra_conf="        location = /teapot { return 418; }\n")
    assert a.port != b.port
    assert get(b, "/teapot")[0] == 418
    assert get(a, "/teapot")[0] == 404
    assert vm_hwm(b.pid) > 0


def test_big_dataset_layout(big_dataset):
    chunks = index_chunks(big_dataset)
    assert len(chunks) == 4
    total = 0
    for name, size in chunks:
        path = os.path.join(big_dataset, name)
        assert os.path.getsize(path) == size
        with open(path, "rb") as f:
            n = struct.unpack("<I", f.read(4))[0]
            offsets = struct.unpack("<%dI" % (n + 1), f.read(4 * (n + 1)))
        assert offsets[-1] == size
        total += size
    assert total >= 256 * MiB
    assert not is_mounted(big_dataset)


def test_log_scan_finds_warnings_and_errors():
    """The teardown's log scan (cfsutil.log_problems) finds the warning and
    error lines of every format chunkfs writes (stderr, --log-file, GLib's own
    before the writer is installed), not info or debug lines, and keeps those
    the allow-list does not match."""
    log = "\n".join([
        "00:48:47.971 chunkfs[info]: mounted http://127.0.0.1:1/ on /mnt",
        "00:48:47.972 chunkfs[debug]: GET chunk-0-0.bin bytes 0-99",
        "00:48:47.973 chunkfs[warning]: chunk-0-1.bin bytes 0-99: HTTP 503 (EIO)",
        "00:48:47.974 chunkfs[error]: a critical",
        "2026-12-07T00:49:09.490Z chunkfs[22640] warning: chunk-1-2.bin bytes 0-9: HTTP 404 (ENOENT)",
        "2026-12-07T00:49:09.491Z chunkfs[22640] info: unmounted",
        "(chunkfs:123): GLib-CRITICAL **: 00:00:00.000: g_hash_table_lookup: assertion failed",
    ])
    assert log_problems(log) == [line for i, line in enumerate(log.splitlines()) if i in (2, 3, 4, 6)]
    assert log_problems(log, [r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 503 \(EIO\)$", "critical$",
                              r"HTTP 404"]) == [log.splitlines()[6]]
    # An entry is searched in the message, which begins after the level.
    assert log_problems(log, [r"^HTTP 503"]) == log_problems(log)


def test_a_mount_fails_on_an_unexpected_warning(nginx, mount, tmp_path):
    """A mount whose log holds a warning the test does not allow fails its
    teardown; with the line allowed it passes (here, a chunk missing on the
    server: 404)."""
    src = data_dir("litdata-mixed")
    root = tmp_path / "root"
    shutil.copytree(src, root)
    os.unlink(root / "chunk-0-1.bin")
    srv = nginx(root)
    for allow in ((), (r"^chunk-0-1\.bin bytes \d+-\d+: HTTP 404 \(ENOENT\)$",)):
        m = mount(srv.url, log_allow=allow)
        try:
            with open(m.file("chunk-0-1.bin"), "rb") as f:
                f.read()
        except OSError as e:
            assert e.errno == errno.EIO, e
        problems = m.check_teardown()
        unexpected = [p for p in problems if "the test does not expect" in p]
        assert bool(unexpected) == (not allow), problems
