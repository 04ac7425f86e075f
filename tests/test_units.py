"""Runs the C unit tests (tests/unit_tests.c, GLib's test framework) built next to the daemon."""
import os
import subprocess


def test_unit_tests(chunkfs_bin):
    binary = os.path.join(os.path.dirname(chunkfs_bin), "tests", "unit_tests")
    assert os.access(binary, os.X_OK), "unit_tests not built next to %s" % chunkfs_bin
    proc = subprocess.run([binary, "--tap"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "not ok "))]
    assert results and all(line.startswith("ok ") for line in results), proc.stdout
