#!/usr/bin/env python3
"""A small HTTP/1.1 file server that injects faults, for chunkfs's tests.

nginx cannot break a response on purpose; this server can. It serves the files
of one directory with keep-alive and single-range support (RFC 9110 section 14:
206 with Content-Range, 416, If-Range, If-Match), an ETag derived from each
file's content hash, and a set of faults configured per file name while it runs.

In a test it runs in a background thread of the pytest process:

    srv = FaultServer(directory).start()
    srv.add_fault("chunk-0-0.bin", "truncate", count=1)
    ...                                   # mount srv.url, read
    srv.fault_for("chunk-0-0.bin").fired  # how many times it fired
    srv.requests("chunk-0-0.bin")         # the log: ranges asked, bytes sent
    srv.stop()

With FaultServer(root, autoindex=True), a request for a directory (a path
ending in '/', or the root) is answered with nginx's JSON autoindex of it
([{"name", "type", "size"}, ...]), and the faults of the name "DIR/" ("" for
the root) apply to it; without, directories are 404 like any missing file.
With FaultServer(root, s3_page_keys=N), a GET with list-type=2 in its query is
answered as S3's ListObjectsV2 with delimiter '/' (path-style: the path names the
bucket, a directory of root): the files (with their sizes and ETags) and directories
under prefix, N to a page, the continuation token being the position of the next
entry; the faults of the
name "BUCKET/PREFIX" (e.g. "bkt/p/slow/") apply to it.

Faults (every one takes `count`: fire at most this many times, None = always,
`after`: let the first `after` matching requests through untouched, and
`method`: match only requests of this method, e.g. "HEAD"; a fault on the
name "*" matches every file):

    truncate      send the headers with the full Content-Length, then `keep`
                  bytes of body (default: half), then close the connection.
    reset         close with a TCP RST (SO_LINGER 0): before any response when
                  `keep` is None, else after the headers and `keep` body bytes
                  and a pause of `delay` seconds (so the client has read them).
    status        answer `code` (default 503) with a short body, or with
                  `body_bytes` bytes of error page (written lazily, in pieces,
                  until the client goes away); `retry_after` adds a
                  Retry-After header.
    stall         send the headers (unless headers=False) and `keep` body bytes
                  (default: half), then nothing for `seconds` (default 10);
                  then close (or send the rest if resume=True). The stall ends
                  early when the server stops.
    etag_change   serve another ETag (same bytes); with after=N the first N
                  responses carry the real one.
    etag_weak     serve the same tag as a weak validator W/"..." (not a change).
    wrong_total   the total in Content-Range is the real size + `delta`
                  (default 1000), as if the object had another size.
    wrong_range   answer 206 with the bytes and Content-Range of a range that
                  starts `shift` bytes (default 4096) away from the one asked.
    ignore_range  answer 200 with the whole file, whatever the Range.
    redirect      answer `code` (default 302) with a Location made from the
                  template `location` (default "/{name}"): {name} is the path
                  asked (percent-encoded, no leading '/'), {seq} the request's
                  number in the log. Fires before the file is looked up, so a
                  name may redirect to where only another server has it.
    trickle       send the headers, then the body `bytes` bytes at a time
                  (default 1), one piece every `interval` seconds (default
                  0.25), until it is all sent or the server stops.

FaultServer(root, tls=(certificate, key)) serves HTTPS instead (PEM files);
etag="md5" makes every ETag the MD5 of the bytes, as S3 tags a single-part upload.
Every request is logged with the headers it carried (see Request), and every
fault counts how often it fired.
Nothing here loops without a bound: a stall lasts `seconds`, an idle keep-alive
connection is closed after `idle_timeout` seconds.

Run alone for manual checks:
    faultserver.py DIR [--port P] [--fault NAME:KIND[:key=value,...]]...
"""
import argparse
import email.utils
import hashlib
import http.server
import json
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape as xml_escape

KINDS = ("truncate", "reset", "status", "stall", "etag_change", "etag_weak",
         "wrong_total", "wrong_range", "ignore_range", "redirect", "trickle")
# The faults of a response; a redirect fires before it, as the request arrives.
RESPONSE_KINDS = tuple(k for k in KINDS if k != "redirect")
PIECE = 64 << 10


class Fault:
    """One configured fault; `fired` counts the responses it changed."""

    def __init__(self, kind, count=None, after=0, method=None, **params):
        if kind not in KINDS:
            raise ValueError("unknown fault kind %r" % kind)
        self.kind = kind
        self.count = count
        self.after = after
        self.method = method
        self.params = params
        self.seen = 0
        self.fired = 0

    def _fires(self, method):
        """Called under the server lock for each request of its name."""
        if self.method is not None and self.method != method:
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        self.fired += 1
        return True

    def get(self, key, default=None):
        return self.params.get(key, default)

    def __repr__(self):
        return "Fault(%s, count=%r, after=%r, fired=%d, %r)" % (
            self.kind, self.count, self.after, self.fired, self.params)


def owner_stopping(handler):
    """True once the server that runs handler is stopping."""
    return handler.server.owner._stopping.is_set()


class Request:
    """One logged request. start/end are the range asked, end exclusive
    (None without a valid single Range header); sent counts body bytes written;
    headers are the (name, value) pairs the request carried, in order."""

    def __init__(self, seq, conn, method, name, range_header, headers=()):
        self.seq = seq
        self.conn = conn
        self.method = method
        self.name = name
        self.range = range_header
        self.headers = list(headers)
        self.start = None
        self.end = None
        self.status = None
        self.faults = []
        self.sent = 0
        self.length = None  # Content-Length announced
        self.time = time.monotonic()
        self.done = False

    def header(self, name):
        """The value of the first header called name (any case), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<#%d conn%d %s %s range=%s status=%s faults=%s sent=%d/%s>" % (
            self.seq, self.conn, self.method, self.name, self.range, self.status,
            ",".join(self.faults) or "-", self.sent, self.length)


def parse_range(header, size):
    """Parse a Range header for an object of size bytes.
    Returns (start, end_exclusive), None to ignore it (serve 200: absent,
    malformed, several ranges), or "unsatisfiable"."""
    if header is None:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        if n == 0 or size == 0:
            return "unsatisfiable"
        return (max(0, size - n), size)
    start = int(m.group(1))
    end = int(m.group(2)) + 1 if m.group(2) != "" else size
    if m.group(2) != "" and end <= start:
        return None  # invalid: ignore (RFC 9110 14.1.1)
    if start >= size:
        return "unsatisfiable"
    return (start, min(end, size))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultserver/1"

    def setup(self):
        self.timeout = self.server.owner.idle_timeout
        super().setup()
        self.conn_id = self.server.owner._register(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._unregister(self.connection)

    def log_message(self, fmt, *args):  # the Request log replaces this
        pass

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    # -- helpers ---------------------------------------------------------

    def _write(self, req, data):
        """Write body bytes in pieces, counting them; False when the peer went away."""
        view = memoryview(data)
        try:
            for i in range(0, len(view), PIECE):
                piece = view[i:i + PIECE]
                self.wfile.write(piece)
                req.sent += len(piece)
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def _reset(self):
        """Close the connection with a TCP RST instead of a FIN."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        except OSError:
            pass

    def _simple(self, req, code, body=b"", extra=(), length=None):
        """An answer with a short body; with length, a body of that many bytes
        written a piece at a time (never held in memory)."""
        req.status = code
        body = body or (b"%d\n" % code)
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(length if length is not None else len(body)))
        req.length = length if length is not None else len(body)
        self.end_headers()
        if self.command == "HEAD":
            return
        if length is None:
            self._write(req, body)
            return
        piece = b"e" * PIECE
        for left in range(length, 0, -PIECE):
            if owner_stopping(self) or not self._write(req, piece[:min(PIECE, left)]):
                return

    # -- the response ----------------------------------------------------

    def _serve(self, head):
        owner = self.server.owner
        raw = urllib.parse.urlsplit(self.path).path
        name = urllib.parse.unquote(raw).lstrip("/")
        req = owner._log_request(self.conn_id, self.command, name, self.headers.get("Range"),
                                 self.headers.items())
        try:
            redirect = owner._fire(name, ("redirect",), self.command)
            if redirect:
                self._redirect(req, redirect[0], raw.lstrip("/"))
            else:
                self._respond(owner, req, name, head)
        finally:
            req.done = True

    def _redirect(self, req, fault, raw_name):
        req.faults = [fault.kind]
        target = fault.get("location", "/{name}").format(name=raw_name, seq=req.seq)
        self._simple(req, fault.get("code", 302), extra=[("Location", target)])

    def _trickle(self, req, body, fault):
        """Write body a few bytes at a time with pauses; stops early when the
        peer goes away or the server stops."""
        step = max(1, fault.get("bytes", 1))
        for i in range(0, len(body), step):
            if owner_stopping(self) or not self._write(req, body[i:i + step]):
                return
            self.server.owner._stopping.wait(fault.get("interval", 0.25))

    def _listing(self, owner, req, name, head, body, ctype="application/json"):
        """A directory listing (body, None when there is no such directory) answered
        for name, with the status and trickle faults of name."""
        if body is None:
            self._simple(req, 404)
            return
        by_kind = {f.kind: f for f in owner._fire(name, RESPONSE_KINDS, self.command)}
        req.faults = list(by_kind)
        if "status" in by_kind:
            self._simple(req, by_kind["status"].get("code", 503))
            return
        req.status = 200
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        req.length = len(body)
        self.end_headers()
        if head:
            return
        if "trickle" in by_kind:
            self._trickle(req, body, by_kind["trickle"])
        else:
            self._write(req, body)

    def _respond(self, owner, req, name, head):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if owner.s3_page_keys and query.get("list-type") == ["2"]:
            prefix = query.get("prefix", [""])[0]
            start = int(query.get("continuation-token", ["0"])[0])
            self._listing(owner, req, name + prefix, head,
                          owner._s3_page(name, prefix, start), "application/xml")
            return
        if owner.autoindex and (name == "" or name.endswith("/")):
            self._listing(owner, req, name, head, owner._autoindex(name))
            return
        full = owner._resolve(name)
        if full is None:
            self._simple(req, 404)
            return
        data, etag, mtime = owner._content(full)
        size = len(data)
        rng = parse_range(req.range, size)
        if isinstance(rng, tuple):
            req.start, req.end = rng

        fired = owner._fire(name, RESPONSE_KINDS, self.command)
        req.faults = [f.kind for f in fired]
        by_kind = {f.kind: f for f in fired}

        # Validators (the ETag as this response shows it).
        if "etag_change" in by_kind:
            etag = etag[:-1] + "-changed%s\"" % by_kind["etag_change"].get("tag", "")
        if "etag_weak" in by_kind:
            etag = "W/" + etag

        if "reset" in by_kind and by_kind["reset"].get("keep") is None:
            req.status = "reset"
            self._reset()
            return
        if "status" in by_kind:
            f = by_kind["status"]
            extra = []
            if f.get("retry_after") is not None:
                extra.append(("Retry-After", str(f.get("retry_after"))))
            self._simple(req, f.get("code", 503), extra=extra, length=f.get("body_bytes"))
            return
        if "stall" in by_kind and not by_kind["stall"].get("headers", True):
            req.status = "stall"
            owner._stopping.wait(by_kind["stall"].get("seconds", 10))
            self.close_connection = True
            return

        # Conditional requests: If-Match fails with 412, a stale If-Range
        # turns the request into a plain GET of the whole object.
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip() != "*":
            tags = [t.strip() for t in if_match.split(",")]
            if etag.startswith("W/") or etag not in tags:
                self._simple(req, 412)
                return
        if_range = self.headers.get("If-Range")
        if if_range is not None and rng is not None and if_range.strip() != etag:
            rng = None

        if rng == "unsatisfiable" and "ignore_range" not in by_kind:
            self._simple(req, 416, extra=[("Content-Range", "bytes */%d" % size)])
            return
        if "ignore_range" in by_kind:
            rng = None

        if rng is None:
            status, start, end = 200, 0, size
        else:
            status, (start, end) = 206, rng
            if "wrong_range" in by_kind:
                shift = by_kind["wrong_range"].get("shift", 4096)
                length = end - start
                if start + shift + length <= size:
                    start += shift
                elif start - shift >= 0:
                    start -= shift
                elif start > 0:
                    start = 0
                else:
                    start, length = 1, length - 1
                end = start + length
        total = size
        if "wrong_total" in by_kind:
            total = size + by_kind["wrong_total"].get("delta", 1000)

        body = data[start:end]
        req.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end - 1, total))
        self.send_header("Content-Length", str(len(body)))
        req.length = len(body)
        self.end_headers()
        if head:
            return
        try:
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return

        if "trickle" in by_kind:
            self._trickle(req, body, by_kind["trickle"])
            return
        broken = by_kind.get("truncate") or by_kind.get("stall") or by_kind.get("reset")
        if broken is None:
            self._write(req, body)
            return
        keep = broken.get("keep")
        if keep is None:
            keep = len(body) // 2
        keep = max(0, min(keep, len(body) - 1))
        if not self._write(req, body[:keep]):
            return
        if broken.kind == "truncate":
            self.close_connection = True
        elif broken.kind == "reset":
            owner._stopping.wait(broken.get("delay", 0.3))
            self._reset()
        else:  # stall
            owner._stopping.wait(broken.get("seconds", 10))
            if broken.get("resume", False) and not owner._stopping.is_set():
                self._write(req, body[keep:])
            self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FaultServer:
    """The server; start() runs it in a daemon thread bound to 127.0.0.1."""

    def __init__(self, root, port=0, idle_timeout=60, tls=None, etag="sha256", autoindex=False,
                 s3_page_keys=None):
        self.root = os.path.realpath(root)
        self.etag = etag
        self.autoindex = autoindex
        self.s3_page_keys = s3_page_keys
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._faults = {}
        self._log = []
        self._conns = {}
        self._conn_seq = 0
        self._cache = {}
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            # The handshake runs in the connection's thread, not in the accepting one.
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self._thread = None
        self.port = self._httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d/" % ("https" if tls else "http", self.port)

    # -- life cycle ------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="faultserver:%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop accepting, end stalls, close every open connection."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(10)
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- faults ----------------------------------------------------------

    def set_fault(self, name, kind, **kw):
        """Replace the faults of name by this one; returns the Fault."""
        f = Fault(kind, **kw)
        with self._lock:
            self._faults[name] = [f]
        return f

    def add_fault(self, name, kind, **kw):
        """Add a fault to those of name; returns the Fault."""
        f = Fault(kind, **kw)
        with self._lock:
            self._faults.setdefault(name, []).append(f)
        return f

    def clear_faults(self, name=None):
        with self._lock:
            if name is None:
                self._faults.clear()
            else:
                self._faults.pop(name, None)

    def fault_for(self, name, kind=None):
        """The (first) fault of name, optionally of one kind, or None."""
        with self._lock:
            for f in self._faults.get(name, []):
                if kind is None or f.kind == kind:
                    return f
        return None

    def fired(self, name, kind=None):
        """How many responses to name the faults (of kind) changed."""
        with self._lock:
            return sum(f.fired for f in self._faults.get(name, [])
                       if kind is None or f.kind == kind)

    def _fire(self, name, kinds, method):
        """The faults of name (or "*") among kinds that fire for this request
        (method: its HTTP method, for faults limited to one)."""
        with self._lock:
            faults = self._faults.get(name, []) + self._faults.get("*", [])
            return [f for f in faults if f.kind in kinds and f._fires(method)]

    # -- log -------------------------------------------------------------

    def requests(self, name=None):
        """The logged requests (of one file), oldest first."""
        with self._lock:
            return [r for r in self._log if name is None or r.name == name]

    def clear_log(self):
        with self._lock:
            self._log.clear()

    def _log_request(self, conn, method, name, range_header, headers=()):
        with self._lock:
            r = Request(len(self._log), conn, method, name, range_header, headers)
            self._log.append(r)
            return r

    def _register(self, sock):
        with self._lock:
            self._conn_seq += 1
            self._conns[id(sock)] = sock
            return self._conn_seq

    def _unregister(self, sock):
        with self._lock:
            self._conns.pop(id(sock), None)

    # -- files -----------------------------------------------------------

    def _resolve(self, name):
        full = os.path.realpath(os.path.join(self.root, name))
        if not full.startswith(self.root + os.sep) or not os.path.isfile(full):
            return None
        return full

    def _autoindex(self, name):
        """nginx's JSON autoindex of directory name (bytes), or None when it is not one."""
        full = os.path.realpath(os.path.join(self.root, name))
        if not (full == self.root or full.startswith(self.root + os.sep)) or \
                not os.path.isdir(full):
            return None
        entries = []
        for e in sorted(os.scandir(full), key=lambda e: e.name):
            if e.is_dir():
                entries.append({"name": e.name, "type": "directory"})
            else:
                entries.append({"name": e.name, "type": "file", "size": e.stat().st_size})
        return json.dumps(entries).encode()

    def _s3_page(self, bucket, prefix, start):
        """The ListObjectsV2 page (bytes) of bucket/prefix from entry start on, or None
        when that is not a directory."""
        entries = self._autoindex(bucket + prefix)
        if entries is None:
            return None
        entries = json.loads(entries)
        page = entries[start:start + self.s3_page_keys]
        parts = []
        for e in page:
            key = xml_escape(prefix + e["name"])
            if e["type"] == "directory":
                parts.append("<CommonPrefixes><Prefix>%s/</Prefix></CommonPrefixes>" % key)
            else:
                etag = self._content(os.path.join(self.root, bucket + prefix, e["name"]))[1]
                parts.append("<Contents><Key>%s</Key><Size>%d</Size><ETag>%s</ETag></Contents>"
                             % (key, e["size"], xml_escape(etag)))
        more = start + len(page) < len(entries)
        if more:
            parts.append("<NextContinuationToken>%d</NextContinuationToken>"
                         % (start + len(page)))
        return ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>%s</Name>'
                "<Prefix>%s</Prefix><IsTruncated>%s</IsTruncated>%s</ListBucketResult>"
                % (xml_escape(bucket.rstrip("/")), xml_escape(prefix),
                   "true" if more else "false", "".join(parts))).encode()

    def _content(self, full):
        """(bytes, etag, mtime) of a file, cached by path, mtime and size."""
        st = os.stat(full)
        key = (full, st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(full)
        if hit is not None and hit[0] == key:
            return hit[1]
        with open(full, "rb") as f:
            data = f.read()
        etag = '"%s"' % hashlib.new(self.etag, data).hexdigest()[:32]
        value = (data, etag, st.st_mtime)
        with self._lock:
            self._cache[full] = (key, value)
        return value


def _parse_fault(spec):
    """NAME:KIND[:key=value,...] with int, float, None, true/false values."""
    parts = spec.split(":", 2)
    if len(parts) < 2:
        raise argparse.ArgumentTypeError("fault spec is NAME:KIND[:key=value,...]")
    kw = {}
    if len(parts) == 3 and parts[2]:
        for item in parts[2].split(","):
            k, _, v = item.partition("=")
            if v in ("None", "none"):
                kw[k] = None
            elif v in ("true", "false"):
                kw[k] = v == "true"
            else:
                try:
                    kw[k] = int(v)
                except ValueError:
                    try:
                        kw[k] = float(v)
                    except ValueError:
                        kw[k] = v
    return parts[0], parts[1], kw


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fault", action="append", default=[], type=_parse_fault,
                   help="NAME:KIND[:key=value,...], e.g. chunk-0-0.bin:truncate:count=1,keep=100")
    a = p.parse_args()
    srv = FaultServer(a.root, port=a.port)
    for name, kind, kw in a.fault:
        srv.add_fault(name, kind, **kw)
    srv.start()
    print(srv.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        for r in srv.requests():
            print(r, file=sys.stderr)


if __name__ == "__main__":
    main()
