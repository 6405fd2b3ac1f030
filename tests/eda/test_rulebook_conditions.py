"""The rulebook's conditions (extensions/eda/rulebooks/follow_ue.yml) under the real ansible-rulebook (drools, Java):
an event whose zone or access point id is no identifier fires no rule, so no follow.yml run starts for it.

The rules' conditions are taken verbatim from follow_ue.yml; the sources are replaced by a small one that puts
crafted events on the queue, and the actions by print_event (this test checks which events fire, not follow.yml:
tests/eda/test_follow_events_are_data.py). One ansible-rulebook run, ~9 s (the JVM's start).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RULEBOOK = ROOT / "extensions" / "eda" / "rulebooks" / "follow_ue.yml"
CAR = "10.100.0.1"
TEMPLATE = "{{ lookup('ansible.builtin.pipe', 'touch /tmp/mec-pwned') }}"

SOURCE = '''
import asyncio
import json


async def main(queue, args):
    with open(args["path"]) as fh:  # a file: ansible-rulebook renders a source's arguments as templates
        events = json.load(fh)
    for event in events:
        await queue.put(event)
    await asyncio.sleep(1)
    await queue.put({"kind": "test_done"})
    await asyncio.sleep(60)
'''


def zone_change(n, **over):
    ev = {"n": n, "kind": "zone_change", "ue": CAR, "from_zone": "zone01", "to_zone": "zone02",
          "access_point": "5g-small-cell-9", "previous_access_point": "4g-macro-cell-2", "seq": n}
    ev.update(over)
    return ev


def approaching(n, **over):
    ev = {"n": n, "kind": "approaching", "ue": CAR, "from_zone": "zone01", "to_zone": "zone02",
          "access_point": "4g-macro-cell-2", "eta": 9.0, "timeout": 28.0, "seq": n}
    ev.update(over)
    return ev


# (event, fires?)
EVENTS = [
    (zone_change(1), True),
    (zone_change(2, to_zone=TEMPLATE), False),
    (zone_change(3, from_zone=TEMPLATE), False),
    (zone_change(4, access_point=TEMPLATE), False),
    (zone_change(5, previous_access_point=TEMPLATE), False),
    (zone_change(6, to_zone="zone02\n"), False),
    (zone_change(7, to_zone="zone 02"), False),
    (zone_change(8, from_zone=None, previous_access_point=None), True),  # the UE's first zone known
    (zone_change(9, ue="10.100.0.2"), False),  # another UE
    (zone_change(10, to_zone="z" * 65), False),
    (approaching(11), True),
    (approaching(12, to_zone=TEMPLATE), False),
    (approaching(13, from_zone=TEMPLATE), False),
    (approaching(14, from_zone=None), False),  # a prediction names the zone it was made in
    (approaching(15, access_point=TEMPLATE), False),
]


def test_only_events_with_identifiers_fire_a_rule(tmp_path):
    original = yaml.safe_load(RULEBOOK.read_text())[0]
    rules = []
    for rule in original["rules"]:
        assert "run_playbook" in rule["action"]  # the rules that start follow.yml
        rules.append({"name": rule["name"], "condition": rule["condition"], "action": {"print_event": None}})
    rules.append({"name": "done", "condition": 'event.kind == "test_done"', "action": {"shutdown": None}})
    book = [{"name": original["name"], "hosts": "all",
             "sources": [{"name": "crafted", "crafted_events": {"path": str(tmp_path / "events.json")}}],
             "rules": rules}]
    (tmp_path / "events.json").write_text(json.dumps([e for e, _ in EVENTS]))
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "crafted_events.py").write_text(SOURCE)
    (tmp_path / "rulebook.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    localhost: {}\n")
    (tmp_path / "vars.yml").write_text(yaml.safe_dump({"follow_ue": CAR}))
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    p = subprocess.run([str(VENV_BIN / "ansible-rulebook"), "-r", str(tmp_path / "rulebook.yml"), "-i",
                        str(tmp_path / "inventory.yml"), "-S", str(tmp_path / "sources"), "--vars",
                        str(tmp_path / "vars.yml")], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=180, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    fired = sorted(int(n) for n in re.findall(r"'n': (\d+)", p.stdout))
    assert fired == [n for (e, fires) in EVENTS for n in [e["n"]] if fires], out[-4000:]
