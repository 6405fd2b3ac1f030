"""The role's input checks (plugins/module_utils/migration_run.py, used by the action plugin
mec.migration.migration_input): every bad input of tests/integration/test_faults_lab.py and test_migrate_lab.py is
refused with its message; good input passes; the role's argument spec, its defaults and docs/migration.md's table
agree; the rescue's and recover.yml's decision (end_action)."""
import os
import re
import subprocess

import pytest
import yaml
from ansible_collections.mec.migration.plugins.action.migration_decide import half_unknown, host_state, source_relocated
from ansible_collections.mec.migration.plugins.action.migration_input import fresh_run_id, role_options
from ansible_collections.mec.migration.plugins.module_utils.migration_run import end_action, input_problems

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ROLE = os.path.join(ROOT, "roles", "migration")
with open(os.path.join(ROLE, "vars", "main", "strategies.yml")) as fh:
    DATA = yaml.safe_load(fh)
STRATEGIES, TRANSFERS = DATA["migration_strategies"], DATA["migration_transfers"]
ALIASES = DATA["migration_transfer_aliases"]

GOOD = {"migration_app": "a2", "migration_strategy": "m2", "migration_transfer": "stream",
        "migration_network_label": "n1", "migration_results_dir": "/tmp/results", "migration_run_id": None,
        "migration_start_command": "", "migration_import_changes": [], "migration_app_phase_url": "",
        "migration_state_check_command": "", "migration_state_check_url": "", "migration_state_check_required": True,
        "migration_criu_tcp": "close", "migration_cleanup": False, "migration_recover": False,
        "migration_port": 47777, "migration_stop_timeout": 2, "migration_wait_timeout": 120,
        "migration_relocation_gate": {}}

# the bad inputs of test_faults_lab.py and test_migrate_lab.py (short forms as the role's defaults map them)
BAD = [
    ({"migration_app": None}, "app is required"),
    ({"migration_app": ""}, "app is required"),
    ({"migration_app": "../etc"}, "app is required"),
    ({"migration_app": 5}, "app is required"),
    ({"migration_strategy": "m9"}, "strategy in m1, m2, m3"),
    ({"migration_strategy": "M2"}, "strategy in m1, m2, m3"),
    ({"migration_transfer": "ftp"}, "transfer=ftp is unknown: transfer in"),
    ({"migration_network_label": ""}, "network_label="),
    ({"migration_network_label": "n1/../x"}, "network_label="),
    ({"migration_cleanup": "maybe"}, "migration_cleanup=maybe: true or false"),
    ({"migration_recover": "perhaps"}, "migration_recover=perhaps: true or false"),
    ({"migration_state_check_required": "sure"}, "migration_state_check_required=sure: true or false"),
    ({"migration_port": 0}, "a TCP port from 1024 to 65535"),
    ({"migration_port": 70000}, "a TCP port from 1024 to 65535"),
    ({"migration_port": "abc"}, "a TCP port from 1024 to 65535"),
    ({"migration_stop_timeout": -1}, "migration_stop_timeout=-1: whole seconds"),
    ({"migration_wait_timeout": 0}, "migration_wait_timeout=0: whole seconds, 1 or more"),
    ({"migration_wait_timeout": "soon"}, "migration_wait_timeout=soon"),
    ({"migration_run_id": "../../etc"}, "run_id=../../etc: letters, digits"),
    ({"migration_run_id": ""}, "run_id=: letters, digits"),
    ({"migration_run_id": "r" * 200}, "at most 128"),
    ({"migration_start_command": "/bin/sh -c true"}, "start_command is for strategy m1 only"),
    ({"migration_import_changes": ["USER 1000"]}, "import_changes is for strategy m1 only"),
    ({"migration_strategy": "m1", "migration_import_changes": "USER 1000"}, "import_changes: a list of Dockerfile"),
    ({"migration_strategy": "m1", "migration_import_changes": ["RUN rm -rf /"]},
     "import_changes: a list of Dockerfile"),
    ({"migration_strategy": "m1", "migration_start_command": {"a": 1}}, "start_command: a string or a list"),
    ({"migration_state_check_command": {"a": 1}}, "state_check_command: a string or a list"),
    ({"migration_app_phase_url": "ftp://x/y"}, "app_phase_url=ftp://x/y: an http://"),
    ({"migration_state_check_url": "file:///etc/passwd"}, "state_check_url=file:///etc/passwd"),
    ({"migration_criu_tcp": "keep"}, "migration_criu_tcp=keep: the TCP policy for CRIU is one of close"),
    ({"migration_results_dir": ""}, "results_dir: a directory on the controller"),
    ({"migration_relocation_gate": {"path": "/tmp/x"}}, "migration_relocation_gate: a mapping with path"),
    ({"migration_relocation_gate": {"path": "/tmp/x", "open": "a", "nope": 1}}, "migration_relocation_gate: a mapping"),
    ({"migration_relocation_gate": {"path": "/tmp/x", "open": "a", "watch": [{"path": "/tmp/y"}]}},
     "migration_relocation_gate.watch: a list of mappings"),
]


def test_good_input_has_no_problem():
    assert input_problems(GOOD, STRATEGIES, TRANSFERS, ALIASES) == []
    m1 = dict(GOOD, migration_strategy="m1", migration_start_command=["/app", "--x"],
              migration_import_changes=["USER 1000", "STOPSIGNAL SIGINT"], migration_transfer="nc",
              migration_cleanup="yes", migration_port="47778", migration_run_id="r-1.x_2",
              migration_relocation_gate={"path": "/tmp/x", "open": "in", "watch": [{"path": "/tmp/y", "abandon": "a"}]})
    assert input_problems(m1, STRATEGIES, TRANSFERS, ALIASES) == []


@pytest.mark.parametrize("change,expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_named(change, expected):
    problems = input_problems(dict(GOOD, **change), STRATEGIES, TRANSFERS, ALIASES)
    assert len(problems) == 1, problems
    assert expected in problems[0], problems


def test_every_problem_at_once():
    problems = input_problems(dict(GOOD, migration_strategy="m9", migration_port=1), STRATEGIES, TRANSFERS, ALIASES)
    assert len(problems) == 2 and "strategy=m9" in problems[0] and "migration_port=1" in problems[1]


def test_fresh_run_id_is_a_good_name():
    rid = fresh_run_id()
    assert re.match(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$", rid) and not input_problems(
        dict(GOOD, migration_run_id=rid), STRATEGIES, TRANSFERS, ALIASES)


def _defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as fh:
        return yaml.safe_load(fh)


def test_defaults_mirror_the_argument_spec():
    """Every input of meta/argument_specs.yml has its default in defaults/main.yml and vice versa; a short form's
    template falls back to the spec's default."""
    import jinja2
    options, defaults = role_options(), _defaults()
    hop_hosts = {"migration_source_host", "migration_target_host"}  # no default: their absence means the groups
    assert set(defaults) == set(options) - hop_hosts
    env = jinja2.Environment()
    env.filters["ansible.builtin.realpath"] = lambda p: p
    for name, spec in options.items():
        if name in hop_hosts:
            continue
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            rendered = env.from_string(value).render(none=None)
            value = None if rendered == "None" else yaml.safe_load(rendered) if rendered.strip() else rendered
        assert value == spec.get("default"), (name, value, spec.get("default"))
        for key in ("type", "description"):
            assert key in spec, (name, key)
        if "choices" in spec:
            assert spec["default"] in spec["choices"]
    assert set(options["migration_strategy"]["choices"]) == set(STRATEGIES)
    assert set(options["migration_transfer"]["choices"]) == set(TRANSFERS) | set(ALIASES)


def test_docs_table_lists_every_input():
    """docs/migration.md's table of variables has one row per input of the argument spec, with its short form,
    and nothing else."""
    with open(os.path.join(ROOT, "docs", "migration.md")) as fh:
        text = fh.read()
    table = text[text.index("## Variables"):]
    table = table[:table.index("\n## ")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = {}
    for row in rows:
        first = row.split("|")[1]
        names = re.findall(r"`((?:migration|ansible)_\w+)`", first)
        short = re.findall(r"\(`(\w+)`\)", first)
        for name in names:
            documented[name] = short[0] if short else None
    defaults = _defaults()
    assert set(documented) == set(role_options())
    for name, short in documented.items():
        template = defaults.get(name)
        if short:
            assert isinstance(template, str) and template.startswith("{{ %s | default(" % short), (name, short)
        else:
            assert not (isinstance(template, str) and "{{" in template), name


def test_end_action():
    running, stopped = {"running": True}, {"running": False}
    gone = {"unreachable": True}
    assert end_action(stopped, running) == "finish"
    assert end_action(running, running) == "rollback"
    assert end_action(stopped, stopped) == "rollback"
    assert end_action(stopped, gone, relocated=True, target_half_unknown=True) == "undecided"
    assert end_action(stopped, gone, relocated=True, target_half_unknown=False) == "rollback"
    assert end_action(stopped, gone, relocated=False, target_half_unknown=True) == "rollback"
    assert end_action(stopped, {"failed": True}, relocated=True, target_half_unknown=True) == "undecided"
    assert end_action(stopped, running, target_journaled=False) == "rollback"


def test_decide_reads_registered_results():
    assert host_state({"container": {"running": True}}) == {"running": True, "unreachable": False, "failed": False}
    assert host_state({"unreachable": True, "msg": "x"})["unreachable"]
    assert host_state(None) == {"unreachable": True}
    assert source_relocated({"stopped_at": 1.5, "changed": True})
    assert not source_relocated({"stopped_at": 1.5, "failed": True})
    assert not source_relocated({"skipped": True})
    assert not source_relocated({})
    assert half_unknown({}) and half_unknown(None) and half_unknown({"unreachable": True})
    assert not half_unknown({"failed": True, "msg": "x"}) and not half_unknown({"running_at": 2.0})


INVENTORY = """all:
  hosts:
    h-source: {ansible_connection: local, ansible_host: 127.0.0.11, ansible_python_interpreter: %(py)s}
    h-target: {ansible_connection: local, ansible_host: 127.0.0.12, ansible_python_interpreter: %(py)s}
  children:
    source: {hosts: {h-source: {}}}
    target: {hosts: {h-target: {}}}
"""
PLAY = """- hosts: source:target
  gather_facts: false
  tasks:
    - ansible.builtin.import_role:
        name: mec.migration.migration
        tasks_from: validate
        rolespec_validate: false
    - ansible.builtin.debug:
        msg: "RUN {{ migration_run_id }} SECRET-LEN {{ migration_stream_secret | length }}"
"""


def _play(tmp_path, *extra):
    import sys
    (tmp_path / "hosts.yml").write_text(INVENTORY % {"py": sys.executable})
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    args = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
            str(tmp_path / "play.yml")]
    for e in extra:
        args += ["-e", e]
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_the_role_refuses_bad_input_through_the_action_plugin(tmp_path):
    """The real action plugin in a real play: the short forms reach it, the message is the clear one, the secret
    of a good run is never printed and the run id is set on both hosts."""
    rc, out = _play(tmp_path, "app=a2", "strategy=m9", "migration_port=1")
    assert rc != 0 and "Bad input, nothing was changed" in out
    assert "strategy=m9 is unknown: strategy in m1, m2, m3" in out
    assert "migration_port=1: a TCP port from 1024 to 65535" in out, out[-2000:]
    rc, out = _play(tmp_path, "app=a2", "strategy=m2", "run_id=r-given-1", "transfer=nc")
    assert rc == 0, out[-2000:]
    assert out.count("RUN r-given-1 SECRET-LEN 64") == 2 and "DEPRECATION: transfer=nc" in out, out[-2000:]
