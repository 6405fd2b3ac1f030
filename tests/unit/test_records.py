"""The run record's builder and schema (plugins/module_utils/records.py): every strategy's shape, a rolled-back
run, a preflight failure, an unreachable host, numbers kept as numbers, the schema check and the file."""

import copy
import json
import os
import stat

import pytest

from ansible_collections.mec.migration.plugins.module_utils import records

SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
SOURCE = {"host": "mec-lab-source", "address": "172.30.77.11"}
TARGET = {"host": "mec-lab-target", "address": "172.30.77.12"}
CONTAINER = {"name": "a2", "image_size": 207160091, "size_rw": 0, "mounts": []}


def base(**over):
    """The inputs every run has (the module's required options), then ``over``."""
    inputs = {"status": "ok", "outcome": "migrated", "run_id": "20261127T180632Z-43cd7fc4", "app": "a2",
              "strategy": "m2", "strategy_title": "more stateful, commit/save/load", "transfer": "stream",
              "network": "lab", "source": SOURCE, "target": TARGET, "started_at": 1795802792.77735,
              "source_container": CONTAINER}
    inputs.update(over)
    return inputs


def m2_inputs():
    return base(
        steps={"export": SKIPPED, "commit": {"changed": True, "duration": 0.077823, "freeze_duration": 0.064595,
                                             "freeze_source": "engine events", "size": 207160091},
               "save": {"changed": True, "duration": 2.049947, "size": 213366784}, "checkpoint": SKIPPED,
               "image_copy": {"changed": True, "duration": 0.888202, "transferred_bytes": None},
               "checkpoint_copy": SKIPPED, "import": SKIPPED,
               "load": {"changed": True, "duration": 0.408709}, "create": {"changed": True, "duration": 0.267898}},
        relocation={"source": {"changed": True, "stopped_at": 1795802804.7957697, "durations": {
            "stop": 0.329031, "transfer": 0.003391}, "source_duration": 0.329031, "transfer_duration": 0.003391,
            "sizes": {"volume": 90805, "stream": 102400}},
            "target": {"changed": True, "running_at": 1795802805.4416513, "durations": {
                "wait": 0.335994, "receive": 0.0011, "start": 0.31348}, "target_duration": 0.31458}},
        cleanup={"source": {"changed": True, "removed": {"containers": [], "images": ["mec-migration/a2:x"],
                                                         "volumes": [], "paths": ["/var/tmp/mec-migration/x"]}},
                 "target": {"changed": True, "removed": {"containers": [], "images": [], "volumes": [],
                                                         "paths": ["/var/tmp/mec-migration/x"]}}},
        state_check={"command": SKIPPED, "url": {"status": 200, "msg": "OK"}},
        host_results={"source": [{"changed": False}, SKIPPED], "target": [{"changed": False}]})


def m3_inputs():
    inputs = m2_inputs()
    inputs.update(strategy="m3", strategy_title="live, CRIU", tcp_policy="close")
    inputs["steps"].update(
        checkpoint={"changed": True, "duration": 0.102929, "size": 13738109, "checkpoint_path": "/w/x-pre"},
        checkpoint_copy={"changed": True, "duration": 0.123378, "transferred_bytes": 13743212})
    inputs["relocation"]["source"] = {
        "changed": True, "stopped_at": 1795798448.5679784, "checkpoint_via": "runtime", "criu_dump_duration": 0.078483,
        "durations": {"checkpoint": 0.117919, "transfer": 0.079341}, "source_duration": 0.117919,
        "transfer_duration": 0.079341, "sizes": {"checkpoint_final": 13756911, "checkpoint_delta": 875387,
                                                 "checkpoint_transferred": 881085, "volume": 93005, "stream": 983485}}
    inputs["relocation"]["target"] = {"changed": True, "running_at": 1795798449.3763442, "target_duration": 0.627549,
                                      "durations": {"wait": 0.184194, "receive": 0.016329, "start": 0.61122}}
    return inputs


def m1_inputs():
    inputs = m2_inputs()
    inputs.update(strategy="m1", strategy_title="baseline, export/import", start_command=["python3", "/app/app.py"])
    inputs["steps"].update(
        export={"changed": True, "duration": 1.5, "size": 210000000}, commit=SKIPPED, save=SKIPPED, load=SKIPPED,
        **{"import": {"changed": True, "duration": 2.25, "size": 205000000, "lost_config": ["CMD", "USER"]}})
    inputs["relocation"]["source"] = {
        "changed": True, "stopped_at": 100.0, "source_duration": 0.5, "transfer_duration": 0.75,
        "durations": {"stop": 0.3, "volume_archive": 0.2, "volume_transfer": 0.5, "signal": 0.25},
        "sizes": {"volume": 90805, "volume_tarball": 102400}}
    inputs["relocation"]["target"] = {"changed": True, "running_at": 101.5, "target_duration": 0.4,
                                      "durations": {"wait": 1.0, "volume_restore": 0.1, "start": 0.3}}
    inputs["transfer"] = "ssh"
    return inputs


def test_m2_record_has_the_figures_of_a_real_run():
    rec = records.build_record(m2_inputs(), finished_at=1795802807.839084)
    assert records.problems(rec) == []
    assert rec["status"] == "ok" and rec["outcome"] == "migrated" and rec["phase"] == "done"
    assert rec["sizes"] == {"source_image": 207160091, "image": 207160091, "container_rw": 0, "tarball": 213366784,
                            "checkpoint_full": None, "checkpoint_final": None, "checkpoint_delta": None,
                            "rsync_transferred_bytes": None, "checkpoint_pre_transferred_bytes": None,
                            "volume": 90805, "volume_tarball": None, "stream": 102400, "image_bytes_skipped": None,
                            "image_layers_sent": None, "image_layers_skipped": None, "checkpoint_linked": None,
                            "checkpoint_copied": None}
    assert rec["durations"]["pre_relocation"] == {
        "source": {"export": None, "commit": 0.077823, "save": 2.049947, "checkpoint": None},
        "transfer": {"image": 0.888202, "checkpoint": None},
        "target": {"import": None, "load": 0.408709, "create": 0.267898}}
    assert rec["durations"]["relocation"] == {
        "source": {"stop": 0.329031}, "transfer": {"transfer": 0.003391},
        "target": {"wait": 0.335994, "receive": 0.0011, "start": 0.31348},
        "source_total": 0.329031, "transfer_total": 0.003391, "target_total": 0.31458}
    stages = dict.fromkeys(records.DOWNTIME_STAGES)
    # m2: the stop, the transfer (the target's receive within it) and the plain start; the clocks of two hosts
    # leave a few microseconds unaccounted, either way
    stages.update(source_stop=0.329031, transfer=0.003391, target_receive=0.0011, target_other=0.31348,
                  unaccounted=-2e-05)
    assert rec["downtime"] == {"wall": 0.645882, "operations_sum": 0.647002, "stages": stages,
                               "serving_after_running": None}
    assert rec["commit_freeze"] == 0.064595 and rec["commit_freeze_source"] == "engine events"
    assert rec["criu"] == {"tcp_policy": None, "checkpoint_via": None, "dump_duration": None, "dump_attempts": None,
                           "dump_retried_after": None, "errors": [], "log": None, "restore_duration": None,
                           "restore_hooks": None, "restore_log": None, "restore_attempts": None,
                           "restore_retried_after": None, "engine_dump_stats": None, "engine_restore_stats": None}
    assert rec["state_check"] == {"command_rc": None, "command_stdout": None, "url_status": 200, "passed": True}
    assert rec["rollback"] is None and rec["unreachable"] == []
    assert rec["cleanup"]["source"]["images"] == ["mec-migration/a2:x"]
    assert rec["timestamps"]["finished_at"] == 1795802807.839084
    assert rec["lost_config"] == [] and rec["start_command"] is None
    assert rec["gate"] is None


def test_gate_open_and_abandoned():
    rec = records.build_record(dict(m2_inputs(), gate={"changed": False, "outcome": "open", "waited": 4.25,
                                                       "opened_at": 1795802804.5, "content": "zone02",
                                                       "decided_by": "/run/mec-follow/10.100.0.1.approach.json"}))
    assert rec["gate"] == {"outcome": "open", "waited": 4.25, "opened_at": 1795802804.5,
                           "decided_by": "/run/mec-follow/10.100.0.1.approach.json"}
    rec = records.build_record(base(status="failed", outcome="rolled_back", phase="pre_relocation", gate={
        "failed": True, "outcome": "abandoned", "waited": 2.0, "msg": "The relocation gate was abandoned"}))
    assert rec["gate"] == {"outcome": "abandoned", "waited": 2.0, "opened_at": None, "decided_by": None}
    assert records.problems(rec) == []
    assert records.build_record(dict(m2_inputs(), gate=SKIPPED))["gate"] is None


def test_the_record_has_exactly_the_schema_fields():
    rec = records.build_record(m2_inputs())
    assert set(rec) == set(records.FIELDS)
    for key, spec in records.FIELDS.items():
        if isinstance(spec, dict) and rec[key] is not None:
            assert set(rec[key]) == set(spec), key


def test_m3_record_has_checkpoints_and_criu():
    rec = records.build_record(m3_inputs())
    assert records.problems(rec) == []
    assert rec["criu"] == {"tcp_policy": "close", "checkpoint_via": "runtime", "dump_duration": 0.078483,
                           "dump_attempts": None, "dump_retried_after": None, "errors": [], "log": None,
                           "restore_duration": None, "restore_hooks": None, "restore_log": None,
                           "restore_attempts": None, "restore_retried_after": None,
                           "engine_dump_stats": None, "engine_restore_stats": None}
    assert rec["sizes"]["checkpoint_full"] == 13738109 and rec["sizes"]["checkpoint_final"] == 13756911
    assert rec["sizes"]["checkpoint_delta"] == 875387 and rec["sizes"]["rsync_transferred_bytes"] == 881085
    assert rec["sizes"]["checkpoint_pre_transferred_bytes"] == 13743212
    assert rec["durations"]["pre_relocation"]["source"]["checkpoint"] == 0.102929
    assert rec["durations"]["pre_relocation"]["transfer"]["checkpoint"] == 0.123378
    assert rec["durations"]["relocation"]["source"] == {"checkpoint": 0.117919}
    assert rec["downtime"]["wall"] == 0.808366 and rec["downtime"]["operations_sum"] == 0.824809
    # no split of the checkpoint nor of the start (a run before the stages): the steps as they are
    assert {k: v for k, v in rec["downtime"]["stages"].items() if v is not None} == {
        "transfer": 0.079341, "target_receive": 0.016329, "target_other": 0.61122, "unaccounted": -0.000114}


def test_m1_record_has_export_import_and_the_ssh_transfer_steps():
    rec = records.build_record(m1_inputs())
    assert records.problems(rec) == []
    assert rec["sizes"]["tarball"] == 210000000 and rec["sizes"]["image"] == 205000000
    assert rec["sizes"]["volume_tarball"] == 102400
    assert rec["durations"]["pre_relocation"]["source"] == {"export": 1.5, "commit": None, "save": None,
                                                            "checkpoint": None}
    assert rec["durations"]["pre_relocation"]["target"]["import"] == 2.25
    # the ssh transfer's steps are the relocation's transfer, the rest the source's own
    assert rec["durations"]["relocation"]["source"] == {"stop": 0.3, "volume_archive": 0.2}
    assert rec["durations"]["relocation"]["transfer"] == {"volume_transfer": 0.5, "signal": 0.25}
    assert rec["durations"]["relocation"]["target"] == {"wait": 1.0, "volume_restore": 0.1, "start": 0.3}
    assert rec["downtime"]["wall"] == 1.5 and rec["downtime"]["operations_sum"] == 1.65
    # the source's stop and its volume archive, the transfer, the target's volume restore and start
    assert rec["downtime"]["stages"]["source_stop"] == 0.3 and rec["downtime"]["stages"]["transfer"] == 0.75
    assert rec["downtime"]["stages"]["target_other"] == 0.4 and rec["downtime"]["stages"]["unaccounted"] == -0.15
    assert rec["lost_config"] == ["CMD", "USER"] and rec["start_command"] == ["python3", "/app/app.py"]
    assert rec["commit_freeze"] is None


def test_lost_config_given_replaces_the_imports():
    rec = records.build_record(dict(m1_inputs(), lost_config=["USER"]))
    assert rec["lost_config"] == ["USER"]


def test_rolled_back_run():
    inputs = m3_inputs()
    inputs.update(status="failed", outcome="rolled_back", phase="relocation",
                  error="Fail both hosts if the relocation failed on either: mec-lab-target: restore failed",
                  rollback={"changed": True, "method": "checkpoint", "running": True, "msg": None},
                  state_check={}, cleanup={"source": SKIPPED, "target": {"changed": True, "removed": {
                      "containers": ["a2"], "images": [], "volumes": [], "paths": []}}})
    inputs["relocation"]["target"] = {"failed": True, "msg": "restore failed", "criu_errors": ["Error (criu/x.c:1)"],
                                      "criu_log": "/var/lib/x/restore.log", "durations": {"wait": 0.2}}
    rec = records.build_record(inputs)
    assert records.problems(rec) == []
    assert rec["status"] == "failed" and rec["outcome"] == "rolled_back" and rec["phase"] == "relocation"
    assert rec["error"].endswith("restore failed")
    assert rec["rollback"] == {"method": "checkpoint", "running": True, "msg": None}
    assert rec["criu"]["errors"] == ["Error (criu/x.c:1)"] and rec["criu"]["log"] == "/var/lib/x/restore.log"
    assert rec["timestamps"]["target_running_at"] is None
    # the source's steps were measured, the target never ran: no wall downtime, nothing unaccounted
    stages = rec["downtime"]["stages"]
    assert rec["downtime"]["wall"] is None and rec["downtime"]["operations_sum"] is None
    assert stages["transfer"] == 0.079341 and stages["unaccounted"] is None and stages["target_other"] is None
    assert rec["downtime"]["serving_after_running"] is None
    assert rec["cleanup"] == {"source": None, "target": {"containers": ["a2"], "images": [], "volumes": [],
                                                         "paths": []}}
    assert rec["state_check"]["passed"] is None


def test_preflight_failure_has_no_figures():
    rec = records.build_record(base(status="failed", outcome="unchanged", phase="preflight",
                                    error="Stop if the preflight failed on either host: not enough space"))
    assert records.problems(rec) == []
    assert rec["phase"] == "preflight" and rec["rollback"] is None and rec["unreachable"] == []
    measured = {k: v for k, v in rec["sizes"].items() if v is not None}
    assert measured == {"source_image": 207160091, "container_rw": 0}  # only the source container's
    assert rec["downtime"] == {"wall": None, "operations_sum": None, "stages": dict.fromkeys(records.DOWNTIME_STAGES),
                               "serving_after_running": None}
    assert rec["durations"]["relocation"]["source"] == {} and rec["durations"]["relocation"]["source_total"] is None
    assert rec["cleanup"] == {"source": None, "target": None}


def test_failed_run_without_phase_has_none():
    assert records.build_record(base(status="failed", outcome="rolled_back"))["phase"] is None


def test_unreachable_hosts_are_named():
    inputs = base(status="failed", outcome="unchanged", phase="preflight",
                  host_results={"source": [{"changed": False}],
                                "target": [{"changed": False}, {"unreachable": True, "msg": "ssh: timeout"}]})
    assert records.build_record(inputs)["unreachable"] == ["mec-lab-target"]


def test_failed_state_check():
    inputs = m2_inputs()
    inputs["state_check"] = {"command": {"rc": 1, "stdout": "", "stderr": "no"}, "url": {"status": 200}}
    rec = records.build_record(inputs)
    assert rec["state_check"] == {"command_rc": 1, "command_stdout": "", "url_status": 200, "passed": False}
    inputs["state_check"] = {"command": {}, "url": {"status": -1, "msg": "refused"}}
    assert records.build_record(inputs)["state_check"]["passed"] is False


def test_numbers_stay_numbers():
    """ints stay ints, floats floats; a figure that went through a template as text comes back a number."""
    inputs = m2_inputs()
    inputs["relocation"]["source"]["sizes"]["volume"] = "90805"
    inputs["relocation"]["source"]["stopped_at"] = "1795802804.7957697"
    inputs["started_at"] = "1795802792.77735"
    rec = records.build_record(inputs)
    assert rec["sizes"]["volume"] == 90805 and type(rec["sizes"]["volume"]) is int
    assert type(rec["sizes"]["tarball"]) is int
    assert type(rec["timestamps"]["source_stopped_at"]) is float
    assert rec["timestamps"]["started_at"] == 1795802792.77735
    assert type(rec["downtime"]["wall"]) is float
    text = json.dumps(rec)
    assert '"volume": 90805' in text and '"wall": 0.645882' in text


def test_a_figure_that_is_no_number_is_null():
    for bad in ("None", "", "n/a", True, [1], {"a": 1}):
        assert records.number(bad) is None, bad
    assert records.number(0) == 0 and records.number("0") == 0 and records.number("1e3") == 1000.0


@pytest.mark.parametrize("path, value, why", [
    (("schema",), "mec.migration/record/v0", "schema"),
    (("status",), "maybe", "status"),
    (("app",), "", "app: required"),
    (("downtime", "wall"), "0.64", "downtime.wall: '0.64' is not a number"),
    (("sizes", "volume"), True, "sizes.volume: True is not a number"),
    (("durations", "relocation", "source"), {"stop": "0.3"}, "durations.relocation.source"),
    (("state_check", "passed"), "yes", "state_check.passed"),
    (("unreachable",), None, None),
    (("sizes",), [], "sizes: [] is not an object"),
])
def test_problems_name_the_bad_field(path, value, why):
    rec = records.build_record(m2_inputs())
    assert records.problems(rec) == []
    node = rec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    found = records.problems(rec)
    if why is None:
        assert found == []  # a null is a figure the run did not measure
    else:
        assert any(why in p for p in found), found


def test_problems_of_a_partial_record():
    partial = {"schema": records.SCHEMA, "status": "failed", "run_id": "r", "app": "a2", "strategy": "m1",
               "network": "n1", "sizes": {}, "durations": {}, "downtime": {"wall": None, "operations_sum": None}}
    assert records.problems(partial, complete=False) == []
    assert "criu: missing" in records.problems(partial)
    assert records.problems("text") == ["the record is not an object"]


def test_write_record_atomically_with_its_name(tmp_path):
    rec = records.build_record(m2_inputs())
    path = records.write_record(str(tmp_path / "new" / "results"), rec)
    assert os.path.basename(path) == "20261127T180632Z-43cd7fc4-a2-m2-lab.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert json.loads(open(path, encoding="utf-8").read()) == rec
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]  # no temporary file left
    again = copy.deepcopy(rec)
    again["status"] = "failed"
    records.write_record(os.path.dirname(path), again)
    assert json.loads(open(path, encoding="utf-8").read())["status"] == "failed"


def test_write_record_into_a_file_fails(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("x")
    with pytest.raises(OSError):
        records.write_record(str(blocker), records.build_record(m2_inputs()))


def test_the_record_says_how_much_of_the_image_moved_and_what_was_skipped():
    inputs = m2_inputs()
    inputs["steps"]["save"] = dict(inputs["steps"]["save"], size=20480, bytes_written=20480,
                                   bytes_skipped=207139611, layers_sent=1, layers_skipped=7)
    rec = records.build_record(inputs, finished_at=1795802807.839084)
    assert records.problems(rec) == []
    assert (rec["sizes"]["tarball"], rec["sizes"]["image_bytes_skipped"]) == (20480, 207139611)
    assert (rec["sizes"]["image_layers_sent"], rec["sizes"]["image_layers_skipped"]) == (1, 7)


def test_m3_downtime_by_stage():
    """A real m3 run's relocation results (lab, A2): the downtime split into its stages, which with the unaccounted
    rest add up to the wall downtime; CRIU's restore from its log in the record's criu."""
    inputs = m3_inputs()
    inputs["source"] = dict(SOURCE, engine="docker")
    inputs["relocation"]["source"].update(
        stopped_at=1796604062.253912, durations={"checkpoint": 0.146207, "transfer": 0.118541},
        source_duration=0.146207, transfer_duration=0.118541,
        checkpoint_stages={"pause": 0.011874, "criu_dump": 0.101522, "runtime": 0.032811})
    inputs["relocation"]["target"] = {
        "changed": True, "running_at": 1796604062.921107, "target_duration": 0.428114,
        "durations": {"wait": 0.262044, "receive": 0.036722, "place": 0.002107, "start": 0.389285},
        "checkpoint_placed": {"linked_bytes": 14077952, "copied_bytes": 683201, "files": 41},
        "restore_stages": {"engine_before_criu": 0.131877, "criu_restore": 0.071925, "criu_hooks": 0.158871,
                           "criu_hooks_by_name": {"setup-namespaces": 0.158871}, "engine_after_criu": 0.019536,
                           "running_check": 0.006012, "criu_log": "/var/lib/docker/containerd/x/restore.log"},
        "serving": {"seconds": 0.001211, "address": "172.18.0.3:3000"}}
    rec = records.build_record(inputs)
    assert records.problems(rec) == []
    stages = rec["downtime"]["stages"]
    assert stages == {"source_stop": None, "source_pause": 0.011874, "source_criu_dump": 0.101522,
                      "source_runtime": 0.032811, "transfer": 0.118541, "target_receive": 0.036722,
                      "target_place": 0.002107, "engine_before_criu": 0.131877, "criu_restore": 0.071925,
                      "criu_hooks": 0.158871, "engine_after_criu": 0.019536, "running_check": 0.006012,
                      "target_other": 0.001064, "unaccounted": 0.011055}
    wall = rec["downtime"]["wall"]
    assert wall == 0.667195
    assert abs(sum(v for k, v in stages.items() if k != "target_receive" and v is not None) - wall) < 1e-5
    assert rec["downtime"]["serving_after_running"] == 0.001211
    assert rec["criu"]["restore_duration"] == 0.071925
    assert rec["criu"]["restore_hooks"] == {"setup-namespaces": 0.158871}
    assert rec["criu"]["restore_log"] == "/var/lib/docker/containerd/x/restore.log"
    assert rec["sizes"]["checkpoint_linked"] == 14077952 and rec["sizes"]["checkpoint_copied"] == 683201
    assert rec["source"]["engine"] == "docker" and rec["target"]["engine"] is None
    # a stage that is not a number is named by the check
    rec["downtime"]["stages"]["criu_hooks"] = "0.15"
    assert records.problems(rec) == ["downtime.stages.criu_hooks: '0.15' is not a number"]
