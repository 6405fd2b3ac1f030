"""The README's `scripts/test.sh -m "not lab"` brings no lab up: test.sh asks pytest (collect only, through
scripts/pytest_selection.py) what the selected tests need, and brings up only that."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_SH = (ROOT / "scripts" / "test.sh").read_text()


def selection_needs(tmp_path, *args):
    out = tmp_path / "needs.txt"
    env = dict(os.environ, MEC_ZONES_LAB="1", MEC_SELECTION_OUT=str(out),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "scripts"), os.environ.get("PYTHONPATH")])))
    p = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "pytest_selection", *args],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out.read_text().split()


@pytest.mark.parametrize("args, expected", [
    # the zones lab's tests count as lab: "not lab" leaves them out too
    (["-m", "not lab", "tests/eda", "tests/integration/test_migrate_lab.py",
      "tests/integration/test_migrate_ops_engine.py"], ["docker"]),
    (["tests/eda", "tests/integration/test_migrate_lab.py"], ["local_lab", "zones_lab"]),
    (["tests/unit/test_docs_results_file.py"], []),
])
def test_selection_says_which_labs_it_needs(tmp_path, args, expected):
    assert selection_needs(tmp_path, *args) == expected


def test_labs_come_up_only_when_needed():
    """Each lab-making command of test.sh sits under the matching `need` condition."""
    blocks = re.findall(r"^if need (\w+)(?: \|\| need \w+)*; then\n(.*?)^(?:elif|fi)", TEST_SH, re.S | re.M)
    guarded = {name: body for name, body in blocks}
    assert "playbooks/lab.yml\n" in guarded["local_lab"] and "playbooks/apps.yml" in guarded["local_lab"]
    assert "lab_zones.yml" in guarded["zones_lab"] and "MEC_ZONES_LAB=1" in guarded["zones_lab"]
    outside = re.sub(r"^if need .*?^fi\n", "", TEST_SH, flags=re.S | re.M)
    assert "playbooks/lab.yml" not in outside and "apps.yml" not in outside and "MEC_ZONES_LAB=1\n" not in outside
    # the run uses the same plugin as the collection (zones_lab counts as lab there too)
    assert re.search(r"python -m pytest -p pytest_selection .*\"\$@\"", TEST_SH)
