"""HTTP(S) access options against a real nginx on 127.0.0.1: TLS with a CA made
here (--cacert, the CA bundle variables, --insecure), --header and --header-file
(and the header files it refuses), basic auth from
the URL or ~/.netrc, and secrets (userinfo, query string, header values) that
never show in the daemon's log, even with -d, nor in its stats or error lines."""
import base64
import os
import shutil
import subprocess

import pytest

from cfsutil import (CA_ENV_VARS, chunkfs_env, data_dir, dataset_names, find_pids_by_argv,
                      is_mounted, run_until_exit, scaled, sha256_file, source_sha256, wait_for)

DATASET = "litdata-mixed"
HDR_SECRET = "s3cr3t-hdr"
PW_SECRET = "pw-s3cr3t"
QUERY_SECRET = "q-s3cr3t"
USER = "user"
# what a leaked Authorization header of the basic auth would show
PW_BASE64 = base64.b64encode(("%s:%s" % (USER, PW_SECRET)).encode()).decode()


# --------------------------------------------------------------------------
# helpers


def openssl(*args, cwd=None):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, timeout=scaled(60),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(directory, name):
    """A self-signed CA (EC P-256): (certificate path, key path)."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", cert, "-days", "7",
            "-subj", "/CN=chunkfs test %s" % name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A CA, a server certificate it signed for IP 127.0.0.1, another CA that
    signed nothing, and a hashed certificate directory holding the CA."""
    d = str(tmp_path_factory.mktemp("tls"))
    ca, ca_key = make_ca(d, "ca")
    other_ca, _ = make_ca(d, "other-ca")
    key = os.path.join(d, "server.key")
    csr = os.path.join(d, "server.csr")
    cert = os.path.join(d, "server.pem")
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "7", "-extfile", ext, "-out", cert, cwd=d)
    openssl("verify", "-CAfile", ca, cert)
    certdir = os.path.join(d, "certdir")
    os.mkdir(certdir)
    shutil.copy(ca, os.path.join(certdir, "chunkfs-test-ca.pem"))
    openssl("rehash", certdir)
    return {"ca": ca, "other_ca": other_ca, "cert": cert, "key": key, "certdir": certdir}


@pytest.fixture
def www(tmp_path):
    """A web root holding a copy of the fixture dataset under /litdata-mixed/."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copytree(data_dir(DATASET), str(root / DATASET))
    return str(root)


def dataset_url(srv, userinfo=None, query=None):
    url = srv.url + DATASET + "/"
    if userinfo:
        scheme, _, rest = url.partition("://")
        url = "%s://%s@%s" % (scheme, userinfo, rest)
    if query:
        url += "?" + query
    return url


def location(*lines):
    """nginx conf: a location for the dataset with the given directives."""
    return "        location /%s/ {\n%s        }\n" % (
        DATASET, "".join("            %s\n" % line for line in lines))


def header_check(name, value):
    var = "$http_" + name.lower().replace("-", "_")
    return 'if (%s != "%s") { return 403; }' % (var, value)


def basic_auth(tmp_path):
    """nginx directives of basic auth with user/PW_SECRET (an apr1 hash)."""
    hashed = subprocess.run(["openssl", "passwd", "-apr1", PW_SECRET], check=True,
                            capture_output=True, text=True, timeout=scaled(30)).stdout.strip()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("%s:%s\n" % (USER, hashed))
    return ['auth_basic "chunkfs test";', "auth_basic_user_file %s;" % htpasswd]


def empty_home(tmp_path):
    """A HOME without .netrc (nor anything else), so that no user file of this
    machine changes what a test sees."""
    home = tmp_path / "home-empty"
    home.mkdir(exist_ok=True)
    return str(home)


def check_bytes(m):
    """Every file of the dataset reads back equal to the source."""
    src = data_dir(DATASET)
    for name in dataset_names(src):
        assert sha256_file(m.file(name)) == source_sha256(os.path.join(src, name)), name


def stderr_text(m):
    """What the command wrote to stderr (without sanitizer report files)."""
    with open(m.log, errors="replace") as f:
        return f.read()


def assert_mount_failed(m, *words):
    """The daemonizing command failed: non-zero exit, one line on stderr
    (holding every one of words, case-insensitively), nothing mounted, no
    chunkfs process left. Returns the line."""
    assert not m.ok
    assert m.returncode not in (None, 0), "chunkfs returned %r" % m.returncode
    assert not is_mounted(m.path), "%s is mounted after a failed mount" % m.path
    assert os.listdir(m.path) == []
    wait_for(lambda: not find_pids_by_argv(m.argv), scaled(10), "no chunkfs process left")
    lines = [line for line in stderr_text(m).splitlines() if line.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % lines
    for word in words:
        assert word.lower() in lines[0].lower(), "%r does not name %r" % (lines[0], word)
    return lines[0]


def assert_no_secret(text, *secrets, what="the log"):
    for secret in secrets:
        assert secret not in text, "%r appears in %s:\n%s" % (
            secret, what, "\n".join(line for line in text.splitlines() if secret in line))


def check_debug_log_clean(m, *secrets):
    """After the unmount: the -d log has debug lines, and no secret anywhere."""
    log = stderr_text(m)
    assert "chunkfs[debug]" in log, "no debug line in the -d log:\n" + log[-2000:]
    assert_no_secret(log, *secrets)
    return log


def stats_text(m):
    with open(m.file(".chunkfs", "stats"), "rb") as f:
        return f.read().decode(errors="replace")


def dataset_requests(srv):
    """Requests for the dataset's files. The GET of the directory itself (a
    listing, which this nginx refuses with 403 as it has no autoindex) is
    left out."""
    return [e for e in srv.requests() if ("/%s/" % DATASET) in e["request"]
            and ("/%s/ " % DATASET) not in e["request"]
            and ("/%s/?" % DATASET) not in e["request"]]


# --------------------------------------------------------------------------
# the harness: no CA variable of this machine reaches chunkfs


def test_ca_variables_are_scrubbed_from_the_daemon_environment(nginx, mount, www):
    srv = nginx(www)
    m = mount(dataset_url(srv))
    with open("/proc/%d/environ" % m.pid, "rb") as f:
        names = {item.split(b"=", 1)[0].decode() for item in f.read().split(b"\0") if item}
    assert not names & set(CA_ENV_VARS), names & set(CA_ENV_VARS)
    m2 = mount(dataset_url(srv), env=chunkfs_env(SSL_CERT_DIR="/nonexistent-chunkfs"))
    with open("/proc/%d/environ" % m2.pid, "rb") as f:
        assert b"\0SSL_CERT_DIR=/nonexistent-chunkfs\0" in b"\0" + f.read()


# --------------------------------------------------------------------------
# TLS


def test_tls_with_cacert_every_byte(nginx, mount, www, tls):
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    assert srv.url.startswith("https://127.0.0.1:")
    m = mount(dataset_url(srv), "--cacert=%s" % tls["ca"])
    check_bytes(m)
    assert "insecure" not in stderr_text(m).lower()
    assert m.unmount() == []
    assert any(e["status"] == "206" for e in dataset_requests(srv)), "no Range GET over TLS"


@pytest.mark.parametrize("ca", [None, "other_ca"])
def test_tls_unknown_ca_fails_clearly(nginx, mount, www, tls, ca):
    """No CA for the server (the system store, or --cacert with a CA that did
    not sign it): non-zero exit, one line naming the certificate, nothing
    mounted."""
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    args = ["--cacert=%s" % tls[ca]] if ca else []
    m = mount(dataset_url(srv), *args, foreground=False, expect_ok=False)
    assert_mount_failed(m, "certificate")


def test_tls_unknown_ca_fails_in_foreground(nginx, mount, www, tls):
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    m = mount(dataset_url(srv), "-d", expect_ok=False)
    assert not m.ok and m.returncode not in (None, 0)
    assert not is_mounted(m.path)
    assert "certificate" in stderr_text(m).lower()


@pytest.mark.log_allow(r"^TLS certificates of \S+ are not verified \(--insecure\)")
def test_tls_insecure_mounts_and_warns_once(nginx, mount, www, tls):
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    m = mount(dataset_url(srv), "--insecure")
    check_bytes(m)
    assert m.unmount() == []
    # the test's directory (in the mountpoint's path) is named after the test
    text = stderr_text(m).replace(os.path.dirname(m.path), "<tmp>")
    lines = [line for line in text.splitlines() if "insecure" in line.lower()]
    assert len(lines) == 1, "expected one line about --insecure, got %r" % lines
    assert "warning" in lines[0].lower(), lines[0]


@pytest.mark.parametrize("variables", [
    {"CURL_CA_BUNDLE": "ca"},
    {"SSL_CERT_FILE": "ca"},
    {"SSL_CERT_DIR": "certdir"},
    {"CURL_CA_BUNDLE": "ca", "SSL_CERT_FILE": "other_ca"},    # CURL_CA_BUNDLE comes first
], ids=lambda v: "+".join("%s=%s" % kv for kv in sorted(v.items())))
def test_tls_ca_from_environment(nginx, mount, www, tls, variables):
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    env = chunkfs_env(**{var: tls[key] for var, key in variables.items()})
    m = mount(dataset_url(srv), env=env)
    check_bytes(m)


def test_tls_curl_ca_bundle_wins_over_ssl_cert_file(nginx, mount, www, tls):
    """As with the curl tool, SSL_CERT_FILE is read only when CURL_CA_BUNDLE
    is not set."""
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    env = chunkfs_env(CURL_CA_BUNDLE=tls["other_ca"], SSL_CERT_FILE=tls["ca"])
    m = mount(dataset_url(srv), foreground=False, expect_ok=False, env=env)
    assert_mount_failed(m, "certificate")


def test_tls_cacert_wins_over_environment(nginx, mount, www, tls):
    """As with the curl tool, --cacert overrides CURL_CA_BUNDLE."""
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    env = chunkfs_env(CURL_CA_BUNDLE=tls["other_ca"])
    m = mount(dataset_url(srv), "--cacert=%s" % tls["ca"], env=env)
    check_bytes(m)


# --------------------------------------------------------------------------
# --header


@pytest.mark.parametrize("args", [[], ["--header=X-Dataset-Token: wrong-value"]],
                         ids=["no-header", "wrong-value"])
def test_header_missing_or_wrong_fails(nginx, mount, www, args):
    srv = nginx(www, extra_conf=location(header_check("X-Dataset-Token", HDR_SECRET)))
    m = mount(dataset_url(srv), *args, foreground=False, expect_ok=False)
    assert_mount_failed(m)
    assert [e["status"] for e in dataset_requests(srv)][:1] == ["403"]


def test_header_is_sent_with_every_request_and_never_logged(nginx, mount, www):
    srv = nginx(www, extra_conf=location(header_check("X-Dataset-Token", HDR_SECRET)))
    m = mount(dataset_url(srv), "-d", "--header=X-Dataset-Token: %s" % HDR_SECRET,
              "--block-size=4K", "--readahead=0")
    check_bytes(m)
    assert_no_secret(stats_text(m), HDR_SECRET, what=".chunkfs/stats")
    assert m.unmount() == []
    check_debug_log_clean(m, HDR_SECRET)
    reqs = dataset_requests(srv)
    assert sum(e["status"] == "206" for e in reqs) >= len(dataset_names(data_dir(DATASET))) - 1
    assert all(e["status"] in ("200", "206") for e in reqs), [e for e in reqs
                                                              if e["status"] not in ("200", "206")]


def test_header_repeatable(nginx, mount, www):
    conf = location(header_check("X-Dataset-Token", HDR_SECRET),
                    header_check("X-Second", "second-value"))
    srv = nginx(www, extra_conf=conf)
    one = mount(dataset_url(srv), "--header=X-Dataset-Token: %s" % HDR_SECRET,
                foreground=False, expect_ok=False)
    assert_mount_failed(one)
    m = mount(dataset_url(srv), "-d", "--header=X-Dataset-Token: %s" % HDR_SECRET,
              "--header=X-Second: second-value")
    check_bytes(m)
    assert m.unmount() == []
    check_debug_log_clean(m, HDR_SECRET, "second-value")


# --------------------------------------------------------------------------
# --header-file


def header_file(tmp_path, text, mode=0o600, name="headers"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)
    return str(path)


def process_title(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode(errors="replace")


HEADER_FILE_TEXT = ("# the dataset's token\n\nX-Dataset-Token: %s\n   \n"
                    "X-Second: second-value" % HDR_SECRET)


def test_header_file_is_sent_and_never_shown(nginx, mount, www, tmp_path):
    """Headers from a 0600 file (comments and blank lines skipped, the last
    line without its newline) go with every request; neither token is in the
    -d log, the stats or the process title."""
    conf = location(header_check("X-Dataset-Token", HDR_SECRET),
                    header_check("X-Second", "second-value"))
    srv = nginx(www, extra_conf=conf)
    m = mount(dataset_url(srv), "-d", "--header-file=%s" % header_file(tmp_path, HEADER_FILE_TEXT),
              "--block-size=4K", "--readahead=0")
    check_bytes(m)
    assert_no_secret(stats_text(m), HDR_SECRET, "second-value", what=".chunkfs/stats")
    assert_no_secret(process_title(m.pid), HDR_SECRET, "second-value", what="the process title")
    assert m.unmount() == []
    check_debug_log_clean(m, HDR_SECRET, "second-value")
    reqs = dataset_requests(srv)
    assert reqs and all(e["status"] in ("200", "206") for e in reqs), reqs


def test_header_file_as_o_item_daemonized(nginx, mount, www, tmp_path):
    """-o header-file=FILE, as an fstab line gives it, with --header beside it."""
    conf = location(header_check("X-Dataset-Token", HDR_SECRET),
                    header_check("X-Other", "other-value"))
    srv = nginx(www, extra_conf=conf)
    path = header_file(tmp_path, "X-Dataset-Token: %s\n" % HDR_SECRET)
    m = mount(dataset_url(srv), "-o", "header-file=%s" % path, "--header=X-Other: other-value",
              foreground=False)
    check_bytes(m)
    assert_no_secret(process_title(m.pid), HDR_SECRET, what="the process title")


def refused_header_file(tmp_path, case):
    """(path, words of the refusal) of a header file that must be refused."""
    token_line = "X-Dataset-Token: %s\n" % HDR_SECRET
    if case == "mode-0644":
        return header_file(tmp_path, token_line, mode=0o644), ["0644", "group or others"]
    if case == "mode-0660":
        return header_file(tmp_path, token_line, mode=0o660), ["0660", "group or others"]
    if case == "symlink":
        target = header_file(tmp_path, token_line)
        os.symlink(target, str(tmp_path / "link"))
        return str(tmp_path / "link"), ["symlink"]
    if case == "fifo":
        os.mkfifo(str(tmp_path / "fifo"), 0o600)
        return str(tmp_path / "fifo"), ["not a regular file"]
    if case == "directory":
        os.mkdir(str(tmp_path / "dir"), 0o700)
        return str(tmp_path / "dir"), ["not a regular file"]
    if case == "other-owner":
        path = header_file(tmp_path, token_line)
        os.chown(path, 65534, 65534)
        return path, ["owned by another user"]
    if case == "crlf":
        return header_file(tmp_path, "X-Dataset-Token: %s\r\n" % HDR_SECRET), ["line 1"]
    if case == "bad-name":
        return header_file(tmp_path, "# ok\nX Token: %s\n" % HDR_SECRET), ["line 2"]
    if case == "nul":
        return header_file(tmp_path, token_line.encode() + b"X-A: b\0c\n"), ["NUL"]
    if case == "too-large":
        return header_file(tmp_path, token_line + "#" * (64 * 1024)), ["64 KiB"]
    assert case == "too-many-lines"
    return header_file(tmp_path, token_line + "\n" * 1024), ["1024 lines"]


@pytest.mark.parametrize("case", ["mode-0644", "mode-0660", "symlink", "fifo", "directory",
                                  "other-owner", "crlf", "bad-name", "nul", "too-large",
                                  "too-many-lines"])
def test_header_file_refused(nginx, chunkfs_bin, www, tmp_path, case):
    """An unsafe or malformed header file: exit 2 with one line naming the
    file and the reason (never the token), nothing mounted, nothing fetched."""
    srv = nginx(www, extra_conf=location(header_check("X-Dataset-Token", HDR_SECRET)))
    path, words = refused_header_file(tmp_path, case)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = [chunkfs_bin, "-f", "--header-file=%s" % path, "--cache-dir=%s" % (tmp_path / "cache"),
            dataset_url(srv), str(mnt)]
    rc, stderr, _ = run_until_exit(argv, None, str(mnt))
    lines = stderr.strip().splitlines()
    assert rc == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("chunkfs: --header-file %s: " % path), lines
    for word in words:
        assert word in lines[0], lines
    assert_no_secret(stderr, HDR_SECRET, what="the refusal")
    assert dataset_requests(srv) == []


# --------------------------------------------------------------------------
# basic auth: user:password in the URL, ~/.netrc


def test_basic_auth_from_url_userinfo(nginx, mount, www, tmp_path):
    srv = nginx(www, extra_conf=location(*basic_auth(tmp_path)))
    url = dataset_url(srv, userinfo="%s:%s" % (USER, PW_SECRET))
    m = mount(url, "-d", env=chunkfs_env(HOME=empty_home(tmp_path)))
    check_bytes(m)
    assert_no_secret(stats_text(m), PW_SECRET, what=".chunkfs/stats")
    assert m.unmount() == []
    log = check_debug_log_clean(m, PW_SECRET, PW_BASE64)
    assert "://***@127.0.0.1:%d/%s/" % (srv.port, DATASET) in log, \
        "the URL is not logged with its userinfo as ***:\n" + log[-3000:]
    assert any(e["status"] == "206" for e in dataset_requests(srv))


@pytest.mark.parametrize("userinfo", [None, USER + ":wrong-s3cr3t"], ids=["none", "wrong"])
def test_basic_auth_without_right_credentials_fails(nginx, mount, www, tmp_path, userinfo):
    srv = nginx(www, extra_conf=location(*basic_auth(tmp_path)))
    m = mount(dataset_url(srv, userinfo=userinfo), foreground=False, expect_ok=False,
              env=chunkfs_env(HOME=empty_home(tmp_path)))
    line = assert_mount_failed(m)
    assert_no_secret(line, "wrong-s3cr3t", what="the error line")
    assert [e["status"] for e in dataset_requests(srv)][-1:] == ["401"]


def test_basic_auth_wrong_password_never_logged(nginx, mount, www, tmp_path):
    srv = nginx(www, extra_conf=location(*basic_auth(tmp_path)))
    m = mount(dataset_url(srv, userinfo=USER + ":wrong-s3cr3t"), "-d", expect_ok=False,
              env=chunkfs_env(HOME=empty_home(tmp_path)))
    assert not m.ok and m.returncode not in (None, 0)
    assert not is_mounted(m.path)
    assert_no_secret(stderr_text(m), "wrong-s3cr3t")


def test_basic_auth_from_netrc(nginx, mount, www, tmp_path):
    srv = nginx(www, extra_conf=location(*basic_auth(tmp_path)))
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login %s password %s\n" % (USER, PW_SECRET))
    netrc.chmod(0o600)
    m = mount(dataset_url(srv), "-d", env=chunkfs_env(HOME=str(home)))
    check_bytes(m)
    assert_no_secret(stats_text(m), PW_SECRET, what=".chunkfs/stats")
    assert m.unmount() == []
    check_debug_log_clean(m, PW_SECRET, PW_BASE64)
    assert any(e["status"] == "206" for e in dataset_requests(srv))


# --------------------------------------------------------------------------
# query strings, and every secret at once


def test_query_string_never_logged(nginx, mount, www):
    """The query string (a signature, say) goes with every request, and never
    into the log."""
    srv = nginx(www, extra_conf=location('if ($arg_sig != "%s") { return 403; }' % QUERY_SECRET))
    m = mount(dataset_url(srv, query="sig=" + QUERY_SECRET), "-d")
    check_bytes(m)
    assert_no_secret(stats_text(m), QUERY_SECRET, what=".chunkfs/stats")
    assert m.unmount() == []
    log = check_debug_log_clean(m, QUERY_SECRET)
    assert "/%s/?***" % DATASET in log, "the URL is not logged with its query as ?***:\n" \
        + log[-3000:]


def test_every_secret_at_once_over_tls(nginx, mount, www, tls, tmp_path):
    """https with userinfo, a query string and a header, each one checked by
    nginx: the mount works and the -d log holds none of them."""
    conf = location(header_check("X-Dataset-Token", HDR_SECRET), *basic_auth(tmp_path))
    srv = nginx(www, ssl=(tls["cert"], tls["key"]), extra_conf=conf)
    url = dataset_url(srv, userinfo="%s:%s" % (USER, PW_SECRET), query="sig=" + QUERY_SECRET)
    m = mount(url, "-d", "--cacert=%s" % tls["ca"], "--header=X-Dataset-Token: %s" % HDR_SECRET,
              env=chunkfs_env(HOME=empty_home(tmp_path)))
    check_bytes(m)
    assert_no_secret(stats_text(m), HDR_SECRET, PW_SECRET, QUERY_SECRET, what=".chunkfs/stats")
    with open("/proc/%d/cmdline" % m.pid, "rb") as f:
        title = f.read().decode(errors="replace")
    assert_no_secret(title, HDR_SECRET, PW_SECRET, QUERY_SECRET, what="the process title")
    assert USER not in title.split("@")[0].split("://")[-1], title
    assert m.unmount() == []
    check_debug_log_clean(m, HDR_SECRET, PW_SECRET, PW_BASE64, QUERY_SECRET)


def test_daemon_title_holds_no_secret(nginx, mount, www, tmp_path):
    """A daemonized mount: the process title the daemon keeps has no secret."""
    srv = nginx(www, extra_conf=location(header_check("X-Dataset-Token", HDR_SECRET),
                                         *basic_auth(tmp_path)))
    url = dataset_url(srv, userinfo="%s:%s" % (USER, PW_SECRET), query="sig=" + QUERY_SECRET)
    m = mount(url, "--header=X-Dataset-Token: %s" % HDR_SECRET, foreground=False,
              env=chunkfs_env(HOME=empty_home(tmp_path)))
    check_bytes(m)
    with open("/proc/%d/cmdline" % m.pid, "rb") as f:
        title = f.read().decode(errors="replace")
    assert_no_secret(title, HDR_SECRET, PW_SECRET, QUERY_SECRET, what="the process title")


def test_tls_failure_message_holds_no_secret(nginx, mount, www, tls, tmp_path):
    srv = nginx(www, ssl=(tls["cert"], tls["key"]))
    url = dataset_url(srv, userinfo="%s:%s" % (USER, PW_SECRET), query="sig=" + QUERY_SECRET)
    m = mount(url, "--header=X-Dataset-Token: %s" % HDR_SECRET, foreground=False,
              expect_ok=False, env=chunkfs_env(HOME=empty_home(tmp_path)))
    line = assert_mount_failed(m, "certificate")
    assert_no_secret(line, HDR_SECRET, PW_SECRET, QUERY_SECRET, what="the error line")
    f = mount(url, "-d", "--header=X-Dataset-Token: %s" % HDR_SECRET, expect_ok=False,
              env=chunkfs_env(HOME=empty_home(tmp_path)))
    assert not f.ok and f.returncode not in (None, 0)
    assert_no_secret(stderr_text(f), HDR_SECRET, PW_SECRET, QUERY_SECRET)
