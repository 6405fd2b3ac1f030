"""migrate.yml with migration_relocation_gate (ahead-of-time staging) on the shared lab: the pre-relocation runs
while the app serves, the relocation waits for the gate file; opened (by the main file, or by a watched file while
the main one stays closed), the app moves with its state; abandoned, the run rolls back and the app keeps serving
on the source; a bad gate (watch entries included) is refused before any change."""
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from labtools import Host, StateWatch, counter_starts, lab_hosts, migrate, read_int_now

pytestmark = pytest.mark.lab

# the app's volume counter; at each start it says where it started from (labtools.counter_starts), a CRIU
# restore says nothing
COUNTER = ("i=$(cat /data/n 2>/dev/null || echo 0); echo \"counter started: volume count $i\"; "
           "while true; do i=$((i+1)); echo $i > /data/n.tmp; mv /data/n.tmp /data/n; sleep 0.2; done")
GATE = {"open": '"zone": "zone02"', "abandon": '"zone": "zone0[34]"', "timeout": 180}


@pytest.fixture
def app():
    addr = lab_hosts()
    src, dst = Host(addr["source"]), Host(addr["target"])
    name = "gt" + uuid.uuid4().hex[:8]
    src.out(["docker", "run", "-d", "--name", name, "--label", "mec.migration.test=1", "-v", name + "-data:/data",
             "--user", "0", "mec-apps/a2:latest", "sh", "-c", COUNTER])
    src.wait_int(name, "/data/n", minimum=2)
    yield name, src, dst
    for h in (src, dst):
        h.run("docker rm -f %s; docker volume rm -f %s-data; docker images -q 'mec-migration/%s' | xargs -r docker "
              "rmi -f" % (name, name, name), check=False)


def _write(path, zone):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"ue": "10.100.0.1", "zone": zone, "seq": 1}, fh)
    os.replace(tmp, str(path))


def _staged(dst, name, thread, box, timeout=300):
    """Wait until the target holds the app's container, created and not started: the pre-relocation is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise AssertionError("the run ended before it staged the app: %s" % box["result"][1][-3000:])
        info = dst.inspect(name)
        if info and info["State"]["Status"] == "created":
            return
        time.sleep(0.5)
    raise AssertionError("the pre-relocation did not stage %s on the target within %s s" % (name, timeout))


def _migrate_in_background(tmp_path, **extra):
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=migrate(tmp_path / "results", **extra)), daemon=True)
    thread.start()
    return thread, box


def _write_approach(path, to_zone, relocate_seq=None):
    """The predictor's <ue>.approach.json: its "seq" means something else than the zone state file's."""
    data = {"ue": "10.100.0.1", "from_zone": "zone01", "to_zone": to_zone, "seq": 1}
    if relocate_seq is not None:
        data.update(relocate_seq=relocate_seq, relocate_to=to_zone)
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, str(path))


@pytest.mark.parametrize("strategy, via", [("m2", "path"), ("m3", "path"), ("m2", "watch")])
def test_the_relocation_waits_for_the_gate_then_moves_the_app(app, tmp_path, strategy, via):
    """via=watch: the main file stays in zone01 and the gate opens through a watched file (the predictor's)."""
    name, src, dst = app
    gate = tmp_path / "ue.json"
    approach = tmp_path / "ue.approach.json"
    _write(gate, "zone01")
    spec = dict(GATE, path=str(gate))
    if via == "watch":
        _write_approach(approach, "zone02")
        spec["watch"] = [{"path": str(approach), "open": '"relocate_to": "zone02"',
                          "abandon": '"to_zone": "(?!zone02")'}]
    thread, box = _migrate_in_background(tmp_path, app=name, strategy=strategy, network_label="lab",
                                         migration_cleanup=True, migration_relocation_gate=spec)
    _staged(dst, name, thread, box)
    first = src.wait_int(name, "/data/n")
    time.sleep(3)
    assert thread.is_alive(), "the run did not wait for the gate: %s" % (box.get("result", ("", ""))[1][-2000:],)
    assert src.running(name) and src.wait_int(name, "/data/n", minimum=first + 5) > first, \
        "the app serves (counts) on the source while the relocation waits"
    # the source's count, read on the host every 50 ms: its last value is the count at the stop (the cleanup
    # removes the volume afterwards)
    watch = StateWatch(src, name, name + "-data", volume_file="n")
    opened = time.time()
    if via == "watch":
        _write_approach(approach, "zone02", relocate_seq=1)
    else:
        _write(gate, "zone02")
    thread.join(600)
    watch.stop()
    now = read_int_now(dst, name, "/data/n")  # once, no waiting
    rc, out, record = box["result"]
    assert rc == 0, out[-3000:]
    assert record["status"] == "ok" and record["outcome"] == "migrated"
    assert record["gate"]["outcome"] == "open" and record["gate"]["waited"] > 0
    # the relocation began after the gate opened, and soon (no Ansible start-up or image transfer in between)
    assert opened - 1 <= record["gate"]["opened_at"] <= record["timestamps"]["source_stopped_at"]
    assert record["timestamps"]["target_running_at"] - opened < 30
    assert dst.running(name) and src.inspect(name) is None
    counts = watch.volume(missing_is_zero=False)
    assert StateWatch.drop(counts) is None and counts[-1] > first, counts[-10:]
    final = counts[-1]
    # m2: the target's app started from the source's last count; m3: restored (no start), counting on from it
    assert counter_starts(dst, name) == ([] if strategy == "m3" else [final]), (counter_starts(dst, name), final)
    assert now is not None and now >= final, "the target counts %s, the source stopped at %d" % (now, final)


def test_an_abandoned_gate_rolls_back_and_the_app_keeps_serving(app, tmp_path):
    name, src, dst = app
    gate = tmp_path / "ue.json"
    _write(gate, "zone01")
    thread, box = _migrate_in_background(tmp_path, app=name, strategy="m2", network_label="lab",
                                         migration_cleanup=True, migration_relocation_gate=dict(GATE, path=str(gate)))
    _staged(dst, name, thread, box)
    before = src.wait_int(name, "/data/n")
    _write(gate, "zone03")
    thread.join(600)
    rc, out, record = box["result"]
    assert rc != 0 and "abandoned" in out, out[-3000:]
    assert record["status"] == "failed" and record["outcome"] == "rolled_back", record
    assert "relocation gate was abandoned" in record["error"]
    assert record["gate"]["outcome"] == "abandoned" and record["gate"]["opened_at"] is None
    assert src.running(name) and src.wait_int(name, "/data/n", minimum=before + 5) > before
    assert dst.inspect(name) is None, "the target is cleaned"


def test_a_staging_whose_gate_is_already_abandoned_gives_up_before_any_work(app, tmp_path):
    """The UE went elsewhere (or a newer prediction named another zone) before the staging began: migrate.yml
    looks at its gate before the pre-relocation's first operation and gives up there (wait=false), so nothing is
    committed, copied or created, and the app never stops counting on the source."""
    name, src, dst = app
    gate = tmp_path / "ue.json"
    _write(gate, "zone03")
    before = src.wait_int(name, "/data/n")
    rc, out, record = migrate(tmp_path / "results", app=name, strategy="m2", network_label="lab",
                              migration_cleanup=True, migration_relocation_gate=dict(GATE, path=str(gate)))
    assert rc != 0 and "relocation gate was abandoned after 0.0 s" in out, out[-3000:]
    assert record["status"] == "failed" and record["outcome"] == "rolled_back", record
    assert record["gate"]["outcome"] == "abandoned" and record["gate"]["waited"] == 0
    pre = record["durations"]["pre_relocation"]
    assert pre["source"]["commit"] is None and pre["transfer"]["image"] is None and pre["target"]["create"] is None
    assert record["timestamps"]["source_stopped_at"] is None
    assert src.running(name) and src.wait_int(name, "/data/n", minimum=before + 3) > before
    assert dst.inspect(name) is None


def test_a_bad_gate_is_refused_before_any_change(app, tmp_path):
    name, src, dst = app
    rc, out, record = migrate(tmp_path / "results", app=name, strategy="m2", network_label="lab",
                              migration_relocation_gate={"path": str(tmp_path / "ue.json"), "open": "("})
    assert rc != 0 and "is not a regular expression" in out and "nothing was changed" in out, out[-2000:]
    rc2, out2, _ = migrate(tmp_path / "results2", app=name, strategy="m2", network_label="lab",
                           migration_relocation_gate={"path": str(tmp_path / "ue.json")})
    assert rc2 != 0 and "migration_relocation_gate: a mapping with path" in out2, out2[-2000:]
    good = {"path": str(tmp_path / "ue.json"), "open": "zone02"}
    rc3, out3, _ = migrate(tmp_path / "results3", app=name, strategy="m2", network_label="lab",
                           migration_relocation_gate=dict(good, watch=[{"path": str(tmp_path / "a.json")}]))
    assert rc3 != 0 and "migration_relocation_gate.watch: a list of mappings" in out3, out3[-2000:]
    rc4, out4, _ = migrate(tmp_path / "results4", app=name, strategy="m2", network_label="lab",
                           migration_relocation_gate=dict(good, watch=[{"path": str(tmp_path / "a.json"), "open": "("},
                                                                       {"path": "b.json", "abandon": "x"}]))
    assert rc4 != 0 and "nothing was changed" in out4, out4[-2000:]
    assert "watch[0].open='(' is not a regular expression" in out4 and "watch[1].path=b.json must be absolute" in out4
    assert src.running(name) and dst.inspect(name) is None


if __name__ == "__main__":
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__, "-q"]))
