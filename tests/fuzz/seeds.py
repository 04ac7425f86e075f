"""Seed corpora of the fuzz targets, made from the fixtures in tests/data and small
generated inputs; each target's C file describes its input.

    seeds.py OUT    writes OUT/TARGET/ for every target of tests/fuzz

fuzz_chunk inputs are: schema number (1 byte), item count n and chunk size (uint32 LE each),
then the chunk; the schema numbers are those of fuzz_chunk.c.
Inputs that once crashed a target are in tests/fuzz/regressions/TARGET/ and are copied in too.
"""
import hashlib
import json
import os
import shutil
import struct
import sys
import tarfile

import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
REGRESSIONS = os.path.join(HERE, "regressions")
CHUNK_SCHEMAS = {"litdata-mixed": 0, "litdata-tokens": 1, "mds-plain": 2}
TENSORS, ARRAYS = 3, 4


def read(*path):
    with open(os.path.join(DATA, *path), "rb") as f:
        return f.read()


def write(out, target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


def chunks(index):
    """(file name, item count) of every plain chunk an index lists."""
    if "chunks" in index:
        return [(c["filename"], c["chunk_size"]) for c in index["chunks"]]
    return [(s["raw_data"]["basename"], s["samples"]) for s in index["shards"]]


def items(chunk):
    n = struct.unpack_from("<I", chunk)[0]
    offsets = struct.unpack_from("<%dI" % (n + 1), chunk, 4)
    return [chunk[offsets[i]:offsets[i + 1]] for i in range(n)]


def fuzz_input(schema, items_):
    """A chunk of the items behind fuzz_chunk's prefix."""
    n = len(items_)
    offsets = [4 + 4 * (n + 1)]
    for item in items_:
        offsets.append(offsets[-1] + len(item))
    body = struct.pack("<%dI" % (n + 2), n, *offsets) + b"".join(items_)
    return struct.pack("<BII", schema, n, len(body)) + body


def pytree(leaves):
    return struct.pack("<%dI" % len(leaves), *map(len, leaves)) + b"".join(leaves)


def synthetic(out):
    """Items of fuzz_chunk's schemas that no fixture has, made of fixture leaves."""
    mixed = items(read("litdata-mixed", "chunk-0-0.bin"))[0]
    sizes = struct.unpack_from("<7I", mixed)
    leaves, pos = [], 28
    for size in sizes:
        leaves.append(mixed[pos:pos + size])
        pos += size
    jpeg, matrix, int16s = leaves[4], leaves[5], leaves[6]
    arr = items(read("mds-plain", "shard.00000.mds"))[0][8:24]
    # litdata TensorSerializer: the numpy leaf's layout with torch's dtype index 0 (float32)
    tensor = struct.pack("<I", 0) + matrix[4:]
    write(out, "fuzz_chunk", "tensors", fuzz_input(TENSORS, [
        pytree([tensor, int16s[:8], matrix, jpeg, int16s, int16s[:16]])]))
    # mosaicml NDArray: dynamic dtype (34: float32) and shape (1 dim, uint8); static uint16
    # dtype with a dynamic shape (2 dims); float64 (2, 3); then a JPEG and a str_int
    columns = [bytes([34, 1 << 2, 4]) + arr, bytes([2 << 2, 2, 2]) + arr[:8], arr * 3, jpeg,
               b"12345"]
    head = struct.pack("<4I", *(len(c) for i, c in enumerate(columns) if i != 2))
    write(out, "fuzz_chunk", "arrays", fuzz_input(ARRAYS, [head + b"".join(columns)]))


def spill_seeds(out):
    """fuzz_spill inputs: mode, flip (0xffff none), extents, block bytes (see fuzz_spill.c)."""
    jpeg = read("wds", "shard-000000.tar")[512:4608]
    text = b"item 31 h\xc3\xa9llo " * 50
    for name, mode, flip, extents, body in [
            ("whole-raw", 0, 0xffff, [(0, 4096)], jpeg),
            ("two-extents-zstd", 1, 0xffff, [(100, 900), (2000, 96)], text),
            ("flipped-header", 0, 30, [(0, 512)], text),
            ("flipped-payload-zstd", 1, 200, [(0, 4096)], text)]:
        head = struct.pack("<BHB", mode, flip, len(extents))
        head += b"".join(struct.pack("<HH", lo, n) for lo, n in extents)
        write(out, "fuzz_spill", name, head + body)


def shared_value(identity, block_len, part, data):
    """A shared tier value (shared/value.h): header, then the part's data."""
    parts = max(1, -(-block_len // (256 << 10)))
    head = b"CFSB" + struct.pack("<HH", 1, 64) + xxhash.xxh3_128_digest(identity)
    head += struct.pack("<5I", part, parts, part * (256 << 10), len(data), block_len) + bytes(12)
    seed = xxhash.xxh3_64_intdigest(head)
    return head + struct.pack("<Q", xxhash.xxh3_64_intdigest(data, seed=seed)) + data


def shared_seeds(out):
    """fuzz_shared: values as memcached holds them, whole, of a last part, and cut short."""
    text = b"item 31 h\xc3\xa9llo " * 50
    url = hashlib.sha256(b"http://h/a").hexdigest().encode()
    whole = shared_value(b"chunkfs-block-v2\n" + url + b"\n\"e\"\n1000\n1048576\n0\nraw",
                         len(text), 0, text)
    write(out, "fuzz_shared", "whole", whole)
    write(out, "fuzz_shared", "cut", whole[:100])
    last = shared_value(b"id", (256 << 10) + len(text), 1, text)
    write(out, "fuzz_shared", "last-part", last)


S3_LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name>
<Prefix>data/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>
<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
<Contents><Key>data/</Key><Size>0</Size><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag></Contents>
<Contents><Key>data/index.json</Key><LastModified>2026-12-06T10:00:00.000Z</LastModified>
<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1766</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>data/chunk-0-0.bin</Key><Size>26124</Size><ETag>"5d41402abc4b2a76b9719d911017c592-2"</ETag></Contents>
<CommonPrefixes><Prefix>data/sub dir/</Prefix></CommonPrefixes>
<CommonPrefixes><Prefix>data/&#233;t&#233;/</Prefix></CommonPrefixes>
</ListBucketResult>"""

HTTP_INDEXES = {
    "nginx-json": b'[\n{ "name":"chunk-0-0.bin", "type":"file", "mtime":"Sun, 06 Dec 2026 10:00:00 GMT", '
                  b'"size":26124 },\n{ "name":"sub", "type":"directory", "mtime":"Sun, 06 Dec 2026 '
                  b'10:00:00 GMT" },\n{ "name":"caf\\u00e9 \\"q\\".json", "type":"file", "size":2 }\n]\n',
    "nginx-html": b'<html>\r\n<head><title>Index of /data/</title></head>\r\n<body>\r\n<h1>Index of '
                  b'/data/</h1><hr><pre><a href="../">../</a>\r\n<a href="sub/">sub/</a>   06-Dec-2026 '
                  b'10:00  -\r\n<a href="chunk-0-0.bin">chunk-0-0.bin</a>  06-Dec-2026 10:00  26124\r\n'
                  b'<a href="a%20b%C3%A9.json">a b\xc3\xa9.json</a>\r\n</pre><hr></body>\r\n</html>\r\n',
    "apache-html": b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN"><html><body><table>'
                   b'<tr><th><a href="?C=N;O=D">Name</a></th></tr><tr><td><a href="/">Parent '
                   b'Directory</a></td></tr><tr><td><A HREF="x.bin">x.bin</A></td></tr>'
                   b'<tr><td><a class="d" href = "dir/" >dir/</a></td></tr></table></body></html>',
    "python-html": b'<!DOCTYPE HTML>\n<html lang="en"><head><meta charset="utf-8"><title>Directory '
                   b'listing for /</title></head><body><ul>\n<li><a href="index.json">index.json</a>'
                   b'</li>\n<li><a href="http://evil/x">x</a></li><li><a href=".hidden">h</a></li>'
                   b'\n</ul></body></html>\n',
}

S3_ERRORS = {
    "no-such-key": b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>'
                   b'The specified key does not exist.</Message><Key>data/x</Key><RequestId>4442587FB7D0A2F9'
                   b'</RequestId></Error>',
    "code-only": b"<Error><Code>AccessDenied</Code></Error>",
    "nested": b"<Error><Detail><Code>A&amp;B</Code></Detail><Message><![CDATA[x < y]]></Message></Error>",
}


def http_seeds(out):
    """fuzz_s3list (prefix byte, body), fuzz_httplist, fuzz_s3error, fuzz_headers,
    fuzz_httpdate."""
    write(out, "fuzz_s3list", "page", b"\x01" + S3_LISTING)
    write(out, "fuzz_s3list", "empty-root", b"\x00<ListBucketResult><IsTruncated>false"
          b"</IsTruncated></ListBucketResult>")
    for name, page in HTTP_INDEXES.items():
        write(out, "fuzz_httplist", name, page)
    for name, body in S3_ERRORS.items():
        write(out, "fuzz_s3error", name, body)
    for name, text in [("range", b'bytes 0-65535/26124000\n"5d41402abc4b2a76b9719d911017c592"\n'
                                 b'W/"5d41402abc4b2a76b9719d911017c592"'),
                       ("whole", b"Bytes 25-25/26\nW/\"x\"\n\"y\""),
                       ("star", b"bytes */26\n\n")]:
        write(out, "fuzz_headers", name, text)
    for name, text in [("imf-fixdate", b"Sun, 06 Nov 1994 08:49:37 GMT"),
                       ("rfc850", b"Sunday, 06-Nov-94 08:49:37 GMT"),
                       ("asctime", b"Sun Nov  6 08:49:37 1994"),
                       ("leap-second", b"Sat, 31 Dec 2016 23:59:60 GMT")]:
        write(out, "fuzz_httpdate", name, text)


CRED_ANSWERS = {
    "imds": b'{"Code": "Success", "LastUpdated": "2026-12-07T06:00:00Z", "Type": "AWS-HMAC", '
            b'"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "c2VjcmV0", "Token": "dG9rZW4=", '
            b'"Expiration": "2026-12-07T12:00:00Z"}',
    "process": b'{"Version": 1, "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "c2VjcmV0", '
               b'"SessionToken": "dG9rZW4=", "Expiration": "2026-12-07T12:00:00+00:00"}',
}
STS_ANSWERS = {
    "web-identity": b'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
                    b'2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>'
                    b'ASIAEXAMPLE</AccessKeyId><SecretAccessKey>c2VjcmV0</SecretAccessKey>'
                    b'<SessionToken>dG9rZW4=</SessionToken><Expiration>2026-12-07T12:00:00Z'
                    b'</Expiration></Credentials></AssumeRoleWithWebIdentityResult>'
                    b'</AssumeRoleWithWebIdentityResponse>',
    "error": b'<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>'
             b'<Message>No OpenIDConnect provider found</Message></Error></ErrorResponse>',
}


def cred_seeds(out):
    """fuzz_credjson (kind byte: 0 endpoint, 1 process; then the JSON), fuzz_stsxml."""
    write(out, "fuzz_credjson", "imds", b"\x00" + CRED_ANSWERS["imds"])
    write(out, "fuzz_credjson", "process", b"\x01" + CRED_ANSWERS["process"])
    for name, body in STS_ANSWERS.items():
        write(out, "fuzz_stsxml", name, body)


def json_seeds(out):
    """fuzz_jsondepth: the indexes, JSON autoindex pages and nesting near the bound (64)."""
    for dataset in sorted(os.listdir(DATA)):
        if os.path.isfile(os.path.join(DATA, dataset, "index.json")):
            write(out, "fuzz_jsondepth", dataset, read(dataset, "index.json"))
    write(out, "fuzz_jsondepth", "autoindex", HTTP_INDEXES["nginx-json"])
    write(out, "fuzz_jsondepth", "deep-64", b"[" * 64 + b"]" * 64)
    write(out, "fuzz_jsondepth", "deep-objects", b'{"a":' * 64 + b"1" + b"}" * 64)
    write(out, "fuzz_jsondepth", "strings", b'["[\\"{", "\\\\", {"k]": "\\u005b"}]')


def npy_seeds(out):
    """fuzz_npy: dtype byte, ndim byte, uint64 LE dimensions."""
    for name, dtype, shape in [("scalar", 9, []), ("vector", 1, [3]), ("matrix", 10, [2, 3]),
                               ("huge", 7, [2 ** 64 - 1, 1, 10 ** 19]),
                               ("many", 12, list(range(1, 65)))]:
        write(out, "fuzz_npy", name, struct.pack("<BB%dQ" % len(shape), dtype, len(shape), *shape))


def leaves_seeds(out):
    """fuzz_leaves: kind byte, format lines, NUL, one item of the fixture."""
    for dataset, kind in [("litdata-mixed", 0), ("litdata-tokens", 1)]:
        config = json.loads(read(dataset, "index.json"))["config"]
        first = items(read(dataset, chunks(json.loads(read(dataset, "index.json")))[0][0]))[0]
        lines = "\n".join(config["data_format"]).encode()
        write(out, "fuzz_leaves", dataset, bytes([kind]) + lines + b"\0" + first)
    shard = json.loads(read("mds-plain", "index.json"))["shards"][0]
    lines = "\n".join("%d %s" % (size if size is not None else -1, enc) for enc, size in
                      zip(shard["column_encodings"], shard["column_sizes"])).encode()
    first = items(read("mds-plain", shard["raw_data"]["basename"]))[0]
    write(out, "fuzz_leaves", "mds-plain", b"\x02" + lines + b"\0" + first)
    arrays = b"\n".join([b"ndarray", b"-1 ndarray:uint16", b"48 ndarray:float64:2,3", b"jpeg:90"])
    write(out, "fuzz_leaves", "mds-arrays", b"\x02" + arrays + b"\0" + b"\x00" * 64)


def journal_record(obj, index, etag_hash, cost, add):
    body = struct.pack("<QQQIB", obj, index, etag_hash, cost, add)
    return body + struct.pack("<I", xxhash.xxh3_64(body).intdigest() & 0xffffff)[:3]


def journal_seeds(out):
    """fuzz_journal: flags (bit 0: header; repeats), then records (spill/journal_i.h)."""
    recs = [journal_record(1, i, 0x1234, 4096, 1) for i in range(4)]
    recs.append(journal_record(1, 2, 0x1234, 4096, 0))
    write(out, "fuzz_journal", "records", b"\x01" + b"".join(recs))
    write(out, "fuzz_journal", "repeated", b"\x81" + b"".join(recs[:2]))
    write(out, "fuzz_journal", "torn", b"\x01" + b"".join(recs) + recs[0][:20])
    header = b"CFSJRNL\n" + struct.pack("<IIQ", 1, 0, 1 << 20)
    write(out, "fuzz_journal", "own-header", b"\x00" + header + recs[0])


def raw_frame(data):
    """One zstd frame (RFC 8878) holding data in a raw block: single segment, 1-byte size."""
    assert len(data) < 256
    return (b"\x28\xb5\x2f\xfd\x20" + bytes([len(data)]) +
            struct.pack("<I", 1 | len(data) << 3)[:3] + data)


def zstream_input(flags, declared, wants, seed, payload):
    return (bytes([flags]) + struct.pack("<I", declared)[:3] + bytes(wants) + bytes([seed]) +
            payload)


def zstream_seeds(out):
    """fuzz_zstream: flags, declared size, wants, seed, then zstd frames (fuzz_zstream.c)."""
    whole = [0, 255, 0, 0, 0, 0]
    for dataset, name, size in [("litdata-mixed-zstd", "chunk-0-0.zstd.bin", 25091),
                                ("mds-zstd", "shard.00000.mds.zstd", 16295)]:
        write(out, "fuzz_zstream", dataset, zstream_input(0, size, whole, 7, read(dataset, name)))
    text = b"item 31 h\xc3\xa9llo " * 10
    frame = raw_frame(text)
    # flags 0xf0: the frame 61 times over
    write(out, "fuzz_zstream", "frames", zstream_input(0xf0, 61 * len(text),
                                                          [0, 100, 50, 255, 200, 255], 3, frame))
    for name, flags, payload in [("wrong-size", 0x01, frame), ("cut", 0x02, frame),
                                 ("truncated", 0, frame[:-3]), ("no-memory", 0x0c, frame)]:
        write(out, "fuzz_zstream", name, zstream_input(flags, len(text), whole, 1, payload))


def dsindex_seeds(out):
    """fuzz_dsindex: index variants no fixture has (encrypted, other codecs, odd columns)."""
    litdata = json.loads(read("litdata-mixed", "index.json"))
    litdata["config"]["encryption"] = "fernet"
    write(out, "fuzz_dsindex", "litdata-encrypted.json", json.dumps(litdata).encode())
    litdata["config"].update(encryption=None, compression="gzip")
    write(out, "fuzz_dsindex", "litdata-gzip.json", json.dumps(litdata).encode())
    mds = json.loads(read("mds-zstd", "index.json"))
    mds["shards"][1].update(compression=None, zip_data=None)
    mds["shards"][2].update(column_encodings=["ndarray", "jpeg", "str_int"],
                            column_sizes=[None, None, None], column_names=["a", "b", "c"])
    write(out, "fuzz_dsindex", "mds-mixed.json", json.dumps(mds).encode())
    mds["shards"][2].update(column_names=["a/b", "c", "c"])
    write(out, "fuzz_dsindex", "mds-bad-names.json", json.dumps(mds).encode())
    for name, spec in data_spec_seeds():
        litdata = json.loads(read("litdata-mixed", "index.json"))
        litdata["config"]["data_spec"] = json.dumps(spec)
        write(out, "fuzz_dsindex", "litdata-spec-%s.json" % name, json.dumps(litdata).encode())


def spec_leaf():
    return {"type": None, "context": None, "children_spec": []}


def spec_node(type_, context, children):
    return {"type": type_, "context": context, "children_spec": children}


def data_spec_seeds():
    """torch pytree treespec_dumps texts of litdata-mixed's 7 leaves: nested dicts, a list
    in a dict, a defaultdict, a tuple item, unsafe and duplicate keys."""
    dd = json.dumps({"default_factory_module": "builtins", "default_factory_name": "list",
                     "dict_context": ["k"]})
    nested = spec_node("builtins.dict", json.dumps(["meta", "boxes", "x", "d"]), [
        spec_node("collections.OrderedDict", json.dumps(["label", "id"]),
                  [spec_leaf(), spec_leaf()]),
        spec_node("builtins.list", "null", [spec_leaf(), spec_leaf(), spec_leaf()]),
        spec_leaf(),
        spec_node("collections.defaultdict", dd, [spec_leaf()])])
    unsafe = spec_node("builtins.dict", json.dumps(["a/b", "..", "", "7", "dup", "dup",
                                                    "\x01"]), [spec_leaf()] * 7)
    tuple_item = spec_node("builtins.tuple", "null", [spec_leaf()] * 7)
    return [("nested", [1, nested]), ("unsafe", [1, unsafe]), ("tuple", [1, tuple_item])]


def regression_seeds(out):
    if not os.path.isdir(REGRESSIONS):
        return
    for target in sorted(os.listdir(REGRESSIONS)):
        for name in sorted(os.listdir(os.path.join(REGRESSIONS, target))):
            os.makedirs(os.path.join(out, target), exist_ok=True)
            shutil.copyfile(os.path.join(REGRESSIONS, target, name),
                            os.path.join(out, target, "regression-" + name))


def main(out):
    for dataset in sorted(os.listdir(DATA)):
        if not os.path.isfile(os.path.join(DATA, dataset, "index.json")):
            continue
        text = read(dataset, "index.json")
        write(out, "fuzz_dsindex", dataset + ".json", text)
        if dataset not in CHUNK_SCHEMAS:
            continue
        schema = CHUNK_SCHEMAS[dataset]
        for name, n in chunks(json.loads(text)):
            chunk = read(dataset, name)
            head = struct.pack("<BII", schema, n, len(chunk))
            write(out, "fuzz_chunk", "%s-%s" % (dataset, name), head + chunk)
        # A short seed mutates faster.
        first = items(read(dataset, chunks(json.loads(text))[0][0]))[:3]
        write(out, "fuzz_chunk", dataset + "-first-items", fuzz_input(schema, first))
    synthetic(out)
    spill_seeds(out)
    shared_seeds(out)
    for name in sorted(os.listdir(os.path.join(DATA, "wds"))):
        archive = read("wds", name)
        write(out, "fuzz_tar", name, archive)
        # The first 8 samples (24 members, with the GNU long names of shard 0) and an end
        # marker: a short seed.
        with tarfile.open(os.path.join(DATA, "wds", name)) as t:
            cut = t.getmembers()[24].offset
        write(out, "fuzz_tar", "head-" + name, archive[:cut] + bytes(2 * 512))
    http_seeds(out)
    cred_seeds(out)
    json_seeds(out)
    npy_seeds(out)
    leaves_seeds(out)
    journal_seeds(out)
    zstream_seeds(out)
    dsindex_seeds(out)
    regression_seeds(out)


if __name__ == "__main__":
    main(sys.argv[1])
