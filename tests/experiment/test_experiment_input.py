"""playbooks/experiment.yml stops before the first run on an unknown app, strategy or profile and lists the
valid names; its results go below the directory ansible-playbook runs in. Only the controller's input check
runs (the inventory's hosts are never contacted)."""

from __future__ import annotations

import os
import subprocess

import pytest
from experiment_helpers import ROOT
from labutil import ansible_playbook, venv_bin

INVENTORY = """all:
  children:
    mec_hosts:
      children:
        source: {hosts: {nowhere-source: {ansible_host: 127.0.0.254}}}
        target: {hosts: {nowhere-target: {ansible_host: 127.0.0.253}}}
"""
# the same with the controller named, so that -l localhost runs the controller's play alone
WITH_LOCALHOST = INVENTORY + """  hosts:
    localhost: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
"""


@pytest.mark.parametrize("extra, unknown", [
    ('{"experiment_apps": ["a9"]}', "a9"),
    ('{"experiment_strategies": ["m1", "m7"]}', "m7"),
    ('{"experiment_profiles": ["n3"]}', "n3"),
])
def test_unknown_names_stop_before_the_first_run(tmp_path, extra, unknown):
    inv = _inventory(tmp_path, INVENTORY)
    results = tmp_path / "results"
    proc = ansible_playbook("-i", str(inv), "playbooks/experiment.yml", "-e", extra,
                            "-e", "experiment_results_dir=%s" % results, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Unknown: ['%s']" % unknown in out
    assert "Valid apps: a1, a2, a3; strategies: m1, m2, m3; profiles: n1, n2" in out
    assert "nowhere-source" not in out.split("PLAY RECAP")[0].split("Stop before the first run")[-1]
    assert not results.exists()


def _inventory(tmp_path, text):
    inv = tmp_path / "hosts.yml"
    inv.write_text(text)
    return inv


def _experiment_from(cwd, inv, *extra):
    """playbooks/experiment.yml's first play only (the controller's; -l localhost), run from ``cwd`` as a user
    of the installed collection would run it from their own folder."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([venv_bin("ansible-playbook"), "-i", str(inv), str(ROOT / "playbooks" / "experiment.yml"),
                           "-l", "localhost", "-e", '{"experiment_profiles": ["n1"]}', *extra],
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("extra, folder", [
    ((), "results/experiment"),
    (("-e", "experiment_results_dir=mine/exp"), "mine/exp"),
])
def test_results_go_below_the_directory_ansible_playbook_runs_in(tmp_path, extra, folder):
    inv = _inventory(tmp_path, WITH_LOCALHOST)
    cwd = tmp_path / "work"
    cwd.mkdir()
    proc = _experiment_from(cwd, inv, *extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    where = (cwd / folder).resolve()
    assert "into %s" % where in out, out[-3000:]
    assert (where / "runs").is_dir()


def test_an_empty_results_folder_is_refused(tmp_path):
    inv = _inventory(tmp_path, WITH_LOCALHOST)
    proc = _experiment_from(tmp_path, inv, "-e", "experiment_results_dir=")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "results folder ''" in out and "experiment_results_dir a folder's path" in out, out[-3000:]
    assert os.listdir(str(tmp_path)) == ["hosts.yml"]
