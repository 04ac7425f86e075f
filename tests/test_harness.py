"""The test harness itself (no chunkfs needed): nginx serves Range requests and
logs them; the generated dataset is what LitData writes."""
import http.client
import json
import os
import struct
import time

from conftest import MiB, data_dir, index_chunks, is_mounted, vm_hwm


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
    entries = srv.requests()
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
