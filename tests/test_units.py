"""Runs the C unit tests (tests/unit_*.c, GLib's test framework)
built next to the daemon."""
import os
import subprocess

import pytest


@pytest.mark.parametrize("name", ["unit_tests", "unit_spill", "unit_blockmem", "unit_redirect",
                                  "unit_errno"])
def test_unit_tests(chunkfs_bin, name):
    binary = os.path.join(os.path.dirname(chunkfs_bin), "tests", name)
    assert os.access(binary, os.X_OK), "%s not built next to %s" % (name, chunkfs_bin)
    proc = subprocess.run([binary, "--tap"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "not ok "))]
    assert results and all(line.startswith("ok ") for line in results), proc.stdout
