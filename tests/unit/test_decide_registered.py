"""mec.migration.migration_decide's `registered` (plugins/action/migration_decide.py): both hosts' results read as
they were registered (HostVars.raw_get), not passed through the templating engine; a real play on two local hosts
checks what the role relies on (preflight.yml, recover_first.yml)."""
import os
import subprocess
import sys

from ansible_collections.mec.migration.plugins.action.migration_decide import registered_results

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class FakeHostVars:
    def __init__(self, hosts):
        self.hosts = hosts

    def raw_get(self, host):
        return self.hosts[host]


def test_registered_results_reads_each_hosts_variable_and_none_where_missing():
    hv = FakeHostVars({"s": {"info": {"container": {"running": True}}}, "t": {}})
    assert registered_results(hv, ("s", "t"), "info") == [{"container": {"running": True}}, None]
    assert registered_results(hv, ("s", "gone"), "info") == [{"container": {"running": True}}, None]


INVENTORY = """all:
  hosts:
    h-source: {ansible_connection: local, ansible_python_interpreter: %(py)s}
    h-target: {ansible_connection: local, ansible_python_interpreter: %(py)s}
"""
# a stand-in for container_info: returns what it is given, as a module's result
FAKE_INFO = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
m = AnsibleModule(argument_spec=dict(result=dict(type="dict", required=True)))
m.exit_json(changed=False, **m.params["result"])
"""
PLAY = """- hosts: all
  gather_facts: false
  tasks:
    - name: Each host registers a container_info-like result
      fake_info:
        result: "{{ results[inventory_hostname] }}"
      register: info
    - name: Decide from what both hosts registered
      mec.migration.migration_decide:
        step: read
        source_host: h-source
        target_host: h-target
        registered: info
        app: a2
        state_root: /nonexistent
      run_once: true
    - name: Show the facts it set on both hosts
      ansible.builtin.debug:
        msg: "DECIDED {{ migration_unfinished | length }} {{ migration_already_migrated }}"
"""


def _play(tmp_path, results):
    import json
    (tmp_path / "library").mkdir(exist_ok=True)
    (tmp_path / "library" / "fake_info.py").write_text(FAKE_INFO)
    (tmp_path / "hosts.yml").write_text(INVENTORY % {"py": sys.executable})
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_LIBRARY=str(tmp_path / "library"))
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                        str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"), "-e",
                        json.dumps({"results": results})],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_decide_reads_both_hosts_registered_results_by_name(tmp_path):
    """A few seconds: two plays on two local hosts."""
    rc, out = _play(tmp_path, {"h-source": {"container": {"running": True}, "unfinished": []},
                               "h-target": {"container": None, "unfinished": []}})
    assert rc == 0, out[-3000:]
    assert out.count("DECIDED 0 False") == 2, out[-3000:]

    # the target holds an unfinished run: refused, naming it
    rc, out = _play(tmp_path, {"h-source": {"container": {"running": True}, "unfinished": []},
                               "h-target": {"container": None,
                                            "unfinished": [{"run_id": "r-left", "phase": "pre_relocation"}]}})
    assert rc != 0 and "r-left" in out and "is being migrated by run" in out, out[-3000:]
