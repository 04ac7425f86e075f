"""Helpers shared by the item-view tests (test_items*.py, test_tar.py)."""
import errno
import os
import stat

from cfsutil import run_with_deadline, scaled
import formats


def read_bytes(path, timeout=30):
    """The whole file at path, read with plain read() calls within a deadline."""
    def read():
        with open(path, "rb", buffering=0) as f:
            out = bytearray()
            while True:
                b = f.read(1 << 20)
                if not b:
                    return bytes(out)
                out += b
    return run_with_deadline(read, scaled(timeout), "read of %s" % path)


def read_until_error(path, timeout=30, bufsize=4096):
    """(bytes read, errno or 0): opens path and reads it in bufsize preads
    until EOF or an error (of the open or of a read)."""
    def read():
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            return b"", e.errno
        out = bytearray()
        try:
            while True:
                try:
                    b = os.pread(fd, bufsize, len(out))
                except OSError as e:
                    return bytes(out), e.errno
                if not b:
                    return bytes(out), 0
                out += b
        finally:
            os.close(fd)
    return run_with_deadline(read, scaled(timeout), "read of %s" % path)


def errno_of(fn, what, timeout=30):
    """The errno fn() fails with (0 when it succeeds), within a deadline."""
    def call():
        try:
            fn()
        except OSError as e:
            return e.errno
        return 0
    return run_with_deadline(call, scaled(timeout), what)


def errname(e):
    return errno.errorcode.get(e, str(e)) if e else "success"


def check_leaf(content, expected, what):
    if isinstance(expected, tuple) and expected[0] == "npy":
        formats.check_npy_file(content, expected[1], expected[2], what)
    else:
        assert content == expected, "%s: %d bytes differ from the leaf's %d" % (
            what, len(content), len(expected))


def check_item(items_dir, name, item, leaves=True):
    """.items/<name> and .items/<name>.d/ of a mount hold item (formats.Item)."""
    path = os.path.join(items_dir, name)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode), path
    assert st.st_size == len(item.data), "%s: st_size %d, item has %d bytes" % (
        path, st.st_size, len(item.data))
    got = read_bytes(path)
    assert got == item.data, "%s: bytes differ from item %d of %s" % (path, item.index, item.chunk)
    if not leaves:
        return
    d = path + ".d"
    assert stat.S_ISDIR(os.stat(d).st_mode), d
    want_names = [n for n, _ in item.files]
    got_names = os.listdir(d)  # in leaf order, as readdir gives them
    assert got_names == want_names, "%s lists %r, want %r" % (d, got_names, want_names)
    for leaf_name, expected in item.files:
        lp = os.path.join(d, leaf_name)
        content = read_bytes(lp)
        assert os.stat(lp).st_size == len(content), "%s: st_size differs from its bytes" % lp
        check_leaf(content, expected, lp)
