"""The forged MEC callback of issue #18, end to end without a lab: the sandbox (a process on loopback, with its own
credentials), ansible-rulebook running extensions/eda/rulebooks/follow_ue.yml, and playbooks/follow.yml as
ansible-rulebook runs it (ansible-runner, the event in its extra-vars file). The inventory's two MEC hosts are
addresses nobody answers on, so the true zone change's follow.yml run ends at "runs on no host": enough to show
that the event went all the way, checked, and that nothing of the forged ones did.

The attacker knows each subscription's callback URL with its secret path (the sandbox lists them; before it had
tokens it did so to anyone) and posts zonalPresenceNotifications whose zoneId, currentAccessPointId or
previousAccessPointId is ``{{ lookup('ansible.builtin.pipe', 'id -un > MARKER; echo zone02') }}``. On the landed
code this wrote MARKER as root. The same attack on the zones lab, with a real hop after it:
tests/eda/test_follow_zones_lab.py (test_rulebook_follows_the_car_survives_a_failed_hop_and_coalesces).

~30 s (the JVM's start, the sandbox, one follow.yml run); needs Java 17 (scripts/bootstrap.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from test_follow_zones_lab import CAR, Sandbox, _free_port, _wait, forge_callbacks

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def test_forged_callbacks_run_nothing_and_the_true_zone_change_still_reaches_follow_yml(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    mec_hosts:\n      hosts:\n"
                         "        z1: {ansible_host: 127.0.0.254, mec_zones: [zone01]}\n"
                         "        z2: {ansible_host: 127.0.0.253, mec_zones: [zone02]}\n")
    sbx = Sandbox(_free_port())
    state, marker = tmp_path / "state", tmp_path / "MARKER"
    varsfile = tmp_path / "vars.yml"
    varsfile.write_text(yaml.safe_dump({
        "follow_platform_url": sbx.url, "follow_credentials_file": sbx.credentials_file, "follow_ue": CAR,
        "follow_app": "a2", "follow_strategy": "m2", "follow_listen_host": "127.0.0.1",
        "follow_state_dir": str(state), "follow_inventory_dir": "", "follow_results_dir": str(tmp_path / "results"),
        "follow_playbook": str(ROOT / "playbooks" / "follow.yml")}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    log_path = tmp_path / "rulebook.log"
    log = open(log_path, "w")
    rb = subprocess.Popen([str(VENV_BIN / "ansible-rulebook"), "-r", "extensions/eda/rulebooks/follow_ue.yml",
                           "-i", str(inventory), "--vars", str(varsfile)], cwd=ROOT, env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: len(sbx.subscriptions()) == 4 or rb.poll() is not None, 90,
              "the rulebook's 4 zonalTraffic subscriptions")
        assert rb.poll() is None, log_path.read_text()[-3000:]
        forge_callbacks(sbx, marker)
        sbx.to(152)  # the car's true zone change zone01 -> zone02
        _wait(lambda: "follow_hop (hop): a2 runs on no host" in log_path.read_text(), 120,
              "follow.yml's run for the true zone change")
        text = log_path.read_text()
    finally:
        os.killpg(rb.pid, signal.SIGINT)
        try:
            rb.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(rb.pid, signal.SIGKILL)
            rb.wait(10)
        log.close()
        sbx.stop()
    assert not marker.exists(), "a forged id was rendered on the controller"
    assert text.count("mec_mobility: a notification for UE 10.100.0.1 dropped") == 3 * 4, text[-3000:]
    # the one run was the true zone change's: checked by follow_hop, the UE's latest zone, its hosts unreachable
    assert text.count("follow_hop (hop): a2 runs on no host of group mec_hosts (unreachable: z1, z2)") >= 1
    assert "follow_hop (event)" not in text, text[-3000:]  # no event was refused: none of the forged got there
