"""A2 as a real process: zone counting, its volume state, the phase switch, failures."""

import json
import time
import urllib.request

from apps_helpers import free_port, load_module, users

USERS = "/location/v2/queries/users"


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode())


def get_text(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def wait_state(port, predicate, timeout=10.0):
    """Poll A2's /state until ``predicate`` holds; return that state (fail with the last one)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        try:
            state = get_json("http://127.0.0.1:%d/state" % port)
        except OSError:
            state = None
        if state is not None and predicate(state):
            return state
        time.sleep(0.05)
    raise AssertionError("A2 state never matched; last state: %r" % (state,))


def start_a2(start_app, url, data_dir, **extra):
    port = free_port()
    app = start_app("a2_zone_counter/app.py", MEC_GATEWAY_URL=url, A2_INTERVAL_MS=50,
                    A2_DATA_DIR=data_dir, A2_PORT=port, **extra)
    app.wait_for(r"Started app")
    return app, port


def test_load_state_variants(tmp_path):
    a2 = load_module("a2_zone_counter/app.py", "a2_app")
    assert a2.load_state(str(tmp_path))[:2] == (0, None)
    (tmp_path / "state.json").write_text('{"counter": 4, "zone": "zone02"}')
    assert a2.load_state(str(tmp_path))[:2] == (4, "zone02")
    (tmp_path / "state.json").write_text('{"counter": "four"}')
    counter, zone, message = a2.load_state(str(tmp_path))
    assert (counter, zone) == (0, None) and "corrupt" in message
    (tmp_path / "state.json").write_text("[1, 2]")
    assert a2.load_state(str(tmp_path))[:2] == (0, None)


def test_first_zone_picks_the_first_or_the_named_ue():
    a2 = load_module("a2_zone_counter/app.py", "a2_app")
    document = {"userList": {"user": [{"address": "a", "zoneId": "z1"}, {"address": "b", "zoneId": "z2"}]}}
    assert a2.first_zone(document) == "z1"
    assert a2.first_zone(document, "b") == "z2"
    assert a2.first_zone(document, "c") is None
    assert a2.first_zone({"userList": {"user": []}}) is None
    assert a2.first_zone({"userList": {"user": {"address": "a", "zoneId": "z9"}}}) == "z9"


def test_a2_counts_zone_changes_and_persists_them(upstream, start_app, tmp_path):
    upstream.set(USERS, users("zone01"))
    app, port = start_a2(start_app, upstream.url, str(tmp_path))
    app.wait_for(r"No state present, starting from zero")
    wait_state(port, lambda s: s["counter"] == 1 and s["zone"] == "zone01")
    upstream.set(USERS, users("zone02"))
    wait_state(port, lambda s: s["counter"] == 2 and s["zone"] == "zone02")
    upstream.set(USERS, users("zone01"))
    state = wait_state(port, lambda s: s["counter"] == 3)
    assert state["zone"] == "zone01" and state["inMigration"] == 0
    assert json.loads((tmp_path / "state.json").read_text()) == {"counter": 3, "zone": "zone01"}
    assert not (tmp_path / "state.json.tmp").exists()
    assert app.stop() == 0


def test_a2_resumes_from_its_state_file(upstream, start_app, tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"counter": 7, "zone": "zone03"}))
    upstream.set(USERS, users("zone03"))
    app, port = start_a2(start_app, upstream.url, str(tmp_path))
    app.wait_for(r"Using saved state counter=7 zone=zone03")
    wait_state(port, lambda s: s["requestsOk"] >= 3)
    assert wait_state(port, lambda s: True)["counter"] == 7, "same zone after a restart is no change"
    upstream.set(USERS, users("zone04"))
    wait_state(port, lambda s: s["counter"] == 8 and s["zone"] == "zone04")
    assert app.stop() == 0
    # A restart from the same directory (the volume) carries on from there.
    app2, port2 = start_a2(start_app, upstream.url, str(tmp_path))
    app2.wait_for(r"Using saved state counter=8 zone=zone04")
    assert wait_state(port2, lambda s: s["requestsOk"] >= 2)["counter"] == 8
    assert app2.stop() == 0


def test_a2_treats_a_corrupt_state_file_as_zero_and_says_so(upstream, start_app, tmp_path):
    (tmp_path / "state.json").write_text('{"counter": 12, "zone"')
    upstream.set(USERS, users("zone05"))
    app, port = start_a2(start_app, upstream.url, str(tmp_path))
    app.wait_for(r"State file .*state.json is corrupt .*starting from zero")
    state = wait_state(port, lambda s: s["counter"] == 1)
    assert state["zone"] == "zone05"
    assert json.loads((tmp_path / "state.json").read_text()) == {"counter": 1, "zone": "zone05"}
    assert app.stop() == 0


def test_a2_phase_switch_writes_the_runtime_log_to_the_volume(upstream, start_app, tmp_path):
    upstream.set(USERS, users("zone01"))
    app, port = start_a2(start_app, upstream.url, str(tmp_path))
    runtime = tmp_path / "runtimedata.dat"
    # zone01 counted before the switch: on a loaded machine A2's first poll can come after the test's next step (then
    # zone02 is its first zone, counted 1, never 2)
    wait_state(port, lambda s: s["counter"] == 1 and s["zone"] == "zone01")
    assert get_text("http://127.0.0.1:%d/changePhase?inMigration=1" % port) == (200, "OK")
    assert wait_state(port, lambda s: s["inMigration"] == 1)
    upstream.set(USERS, users("zone02"))
    wait_state(port, lambda s: s["counter"] == 2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(runtime.read_text().splitlines()) < 3:
        time.sleep(0.05)
    records = [json.loads(line) for line in runtime.read_text().splitlines()]
    assert len(records) >= 3
    assert {record["response"]["userList"]["user"][0]["zoneId"] for record in records} <= {"zone01", "zone02"}
    assert records[-1]["counter"] == 2
    # Leaving the migration phase starts an empty runtime log, and nothing more is appended.
    assert get_text("http://127.0.0.1:%d/changePhase" % port) == (200, "OK")
    before = wait_state(port, lambda s: s["inMigration"] == 0)["requestsOk"]
    wait_state(port, lambda s: s["requestsOk"] >= before + 3)
    assert runtime.read_text() == ""
    app.wait_for(r"phase changed: inMigration=0")
    assert app.stop() == 0


def test_a2_keeps_running_when_the_upstream_is_unreachable(dead_url, start_app, tmp_path):
    app, port = start_a2(start_app, dead_url, str(tmp_path))
    state = wait_state(port, lambda s: s["requestsFailed"] >= 3)
    assert state["counter"] == 0 and state["requestsOk"] == 0
    app.wait_for(r"request failed: .*refused")
    assert app.proc.poll() is None
    assert app.stop() == 0
    app.wait_for(r"stopped counter=0")


def test_a2_answers_404_elsewhere_and_logs_its_requests(upstream, start_app, tmp_path):
    upstream.set(USERS, users("zone01"))
    app, port = start_a2(start_app, upstream.url, str(tmp_path))
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/nothing" % port, timeout=5)
        raise AssertionError("expected HTTP 404")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    app.wait_for(r'http 127\.0\.0\.1 "GET /nothing HTTP/1\.1" 404')
    assert app.stop() == 0
