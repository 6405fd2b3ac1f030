"""follow.yml never renders the event (issue #18): ansible-playbook runs for real with the extra var ansible_eda as
ansible-rulebook passes it (an extra-vars file, ``-e @file``), with ``{{ lookup('ansible.builtin.pipe', 'touch
MARKER') }}`` in one field at a time, and MARKER must never appear.

On the landed follow.yml (which set_fact'ed ``ansible_eda.event``) every one of these created MARKER: Ansible renders
extra vars as templates where a task refers to them. Now mec.migration.follow_hop (plugins/action/follow_hop.py)
reads the event raw, refuses a field it uses that is no identifier, and never copies the others.

No lab: the inventory's two MEC hosts are addresses nobody answers on (the runs end at "runs on no host", or, for a
coalesced event, with the follow log written). Each ansible-playbook run takes ~2 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CAR = "10.100.0.1"


def touch(marker: Path) -> str:
    return "{{ lookup('ansible.builtin.pipe', 'touch %s; echo zone02') }}" % marker


@pytest.fixture
def lab(tmp_path):
    """A private state folder, an inventory of two unreachable MEC hosts (zone01, zone02), and the MARKER path."""
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  children:\n    mec_hosts:\n      hosts:\n"
                   "        z1: {ansible_host: 127.0.0.254, mec_zones: [zone01]}\n"
                   "        z2: {ansible_host: 127.0.0.253, mec_zones: [zone02]}\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return {"inv": inv, "state": state, "marker": tmp_path / "MARKER", "results": tmp_path / "results",
            "tmp": tmp_path}


def event(**over):
    ev = {"ue": CAR, "from_zone": "zone01", "to_zone": "zone02", "kind": "zone_change", "seq": 3, "api": "mec013",
          "at": "2026-11-27T15:20:01.250000Z", "at_epoch": 1795792801.25, "access_point": "5g-small-cell-9",
          "previous_access_point": "4g-macro-cell-2", "received_at": 1795792801.262,
          "platform": "http://127.0.0.1:8080/sandbox/location/v2"}
    ev.update(over)
    return ev


def follow(lab, ev, extra=None, eda=None):
    """ansible-playbook playbooks/follow.yml with ansible_eda.event = ev in an extra-vars file, as ansible-runner
    passes it for ansible-rulebook."""
    data = {"ansible_eda": dict({"event": ev, "ruleset": "Follow the UE with its app",
                                 "rule": "Move the app to the host of the UE's new zone"}, **(eda or {})),
            "follow_app": "a2", "follow_state_dir": str(lab["state"]), "follow_results_dir": str(lab["results"])}
    data.update(extra or {})
    extravars = lab["tmp"] / "extravars.json"
    extravars.write_text(json.dumps(data))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(lab["inv"]),
                        str(ROOT / "playbooks" / "follow.yml"), "-e", f"@{extravars}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("field", ["to_zone", "from_zone", "ue", "access_point", "previous_access_point"])
def test_a_template_in_a_zone_access_point_or_ue_id_is_refused_and_never_rendered(lab, field):
    rc, out = follow(lab, event(**{field: touch(lab["marker"])}))
    assert not lab["marker"].exists(), f"the template in {field} was rendered:\n{out[-3000:]}"
    assert rc != 0 and f"the event's {field} " in out and "is no identifier" in out, out[-3000:]
    assert "Nothing was changed" in out
    assert not lab["results"].exists()  # refused before anything: no follow log


def test_a_template_in_a_field_follow_yml_does_not_use_goes_nowhere(lab):
    """Fields follow_hop does not take (at, platform, api, ansible_eda.rule) may hold anything: the run goes on to
    read where the app runs (nobody answers here), and nothing is rendered on the way."""
    ev = event(at=touch(lab["marker"]), platform=touch(lab["marker"]), api=touch(lab["marker"]),
               speed={"nested": [touch(lab["marker"])]})
    rc, out = follow(lab, ev, eda={"rule": touch(lab["marker"]), "ruleset": touch(lab["marker"])})
    assert not lab["marker"].exists(), out[-3000:]
    assert rc != 0 and "a2 runs on no host of group mec_hosts (unreachable: z1, z2)" in out, out[-3000:]


def test_a_template_in_the_state_file_is_refused_and_never_rendered(lab):
    """The event source's <ue>.json (the UE's latest zone, which the hop follows) holds a template: refused."""
    (lab["state"] / f"{CAR}.json").write_text(json.dumps({"ue": CAR, "zone": touch(lab["marker"]), "seq": 4}))
    rc, out = follow(lab, event())
    assert not lab["marker"].exists(), out[-3000:]
    assert rc != 0 and f"zone in {lab['state'] / (CAR + '.json')}" in out and "is no identifier" in out, out[-3000:]


def test_a_coalesced_event_is_recorded_without_rendering_anything(lab):
    """An event an earlier hop covered (the handled file's seq >= its seq) ends at once and is recorded in the
    follow log by follow_hop itself: the line holds the checked fields only, the templates elsewhere in the event
    went nowhere."""
    (lab["state"] / f"{CAR}.json").write_text(json.dumps({"ue": CAR, "zone": "zone02", "seq": 5}))
    (lab["state"] / f"{CAR}.a2.handled.json").write_text(json.dumps({"seq": 5, "zone": "zone02", "host": "z2"}))
    rc, out = follow(lab, event(at=touch(lab["marker"]), platform=touch(lab["marker"])))
    assert not lab["marker"].exists(), out[-3000:]
    assert rc == 0, out[-3000:]
    assert "Event 3 (10.100.0.1 to zone02) is covered by the hop made for event 5 (to zone02): coalesced" in out
    lines = [json.loads(x) for x in (lab["results"] / "a2.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and "{{" not in json.dumps(lines[0])
    line = lines[0]
    assert (line["coalesced"], line["moved"], line["seq"], line["latest_seq"], line["zone"]) == (True, False, 3, 5,
                                                                                                 "zone02")
    assert line["event_received_at"] == 1795792801.262 and line["playbook_started_at"] > 0


def test_a_state_folder_others_could_write_is_refused(lab):
    """follow_state_dir decides where the app goes: a folder with group/other bits stops the run before anything
    (fsutil.private_dir's message)."""
    os.chmod(lab["state"], 0o777)
    rc, out = follow(lab, event())
    assert rc != 0 and "must be private" in out and "chmod 0700" in out, out[-3000:]


def approaching(**over):
    ev = {"kind": "approaching", "ue": CAR, "from_zone": "zone01", "to_zone": "zone02", "eta": 9.0, "timeout": 28.0,
          "confidence": 1.0, "seq": 4, "at_epoch": 1700000142.0, "received_at": 1795793698.2,
          "access_point": "4g-macro-cell-2", "predicted_access_point": "4g-macro-cell-4"}
    ev.update(over)
    return ev


def test_ahead_a_replaced_prediction_ends_at_once_and_a_template_in_the_approach_file_is_refused(lab):
    """Ahead: a prediction that a later one replaced (<ue>.approach.json holds a higher seq) ends at once and is
    recorded (mode ahead, the prediction's checked figures); the approach file holding a template as to_zone is
    refused, and nothing is rendered either way."""
    (lab["state"] / f"{CAR}.json").write_text(json.dumps({"ue": CAR, "zone": "zone01", "seq": 2}))
    approach = lab["state"] / f"{CAR}.approach.json"
    approach.write_text(json.dumps({"ue": CAR, "seq": 5, "from_zone": "zone01", "to_zone": "zone03"}))
    rc, out = follow(lab, approaching(predicted_access_point=touch(lab["marker"])), extra={"follow_ahead": True})
    assert rc == 0, out[-3000:]
    assert "Prediction 4 (10.100.0.1 zone01 -> zone02) is stale: prediction 5 (to zone03) replaced it" in out
    line = json.loads((lab["results"] / "a2.jsonl").read_text().splitlines()[-1])
    assert (line["mode"], line["coalesced"], line["moved"], line["handover_seq"]) == ("ahead", True, False, None)
    assert line["prediction"] == {"eta": 9.0, "timeout": 28.0, "confidence": 1.0, "from_zone": "zone01"}
    approach.write_text(json.dumps({"ue": CAR, "seq": 5, "from_zone": "zone01", "to_zone": touch(lab["marker"])}))
    rc, out = follow(lab, approaching(), extra={"follow_ahead": True})
    assert rc != 0 and f"to_zone in {approach}" in out and "is no identifier" in out, out[-3000:]
    assert not lab["marker"].exists(), out[-3000:]
