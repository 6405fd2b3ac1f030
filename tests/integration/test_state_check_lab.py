"""The migration's state check (migration_state_check_command, run on the target once the app runs there).

- A state check that fails fails the play (the app stays where it now runs, the record says what failed), unless
  migration_state_check_required=false (local lab: the playbook's handling, the same on every engine).
- A2 (deployed by playbooks/apps.yml) moves to the other host of its lab and back, its own state checked on the
  target by the migration's state check after each hop: A2's counter (kept in its volume) at least what the source
  had before the run, and for m3 its in-memory count of answered polls (requestsOk) as well, which only a restored
  process keeps. The test then reads the target's log: m1 and m2 started A2 again from the volume's state ("Using
  saved state counter=N", N at least the source's), m3 restored it (no start at all). On the local lab with m2, on
  the Podman lab (its two Podman hosts) with m1, m2 and m3 (issue 20). A2 ends on the host it ran on before.

Cost (measured 2026-12-07, load 2-3): the failing checks ~11 s each (local); A2 there and back, local m2 ~12-18 s,
Podman m1 ~42 s, m2 ~33 s, m3 ~33 s.
"""
import re
import uuid

import pytest

from labtools import Host, http_json, lab_hosts, migrate

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


# The state check run in A2's container on the target (argv: the source's counter and requestsOk before the run; 0
# where the strategy does not keep it): A2's /state once it answers, its counters at least those; the exit code says
# it, the output is A2's state (the record's command_stdout).
A2_CHECK = """
import json, sys, time, urllib.request
counter, requests_ok = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 20
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1:3000/state", timeout=2) as answer:
            state = json.load(answer)
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit("A2 does not answer on 127.0.0.1:3000: %s" % exc)
        time.sleep(0.2)
print(json.dumps(state))
if state["counter"] < counter or state["requestsOk"] < requests_ok:
    sys.exit("A2's state went back: the source had counter %d, requestsOk %d" % (counter, requests_ok))
"""
A2_STARTED = re.compile(r"Using saved state counter=(\d+) ")


def a2_starts(host):
    """The counters A2 on ``host`` started from (its log's "Using saved state counter=N"), oldest first; a start
    without the volume's state ("No state present, starting from zero") gives -1."""
    p = host.run([host.cli, "logs", "a2"], check=False)
    text = (p.stdout or "") + (p.stderr or "")
    starts = []
    for line in text.splitlines():
        m = A2_STARTED.search(line)
        if m:
            starts.append(int(m.group(1)))
        elif "starting from zero" in line:
            starts.append(-1)
    return starts


@pytest.fixture
def a2_home(lab_pair, tmp_path_factory):
    """The host of the lab that runs A2 (playbooks/apps.yml starts it when it runs on neither host: it would start
    a second A2 on the source when it runs on the target); A2 is moved back there (m2) at the end if a failed test
    left it on the other host."""
    if not any(h.running("a2") for h in lab_pair):
        lab_pair.apps_up()
    home = lab_pair.running_on("a2")
    yield home
    away = lab_pair.other(home)
    if away.running("a2") and not home.running("a2"):
        rc, out, _ = lab_pair.move(tmp_path_factory.mktemp("a2home"), "a2", away, home, strategy="m2",
                                   migration_cleanup=True)
        assert rc == 0, "moving A2 back to %s failed: %s" % (home.name, out[-2000:])


@pytest.mark.parametrize("lab_pair,strategy", [
    pytest.param("local", "m2", id="local-m2")] + [
    pytest.param("podman", s, id="podman-" + s, marks=pytest.mark.podman_lab) for s in ("m1", "m2", "m3")],
    indirect=["lab_pair"])
def test_a_passing_state_check_of_a2s_state(lab_pair, a2_home, tmp_path, strategy):
    home = a2_home
    for i, (frm, to) in enumerate(((home, lab_pair.other(home)), (lab_pair.other(home), home))):
        before = http_json(frm.address)
        check = [to.cli, "exec", "a2", "python3", "-c", A2_CHECK, str(before["counter"]),
                 str(before["requestsOk"] if strategy == "m3" else 0)]
        rc, out, record = lab_pair.move(tmp_path / str(i), "a2", frm, to, strategy=strategy, network_label="lab",
                                        migration_cleanup=True, state_check_command=check)
        assert rc == 0, out[-3000:]
        assert record["status"] == "ok" and record["outcome"] == "migrated" and record["error"] is None, record
        assert to.running("a2") and frm.inspect("a2") is None
        # the migration's own state check ran on the target and passed (A2's state there, as it printed it)
        assert record["state_check"]["passed"] is True and record["state_check"]["command_rc"] == 0, \
            record["state_check"]
        seen = http_json(to.address)
        assert seen["counter"] >= before["counter"], (before, seen)
        starts = a2_starts(to)
        if strategy == "m3":
            # restored, not started: no start line, the in-memory count went on
            assert starts == [], "m3: A2 was started again on %s (%s), not restored" % (to.name, starts)
            assert seen["requestsOk"] >= before["requestsOk"], (before, seen)
        else:
            # started again on the target, from the volume's state
            assert len(starts) == 1 and starts[0] >= before["counter"], \
                "A2 on %s started from %s, the source had counter %d" % (to.name, starts, before["counter"])
