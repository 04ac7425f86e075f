"""What a user meets when a mount cannot start: one line on stderr that names
what was typed (secrets masked) and says what to do, a non-zero exit, nothing
mounted; and --help describing chunkfs as it is."""
import os

import pytest

from cfsutil import (NginxServer, chunkfs_env, data_dir, is_mounted, run_chunkfs,
                     run_until_exit)

FORMS = "http://HOST/PATH/, https://HOST/PATH/ or s3://BUCKET/PREFIX"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """nginx without directory listings (as it is configured by default):
    /mixed/ holds litdata-mixed, /empty/ is a directory without index.json."""
    root = tmp_path_factory.mktemp("messages-root")
    os.symlink(data_dir("litdata-mixed"), root / "mixed")
    (root / "empty").mkdir()
    srv = NginxServer(root, tmp_path_factory.mktemp("messages-nginx"))
    srv.start()
    yield srv
    srv.stop()


def refused(chunkfs_bin, tmp_path, args, foreground=True, env=None):
    """Run chunkfs ARGS MOUNTPOINT; assert a non-zero exit, exactly one line on
    stderr and no mount; return that line."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    argv = [chunkfs_bin] + (["-f"] if foreground else []) + args + [str(mnt)]
    rc, stderr, _ = run_until_exit(argv, env, str(mnt))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc != 0, "chunkfs exited 0 for %s" % argv
    assert len(lines) == 1, "expected one line on stderr, got:\n%s" % stderr
    assert not is_mounted(str(mnt))
    return lines[0]


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemon"])
def test_missing_directory(chunkfs_bin, server, tmp_path, foreground):
    """A mistyped directory: neither it nor its index.json is found."""
    url = server.url + "fixtrues/"
    line = refused(chunkfs_bin, tmp_path, [url], foreground)
    assert "no directory at '%s'" % url in line, line
    assert "check the path" in line, line


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemon"])
def test_directory_not_listed_without_index(chunkfs_bin, server, tmp_path, foreground):
    """A directory that exists, which the server does not list, and with no
    index.json: told apart from a missing one."""
    url = server.url + "empty/"
    line = refused(chunkfs_bin, tmp_path, [url], foreground)
    assert "'%s' has no index.json and the server does not list it" % url in line, line
    assert "no directory" not in line, line


@pytest.mark.parametrize("name", ["chunk-0-0.bin", "index.json", "index.json/"])
def test_file_url_names_its_directory(chunkfs_bin, server, tmp_path, name):
    """The URL of a file of the dataset, not of its directory: the directory to give."""
    url = server.url + "mixed/" + name
    line = refused(chunkfs_bin, tmp_path, [url])
    assert "URL '%s' names a file; give its directory: %smixed/" % (url, server.url) in line, line
    assert "index.json/index.json" not in line, line


@pytest.mark.parametrize("typed", ["{host}/mixed/", "localhost:{port}/mixed/",
                                   "http//{host}/mixed/", "s3:/bucket/prefix"])
def test_url_without_scheme_shown_as_typed(chunkfs_bin, server, tmp_path, typed):
    host = "127.0.0.1:%d" % server.port
    url = typed.format(host=host, port=server.port)
    line = refused(chunkfs_bin, tmp_path, [url])
    assert "URL '%s' does not start with a scheme" % url in line, line
    assert FORMS in line, line


def test_url_without_scheme_masks_secrets(chunkfs_bin, server, tmp_path):
    """What was typed is shown, but not a password or a query string."""
    url = "user:hunter2@127.0.0.1:%d/mixed/?token=hunter3" % server.port
    line = refused(chunkfs_bin, tmp_path, [url])
    assert "'***@127.0.0.1:%d/mixed/?***'" % server.port in line, line
    assert "hunter" not in line, line


@pytest.mark.parametrize("scheme", ["ftp", "file", "gs"])
def test_other_scheme_names_the_ones_taken(chunkfs_bin, server, tmp_path, scheme):
    url = "%s://127.0.0.1:%d/mixed/" % (scheme, server.port)
    line = refused(chunkfs_bin, tmp_path, [url])
    assert "unsupported URL scheme '%s' in '%s'" % (scheme, url) in line, line
    assert "chunkfs takes " + FORMS in line, line


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_cacert_that_cannot_be_read_is_refused(chunkfs_bin, server, tmp_path, where):
    """Refused at start, before any connection (the server is plain HTTP and
    would not need it)."""
    path = str(tmp_path / "nonexistent.pem") if where == "missing" else str(tmp_path)
    before = len(server.requests())
    line = refused(chunkfs_bin, tmp_path, ["--cacert=" + path, server.url + "mixed/"])
    assert line.startswith("chunkfs: --cacert=%s: " % path), line
    assert "PEM file" in line, line
    assert len(server.requests()) == before, "chunkfs connected before refusing --cacert"


@pytest.mark.log_allow(r"^CURL_CA_BUNDLE=.*/nonexistent\.pem: No such file or directory: "
                       r"TLS certificates cannot be verified$")
def test_unreadable_ca_bundle_of_the_environment_is_warned_about(mount, server, tmp_path):
    """The environment's CA bundle is not the command's to refuse: a warning,
    and a plain HTTP mount still works."""
    bundle = str(tmp_path / "nonexistent.pem")
    m = mount(server.url + "mixed/", env=chunkfs_env(CURL_CA_BUNDLE=bundle))
    assert "index.json" in os.listdir(m.path)
    assert "CURL_CA_BUNDLE=%s: " % bundle in m.read_log()


@pytest.mark.parametrize("args", [["--disk-cache=4K"],
                                  ["--disk-cache=512K", "--block-size=1M"],
                                  ["--disk-cache=1M", "--block-size=2M"]])
def test_disk_cache_below_one_block_is_refused(chunkfs_bin, server, tmp_path, args):
    line = refused(chunkfs_bin, tmp_path, args + [server.url + "mixed/"])
    assert "--disk-cache must be 0 (no spill tier) or at least one block" in line, line


def test_disk_cache_of_one_block_mounts(mount, server):
    m = mount(server.url + "mixed/", "--disk-cache=1M", "--block-size=1M")
    assert "index.json" in os.listdir(m.path)


def test_cache_dir_that_cannot_be_made_names_the_option(chunkfs_bin, server, tmp_path):
    """A cache directory that cannot be created (here under a regular file, as
    a default one under a HOME that is not a directory): the options that fix it."""
    (tmp_path / "home").write_bytes(b"a file, not a directory\n")
    cache = str(tmp_path / "home" / "cache")
    line = refused(chunkfs_bin, tmp_path, ["--cache-dir=" + cache, server.url + "mixed/"])
    assert cache in line, line
    assert "give a writable directory with --cache-dir=DIR, or --disk-cache=0" in line, line


@pytest.mark.parametrize("locale,ellipsis", [("C.UTF-8", "\u2026"), ("C", "...")])
def test_help_usage_line(chunkfs_bin, locale, ellipsis):
    """The usage line names the arguments and shows no '?' in any locale."""
    r = run_chunkfs(chunkfs_bin, ["--help"], env=chunkfs_env(LC_ALL=locale))
    assert r.returncode == 0, r.stderr
    usage = r.stdout.splitlines()[1].strip()
    assert usage == "chunkfs [OPTION%s] URL MOUNTPOINT" % ellipsis, usage


def test_help_describes_the_product(chunkfs_bin):
    r = run_chunkfs(chunkfs_bin, ["--help"], env=chunkfs_env(LC_ALL="C.UTF-8"))
    text = " ".join(r.stdout.split())
    for words in ["S3 bucket path", "HTTP(S) directory", "read-only", "LitData",
                  "MosaicML MDS", "WebDataset", ".items/", "NAME.tar.d/",
                  "URL is the directory to mount: " + FORMS]:
        assert words in text, "--help does not say %r:\n%s" % (words, r.stdout)
    assert "Mount a LitData dataset" not in text
    assert "it holds index.json" not in text
