"""Pure tests of the runner's failure path and helpers, and of the congestion role's tc helper."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mec_experiment import lab
from mec_experiment import run as runner
from mec_experiment.__main__ import main as experiment_main

ROOT = Path(__file__).resolve().parents[2]


def load_tc_helper():
    spec = importlib.util.spec_from_file_location("congestion_tc", ROOT / "roles/congestion/files/congestion_tc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failed_run_is_recorded_with_its_cause_and_resumed_runs_are_skipped(tmp_path, capsys):
    args = ["run-one", "--inventory", str(tmp_path / "missing.yml"), "--results", str(tmp_path / "res"),
            "--app", "a2", "--strategy", "m2", "--network", "n1", "--rep", "3"]
    assert experiment_main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "failed" and out["line"].startswith("a2 m2 n1 #3: failed in ")
    rec = json.loads((tmp_path / "res" / "runs" / "a2-m2-n1-r3.json").read_text())
    assert rec["status"] == "failed" and rec["error"].startswith("start: ") and "missing.yml" in rec["error"]
    assert rec["experiment"]["stage_failed"] == "start" and rec["downtime"]["user"] is None
    assert (tmp_path / "res" / "results.csv").read_text().count("\n") == 2

    assert experiment_main(args) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again == {"line": "a2 m2 n1 #3: already recorded (failed, attempt 1), skipped", "status": "skipped"}


def test_ansible_cause_names_the_failing_task_and_message():
    output = "\n".join([
        "TASK [Preflight on both hosts (changes nothing)] ****",
        'fatal: [mec-lab-source]: FAILED! => {"changed": false, "msg": "criu check failed on mec-lab-source"}',
        "PLAY RECAP ****"])
    assert runner.ansible_cause(output) == (
        "Preflight on both hosts (changes nothing): criu check failed on mec-lab-source")
    assert runner.ansible_cause("") == "no output"


def test_migrate_extra_vars_per_strategy():
    m1 = runner.migrate_extra("a3", "m1", "n2", "rid", Path("/r"), "stream")
    assert m1[0] == {"app": "a3", "strategy": "m1", "network_label": "n2", "run_id": "rid", "results_dir": "/r",
                     "transfer": "stream", "migration_cleanup": True}
    assert m1[1]["start_command"][:3] == ["memcached", "-u", "memcache"]
    m2 = runner.migrate_extra("a2", "m2", "n1", "rid", Path("/r"), "ssh")
    assert m2[1] == {"app_phase_url": "http://127.0.0.1:3000/changePhase?inMigration=1"} and len(m2) == 2
    assert "migration_port" not in m2[0]
    assert runner.migrate_extra("a1", "m3", "n1", "rid", Path("/r"), "stream", 47787)[0]["migration_port"] == 47787


def test_lab_hosts_reads_the_lab_inventory(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text("""all:
  children:
    mec_hosts:
      children:
        source: {hosts: {s1: {ansible_host: 10.0.0.1}}}
        target: {hosts: {t1: {ansible_host: 10.0.0.2}}}
      vars:
        ansible_user: root
        ansible_ssh_private_key_file: "{{ inventory_dir }}/id_ed25519"
        ansible_ssh_common_args: "-o UserKnownHostsFile={{ inventory_dir }}/known_hosts -o StrictHostKeyChecking=yes"
""")
    hosts = runner.lab_hosts(inv)
    assert hosts["source"] == {"name": "s1", "address": "10.0.0.1", "user": "root", "key": "%s/id_ed25519" % tmp_path,
                               "known_hosts": "%s/known_hosts" % tmp_path, "engine": "docker"}
    assert hosts["target"]["address"] == "10.0.0.2"
    # the run's own SSH checks host keys against the inventory's known_hosts, as Ansible does
    argv = lab.ssh_argv(hosts["source"], "true")
    assert argv[argv.index("UserKnownHostsFile=%s/known_hosts" % tmp_path) + 2] == "StrictHostKeyChecking=yes"
    assert "StrictHostKeyChecking=no" not in argv and argv[-2:] == ["root@10.0.0.1", "true"]


def test_lab_hosts_reads_each_hosts_engine_and_refuses_an_unknown_one(tmp_path):
    inv = tmp_path / "hosts.yml"
    body = """all:
  children:
    mec_hosts:
      children:
        source: {hosts: {s1: {ansible_host: 10.0.0.1, migration_engine: podman}}}
        target: {hosts: {t1: {ansible_host: 10.0.0.2, migration_engine: %s}}}
"""
    inv.write_text(body % "docker")
    hosts = runner.lab_hosts(inv)
    assert (hosts["source"]["engine"], hosts["target"]["engine"]) == ("podman", "docker")
    assert (lab.cli(hosts["source"]), lab.cli({"address": "10.0.0.9"})) == ("podman", "docker")
    inv.write_text(body % "rkt")
    with pytest.raises(ValueError, match="t1 in .* has migration_engine 'rkt': docker or podman"):
        runner.lab_hosts(inv)


def test_tc_helper_restores_a_saved_root_qdisc():
    tc = load_tc_helper()
    assert tc.restore_argv("eth0", "qdisc pfifo 7: root refcnt 3 limit 500p") == [
        "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "7:", "pfifo", "limit", "500"]
    assert tc.restore_argv("eth0", "qdisc noqueue 0: root refcnt 2") is None
    assert tc.restore_argv("eth0", "qdisc pfifo_fast 0: root refcnt 2 bands 3 priomap 1 2") is None
    assert tc.restore_argv("eth0", "") is None


def test_retry_failed_is_a_new_attempt_beside_the_failed_one(tmp_path, capsys):
    args = ["run-one", "--inventory", str(tmp_path / "missing.yml"), "--results", str(tmp_path / "res"),
            "--app", "a1", "--strategy", "m1", "--network", "n2", "--rep", "1"]
    runs = tmp_path / "res" / "runs"
    experiment_main(args)
    first = (runs / "a1-m1-n2-r1.json").read_text()
    experiment_main(args + ["--retry-failed", "yes"])
    experiment_main(args + ["--retry-failed", "yes"])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["status"] for line in lines] == ["failed", "failed", "failed"]
    assert lines[1]["line"].startswith("a1 m1 n2 #1 attempt 2: failed in ")
    # the first attempt is never overwritten; each retry is its own file and says which attempt it is
    assert (runs / "a1-m1-n2-r1.json").read_text() == first
    assert sorted(p.name for p in runs.iterdir()) == ["a1-m1-n2-r1.attempt2.json", "a1-m1-n2-r1.attempt3.json",
                                                      "a1-m1-n2-r1.json"]
    assert [json.loads((runs / n).read_text())["experiment"]["attempt"]
            for n in ("a1-m1-n2-r1.json", "a1-m1-n2-r1.attempt2.json", "a1-m1-n2-r1.attempt3.json")] == [1, 2, 3]
    assert (tmp_path / "res" / "results.csv").read_text().count("\n") == 4  # header + 3 attempts


def test_a_run_ok_at_some_attempt_is_not_run_again(tmp_path, capsys):
    runs = tmp_path / "res" / "runs"
    runs.mkdir(parents=True)
    (runs / "a2-m2-n1-r1.json").write_text(json.dumps({"status": "failed"}))
    (runs / "a2-m2-n1-r1.attempt2.json").write_text(json.dumps({"status": "ok"}))
    (runs / "a2-m2-n1-r10.json").write_text(json.dumps({"status": "failed"}))  # another rep, not an attempt
    experiment_main(["run-one", "--inventory", str(tmp_path / "missing.yml"), "--results", str(tmp_path / "res"),
                     "--app", "a2", "--strategy", "m2", "--network", "n1", "--rep", "1", "--retry-failed", "yes"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {"line": "a2 m2 n1 #1: already recorded (ok, attempt 2), skipped", "status": "skipped"}


A1_SOURCE = ["2026-12-06T21:00:00.000 a1 INFO Started app: polling http://gw/rni every 200 ms",
             "2026-12-06T21:00:00.200 a1 INFO erabInfo [{\"erabId\":1}]",
             "2026-12-06T21:00:00.400 a1 INFO erabInfo [{\"erabId\":1}]"]


def test_a1_goes_on_in_its_own_log_on_the_target():
    target = ["2026-12-06T21:00:01.000 a1 INFO Started app: polling http://gw/rni every 200 ms",
              "2026-12-06T21:00:01.200 a1 INFO erabInfo [{\"erabId\":1}]"]
    res = runner.check_a1("m2", A1_SOURCE, target)
    assert res["passed"] is True and res["gap"] == 0.8, res
    # m3 restores the process: a new start is a restart, not a restore
    assert runner.check_a1("m3", A1_SOURCE, target)["passed"] is False
    assert runner.check_a1("m3", A1_SOURCE, target[1:])["passed"] is True


def test_a1_fails_without_answers_or_with_overlap():
    assert runner.check_a1("m2", A1_SOURCE, ["2026-12-06T21:00:01.200 a1 WARNING request failed: timed out"]
                           )["passed"] is False
    overlap = runner.check_a1("m2", A1_SOURCE, ["2026-12-06T21:00:00.300 a1 INFO erabInfo [{}]"])
    assert overlap["passed"] is False and "before the source's last line" in overlap["detail"]
    assert runner.check_a1("m2", [], ["2026-12-06T21:00:01.200 a1 INFO erabInfo [{}]"])["passed"] is False


def test_a2_is_checked_against_its_value_at_the_stop_and_its_volume_mark():
    probe = {"source": {"last_value": {"requestsOk": 500}}, "target": {"first_value": {"requestsOk": 501}}}
    assert runner.check_a2("m2", 1, {"counter": 1}, True, probe)["passed"] is True
    # the source had counted one zone: a volume made again empty (counter 1 after one zone, no mark) fails
    assert runner.check_a2("m2", 1, {"counter": 1}, False, probe)["passed"] is False
    assert runner.check_a2("m2", 3, {"counter": 1}, True, probe)["passed"] is False
    assert runner.check_a2("m2", None, {"counter": 3}, True, probe)["passed"] is False
    assert runner.check_a2("m3", 1, {"counter": 1}, True, probe)["passed"] is True
    # m3: a restarted process counts its requests from 0
    restarted = {"source": {"last_value": {"requestsOk": 500}}, "target": {"first_value": {"requestsOk": 2}}}
    res = runner.check_a2("m3", 1, {"counter": 1}, True, restarted)
    assert res["passed"] is False and "requestsOk did not go on" in res["detail"]
    assert runner.check_a2("m2", 1, {"counter": 1}, True, restarted)["passed"] is True  # m1/m2 restart by design
