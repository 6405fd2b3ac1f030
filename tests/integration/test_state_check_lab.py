"""A state check that fails fails the play (the app stays where it now runs, the record says what failed),
unless migration_state_check_required=false; a check that passes is recorded as passed."""
import uuid

import pytest

from labtools import Host, lab_hosts, migrate

pytestmark = pytest.mark.lab


@pytest.fixture
def app(lab):
    addr = lab_hosts()
    src, dst = Host(addr["source"]), Host(addr["target"])
    name = "mt" + uuid.uuid4().hex[:8]
    src.out(["docker", "run", "-d", "--name", name, "--label", "mec.migration.test=1", "mec-apps/a2:latest",
             "sleep", "600"])
    yield name, src, dst
    for h in (src, dst):
        h.run("docker rm -f %s; docker images -q 'mec-migration/%s' | xargs -r docker rmi -f" % (name, name),
              check=False)


@pytest.mark.parametrize("required", [True, False])
def test_a_failing_state_check(app, tmp_path, required):
    name, src, dst = app
    rc, out, record = migrate(tmp_path, app=name, strategy="m2", network_label="lab", migration_cleanup=True,
                              state_check_command="docker exec %s test -e /no/such/file" % name,
                              migration_state_check_required=required)
    assert dst.running(name) and src.inspect(name) is None, "the app stays where it now runs: the target"
    assert record["outcome"] == "migrated" and record["state_check"]["passed"] is False
    assert record["state_check"]["command_rc"] == 1
    if required:
        assert rc != 0 and "its state check failed" in out, out[-2000:]
        assert record["status"] == "failed" and "state check failed on" in record["error"]
    else:
        assert rc == 0, out[-2000:]
        assert record["status"] == "ok"


def test_a_passing_state_check(app, tmp_path):
    name, src, dst = app
    rc, out, record = migrate(tmp_path, app=name, strategy="m2", network_label="lab", migration_cleanup=True,
                              state_check_command="docker exec %s true" % name)
    assert rc == 0, out[-2000:]
    assert record["status"] == "ok" and record["state_check"]["passed"] is True and record["error"] is None
