"""Multi-hop migrations on the shared local lab: A to B to A with the hop's hosts given as variables
(migration_source_host / migration_target_host), migration_cleanup=true, strategy m2 (m3: the zones lab).

After each hop the host left keeps nothing of the app (container, volumes, images made by a migration, the
run's work directory), so that the app can come back; the volume's counter goes on across both hops.
The app is the tests' own counter container (tests/integration/files/counter_app), never a1/a2/a3; the
stream transfer uses its own port so that it does not meet the other lab tests' migrations.
"""
import pytest

from labtools import WORK_ROOT, StateWatch, counter_starts, migrate, read_int_now
from test_migrate_lab import M3_USER, App, _need_criu
from labutil import lab_hosts

pytestmark = pytest.mark.lab

PORT = 47793


@pytest.fixture
def app(lab, lab_image):
    a = App(lab[0], lab[1], lab_image)
    yield a
    a.cleanup()


def _left_clean(host, app):
    """What the app left on a host it left: nothing."""
    return {
        "container": host.inspect(app.name) is not None,
        "volume": host.run(["docker", "volume", "inspect", app.volume], check=False).returncode == 0,
        "migration images": host.docker("images", "-q", "mec-migration/%s" % app.name),
        "work dirs": [r for r in app.run_ids if host.run(["test", "-e", "%s/%s" % (WORK_ROOT, r)],
                                                         check=False).returncode == 0],
    }


# m3 there and back runs on the separate zones lab (tests/eda/test_follow_zones_lab.py, in scripts/test.sh): on the
# shared lab the other developers' fault tests change CRIU under a concurrent run
@pytest.mark.parametrize("strategy", ["m2"])
def test_there_and_back_leaves_the_hosts_left_clean(lab, app, tmp_path, strategy):
    if strategy == "m3":
        _need_criu(lab)
    names = lab_hosts()
    a_name, b_name = names["source"].name, names["target"].name
    a, b = lab
    app.start(volume=True, ports=False, user=M3_USER if strategy == "m3" else None)
    a.wait_int(app.name, "/data/count", minimum=3)

    for hop, (src_name, dst_name, src, dst) in enumerate([(a_name, b_name, a, b), (b_name, a_name, b, a)], 1):
        # the hop's source count, read on the host every 50 ms: its last value is the count at the stop (the
        # cleanup removes the volume afterwards)
        watch = StateWatch(src, app.name, app.volume)
        try:
            rc, out, record = migrate(tmp_path / ("hop%d" % hop), app=app.name, strategy=strategy,
                                      run_id=app.run_id(), migration_cleanup=True, migration_port=PORT,
                                      migration_source_host=src_name, migration_target_host=dst_name)
        finally:
            watch.stop()
        assert rc == 0, out[-3000:]
        now = read_int_now(dst, app.name, "/data/count")  # once, no waiting
        assert record["status"] == "ok" and record["outcome"] == "migrated"
        assert (record["source"]["host"], record["target"]["host"]) == (src_name, dst_name)
        assert dst.running(app.name)
        counts = [v for v in watch.volume(missing_is_zero=False)]
        assert StateWatch.drop(counts) is None, "hop %d: the count went back on %s" % (hop, src_name)
        # the volume's state went on from the source's last count: the target's app started from it
        final = counts[-1]
        assert counter_starts(dst, app.name) == [final] and now >= final, \
            "hop %d: the app on %s started from %s, counts %s; %s stopped at %d" % (
                hop, dst_name, counter_starts(dst, app.name), now, src_name, final)
        assert _left_clean(src, app) == {"container": False, "volume": False, "migration images": "",
                                         "work dirs": []}, "hop %d left something on %s" % (hop, src_name)
        # the target keeps only the image it runs from (made by this hop), no work directory
        assert dst.inspect(app.name)["Config"]["Image"] == "mec-migration/%s:%s" % (app.name, app.run_ids[-1].lower())
        assert _left_clean(dst, app)["work dirs"] == []


def test_hop_hosts_must_be_given_together_and_differ(lab, tmp_path):
    names = lab_hosts()
    rc, out, record = migrate(tmp_path, app="nothing-here", strategy="m2",
                              migration_source_host=names["source"].name,
                              migration_target_host=names["source"].name)
    assert rc != 0 and record is None
    assert "must both be set, to two different hosts of the inventory" in out
