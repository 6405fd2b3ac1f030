"""The collection passes ansible-lint's production profile (config: .ansible-lint, .yamllint) and ruff (ruff.toml)."""

import os
import subprocess

from labutil import ROOT, venv_bin


def test_ansible_lint_production_profile(tmp_path):
    # a private ANSIBLE_HOME: ansible-lint puts <ANSIBLE_HOME>/collections first on the collections path, so a copy
    # of mec.migration installed in ~/.ansible earlier would be linted against instead of this checkout
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    proc = subprocess.run([venv_bin("ansible-lint"), "--nocolor", "--offline"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_ruff_python_lint():
    proc = subprocess.run([venv_bin("ruff"), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
