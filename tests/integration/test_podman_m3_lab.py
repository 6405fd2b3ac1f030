"""m3 (CRIU checkpoint/restore) Podman -> Podman -> Podman on the Podman lab (inventories/podman/hosts.yml:
mec-pod-source and mec-pod-target run Podman 4.3.1 with runc and CRIU), through the real playbook over SSH with
checked host keys.

The app is the counter (tests/integration/files/counter_app, run as root: CRIU on these hosts, without
CAP_SYS_RESOURCE, checkpoints only root processes) with a restart policy and a volume. Its shell loop raises an
in-memory count and the volume's count together, so their difference stays what it was at the process's start: a
restored process keeps it (the source's difference, within one step of the loop), a process started afresh on the
copied volume starts its memory at 0 (a difference of the whole volume count) and prints "counter started".

After the first move the app must be an ordinary Podman container on the target (listed by ``podman ps``, its logs
read, stopped and started by podman, the start going on from the volume), and it moves back with m3 as well; each
record has the downtime stage by stage and Podman's own --print-stats figures.

The app runs with a restart policy (the final checkpoint is then Podman's own: Podman would restart the app on the
exit that runc's own dump is to Podman) and moves there and back, and without one (runc's final checkpoint) one way.

Without the Podman lab, Podman or CRIU on its hosts, the test fails (never skipped). Cost on the Podman lab: 3 m3
migrations, ~100 s.
"""
import time

import pytest

from labtools import migrate
from podman_labtools import INVENTORY
from test_podman_migrate_lab import IMAGE, PodApp, pod_image, pod_lab  # noqa: F401  (fixtures used here)

pytestmark = [pytest.mark.lab, pytest.mark.podman_lab]


def counts(host, name):
    """(in-memory count, volume count) of the counter, read in one exec."""
    out = host.run([host.cli, "exec", name, "sh", "-c", "cat /tmp/mem.value; cat /data/count"]).stdout.split()
    return int(out[0]), int(out[1])


def check_m3_record(record, src, dst, policy):
    assert record["status"] == "ok" and record["outcome"] == "migrated", record
    assert record["strategy"] == "m3"
    assert (record["source"]["engine"], record["target"]["engine"]) == ("podman", "podman")
    dump, restore = record["criu"]["engine_dump_stats"], record["criu"]["engine_restore_stats"]
    assert restore, "no Podman --print-stats figures of the restore in the record: %s" % record["criu"]
    if policy:
        # Podman would restart the app on an exit: the final checkpoint is Podman's own, with its figures
        assert record["criu"]["checkpoint_via"] == "engine"
        assert dump and dump["runtime_us"] > 0 and dump["pages_written"] > 0, record["criu"]
    else:
        assert record["criu"]["checkpoint_via"] == "runtime" and dump is None, record["criu"]
    assert restore["runtime_us"] > 0 and restore["restore_time"] > 0 and restore["pages_restored"] > 0, restore
    stages = record["downtime"]["stages"]
    for key in ("source_pause", "source_criu_dump", "source_runtime", "transfer", "engine_before_criu",
                "criu_restore", "engine_after_criu", "running_check"):
        assert stages[key] is not None and stages[key] >= 0, (key, stages)
    assert record["downtime"]["wall"] > 0
    assert record["criu"]["restore_log"].endswith("/userdata/restore.log"), record["criu"]


def check_restored(host, name, before):
    """The app on ``host`` is the restored process of the one that had ``before`` (memory, volume) counts."""
    assert host.running(name)
    assert host.starts(name) == [], "the app was started afresh on %s, not restored" % host.name
    mem, vol = counts(host, name)
    assert mem > before[0] and vol > before[1], (before, (mem, vol))
    # the loop raises both counts together: a restored process keeps their difference
    assert abs((vol - mem) - (before[1] - before[0])) <= 1, (before, (mem, vol))
    return mem, vol


@pytest.mark.parametrize("policy", ["unless-stopped", None])
def test_m3_podman_to_podman(pod_lab, pod_image, tmp_path, policy):  # noqa: F811
    """With a restart policy (Podman's own final checkpoint): there and back, the app stopped and started by podman
    between the hops. Without one (runc's final checkpoint): one hop."""
    pod1, pod2 = pod_lab["mec-pod-source"], pod_lab["mec-pod-target"]
    for h in (pod1, pod2):
        version = h.run(["criu", "--version"], check=False)
        assert version.returncode == 0, "CRIU is missing on %s: %s" % (h.name, version.stderr)
    app = PodApp(pod_lab)
    try:
        pod1.out(*(["run", "-d", "--name", app.name, "--user", "0"] + (["--restart", policy] if policy else [])
                   + ["-v", app.volume + ":/data", IMAGE]))
        pod1.wait_count(app.name, 20)
        hops = [(pod1, pod2), (pod2, pod1)] if policy else [(pod1, pod2)]
        for i, (src, dst) in enumerate(hops):
            before = counts(src, app.name)
            rid = app.run_id()
            rc, out, record = migrate(tmp_path / rid, inventory=str(INVENTORY), app=app.name, strategy="m3",
                                      migration_source_host=src.name, migration_target_host=dst.name, run_id=rid,
                                      migration_cleanup=True)
            assert rc == 0, out[-4000:]
            check_m3_record(record, src, dst, policy)
            assert src.inspect(app.name) is None  # migration_cleanup: the source's container is gone
            mem, vol = check_restored(dst, app.name, before)
            # an ordinary Podman container: listed, its logs read, stopped and started by podman
            assert dst.out("ps", "--filter", "name=^%s$" % app.name, "--format", "{{.Names}}") == app.name
            dst.out("logs", app.name)
            assert dst.inspect(app.name)["HostConfig"]["RestartPolicy"]["Name"] in ((policy,) if policy else ("", "no"))
            if i == 0 and policy:
                dst.out("stop", app.name)
                assert not dst.running(app.name)
                stopped_at = dst.volume_count(app.volume)
                assert stopped_at >= vol
                dst.out("start", app.name)
                # a start (not a restore): from the volume's count, the memory from 0
                assert dst.starts(app.name) == [stopped_at]
                dst.wait_count(app.name, stopped_at + 5)
                time.sleep(0.5)
    finally:
        app.cleanup()
