"""A journal is data (issue #18): recover.yml reads the runs' journals on the MEC hosts
(mec.migration.migration_journal) and acts on what they say; a journal whose fields hold
``{{ lookup('ansible.builtin.pipe', 'touch MARKER') }}`` must never have them rendered on the controller.

In ansible-core 2.19 a module's result is not trusted as a template, so this holds on the landed code as well (it
did not fail there: no "fails first" proof is possible for this path); it guards the path against a change that
would make journal values trusted (read through include_vars, a vars file, -e, or a template built from them).
No lab: the inventory's source and target are this machine (connection local) and the state root is a private
folder of the test, with one unfinished run of an app that does not exist. Whether recover.yml then succeeds or
stops on the odd journal is not this test's business (tests/integration covers recovery); that nothing is
rendered, and that the value went through as text, is. ~10 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))

import journal as jr  # noqa: E402


def test_template_in_a_journal_is_never_rendered_by_recover(tmp_path):
    marker = tmp_path / "MARKER"
    template = "{{ lookup('ansible.builtin.pipe', 'touch %s') }}" % marker
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    jr.begin(str(state), "r1", "h1jtest", {"strategy": template, "controller": template, "note": template},
             [], "z1", changes={})
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n"
                         "    source:\n      hosts:\n        z1: {ansible_connection: local, "
                         f"ansible_python_interpreter: {sys.executable}}}\n"
                         "    target:\n      hosts:\n        z2: {ansible_connection: local, "
                         f"ansible_python_interpreter: {sys.executable}}}\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory),
                        str(ROOT / "playbooks" / "recover.yml"), "-e",
                        json.dumps({"app": "h1jtest", "migration_state_root": str(state),
                                    "migration_work_root": str(state / "work"),
                                    "results_dir": str(tmp_path / "results")})],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert not marker.exists(), "a journal's template was rendered:\n" + out[-3000:]
    assert "Run r1 of h1jtest" in out, out[-3000:]  # recover.yml read the run's journal and acted on it
    assert "touch %s" % marker in out, out[-3000:]  # the value went through, as text
