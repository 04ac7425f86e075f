"""Installing chunkfs: the man page chunkfs(1) (docs/chunkfs.1.scd) agrees
with `chunkfs --help`, README's options table and the environment variables
the sources read; `meson install` of the build directory the suite runs
against stages an executable chunkfs and a man page that man(1) renders
without a warning. Nothing is mounted."""
import json
import os
import re
import shutil
import subprocess

import pytest

from cfsutil import REPO_DIR, chunkfs_bin_path, run_chunkfs

MAN_SOURCE = os.path.join(REPO_DIR, "docs", "chunkfs.1.scd")
# Options only of -o lists (mount(8)'s and FUSE's) that the man page must explain.
MOUNT_ITEMS = ("allow_other", "nonempty", "ro", "_netdev", "nofail")
# GOption's own help options (--help-all, --help-GROUP) besides --help.
GOPTION_HELP = re.compile(r"help-")
HELP_LINE = re.compile(r"^\s+(?:-(\w), )?--([a-z][a-z0-9-]*)")
LONG_NAME = re.compile(r"--([a-z][a-z0-9-]*)")
SHORT_NAME = re.compile(r"\*-(\w)\*")


def help_options():
    """{long name: (short letter or None, description)} of `chunkfs --help-all`."""
    r = run_chunkfs(chunkfs_bin_path(), ["--help-all"])
    assert r.returncode == 0, r.stderr
    options = {}
    for line in r.stdout.splitlines():
        m = HELP_LINE.match(line)
        if m and not GOPTION_HELP.match(m.group(2)):
            # GOption pads the description with two spaces or more; a metavar has one at most.
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            options[m.group(2)] = (m.group(1), parts[1] if len(parts) > 1 else "")
    assert "mem-cache" in options, r.stdout
    return options


def man_section(name):
    """The lines of section NAME ("# NAME" up to the next "# ") of the man page source."""
    with open(MAN_SOURCE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = lines.index("# " + name) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("# ")), len(lines))
    return lines[start:end]


def man_entries(section):
    """[(term, text)] of the entries of a section: a term is a line that starts with
    '*', its text the tab-indented lines below it, joined by spaces."""
    entries = []
    for line in man_section(section):
        if line.startswith("*"):
            entries.append((line, []))
        elif line.startswith("\t") and entries:
            entries[-1][1].append(line.strip())
    return [(term, " ".join(text)) for term, text in entries]


def man_options():
    """{long name: (term, text)} of the OPTIONS entries of the man page source."""
    options = {}
    for term, text in man_entries("OPTIONS"):
        names = LONG_NAME.findall(term)
        assert names, "an OPTIONS entry without a long option: %r" % term
        for name in names:
            assert name not in options, "--%s has two entries in the man page" % name
            options[name] = (term, text)
    return options


def readme_options():
    """The long options of README's options table (### Options)."""
    with open(os.path.join(REPO_DIR, "README.md"), encoding="utf-8") as f:
        text = f.read()
    table = text.split("\n### Options\n", 1)[1].split("\n### ", 1)[0]
    names = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            names.update(LONG_NAME.findall(row.split(" | ", 1)[0]))
    return names


def test_help_options_are_in_the_man_page_and_back():
    """Every option --help lists has an entry in the man page's OPTIONS, with
    the same short letter, and every entry there is an option --help lists: an
    option added without its man page entry (or dropped with it left) fails."""
    helped = help_options()
    documented = man_options()
    assert sorted(set(helped) - set(documented)) == [], "in --help, not in the man page"
    assert sorted(set(documented) - set(helped)) == [], "in the man page, not in --help"
    for name, (short, _) in helped.items():
        term = documented[name][0]
        assert SHORT_NAME.findall(term) == ([short] if short else []), (name, term)


def test_man_page_gives_the_defaults_help_gives():
    """An option that takes a value says "Default: ..." in the man page, and
    one whose --help gives a plain default (a number, a size, a word) gives
    the same one there."""
    documented = man_options()
    for name, (term, text) in documented.items():
        if "=" in term:
            assert "Default: " in text, "--%s has no default in the man page" % name
    for name, (_, description) in help_options().items():
        m = re.search(r"\(default ([\w.]+)\)", description)
        if m and name in documented:
            text = documented[name][1]
            assert re.search(r"Default: %s\." % re.escape(m.group(1)), text), \
                "--%s: --help says default %s, the man page: %s" % (name, m.group(1), text)


def test_man_page_explains_the_mount_items():
    """The -o items of mount(8) and FUSE that an fstab line uses have entries."""
    items = set()
    for term, _ in man_entries("MOUNT OPTIONS"):
        items.update(re.findall(r"\*([a-z_\\]+)\*", term))
    items = {item.replace("\\", "") for item in items}
    assert sorted(set(MOUNT_ITEMS) - items) == []


def test_readme_options_table_agrees_with_the_man_page():
    """README's options table and the man page name the same long options."""
    assert sorted(readme_options() ^ set(man_options())) == []


def source_env_vars():
    """The environment variables src/ reads by name."""
    names = set()
    pattern = re.compile(r'(?:getenv|_env)\("([A-Z][A-Z0-9_]*)"\)|ca_env = "([A-Z][A-Z0-9_]*)"')
    for root, _, files in os.walk(os.path.join(REPO_DIR, "src")):
        for name in files:
            if name.endswith((".c", ".h")):
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    for m in pattern.finditer(f.read()):
                        names.add(m.group(1) or m.group(2))
    return names


def test_man_page_lists_the_environment_chunkfs_reads():
    """Every variable src/ reads by name (getenv, cfs_remote_env, a scheme's
    ca_env) has an entry in ENVIRONMENT."""
    names = source_env_vars()
    assert "AWS_ACCESS_KEY_ID" in names and "AWS_CA_BUNDLE" in names, names
    listed = set()
    for term, _ in man_entries("ENVIRONMENT"):
        listed.update(re.findall(r"\*([A-Z][A-Z0-9_]*)\*", term))
    assert sorted(names - listed) == []


def test_meson_install_stages_the_binary_and_man_page(installed):
    """`meson install --destdir` puts an executable chunkfs in PREFIX/bin and
    chunkfs.1 in PREFIX/share/man/man1 (mandir/man1)."""
    bindir, mandir = installed
    binary = os.path.join(bindir, "chunkfs")
    assert os.path.isfile(binary) and os.access(binary, os.X_OK), binary
    page = os.path.join(mandir, "man1", "chunkfs.1")
    assert os.path.isfile(page), "%s missing: was scdoc found when %s was set up?" % (
        page, os.path.dirname(chunkfs_bin_path()))


def test_installed_man_page_renders_without_warnings(installed):
    """man(1) renders the installed page with no warning from groff, and the
    text holds every option."""
    man = shutil.which("man")
    if man is None:
        pytest.skip("man(1) is not installed (Debian's man-db; scripts/deps.sh installs it)")
    page = os.path.join(installed[1], "man1", "chunkfs.1")
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", LC_ALL="C")
    r = subprocess.run([man, "--warnings", "-l", page], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for heading in ("NAME", "SYNOPSIS", "OPTIONS", "ENVIRONMENT", "FILES", "EXIT STATUS",
                    "EXAMPLES", "SEE ALSO"):
        assert re.search(r"^%s$" % heading, r.stdout, re.M), heading
    for name in man_options():
        assert "--" + name in r.stdout, name


def test_installed_binary_prints_its_version(installed):
    """The staged binary runs, and is the version meson.build declares."""
    build_dir = os.path.dirname(chunkfs_bin_path())
    r = run_chunkfs(os.path.join(installed[0], "chunkfs"), ["--version"])
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["meson", "introspect", "--projectinfo", build_dir],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert r.stdout.splitlines()[0] == "chunkfs " + json.loads(out)["version"]
    assert r.stdout == run_chunkfs(chunkfs_bin_path(), ["--version"]).stdout
