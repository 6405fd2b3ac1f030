"""A start from a checkpoint that CRIU gives up on, on the lab's Docker target: the error names CRIU's own reason.

containerd removes a failed restore's task folder, and CRIU's log in it, before Docker answers, so the log the
engine's error names is gone by then (the last CI's failure said no more than "criu failed: type NOTIFY errno 0").
The module holds CRIU's logs open while the engine's call runs (criu.LogKeeper) and reads them after a failure.

The failure is made real: a counter holds a file open in its container when it is checkpointed, and the file is
removed from the container's own layer before the restore, which CRIU, having begun the restore, cannot reopen.
Costs ~10 s on the lab.
"""
import re
import time

import pytest

from labtools import lab_hosts, module

pytestmark = pytest.mark.lab

IMAGE = "mec-lab/base:bookworm"
HELD = "/tmp/mec-held"
LOOP = "touch %s; exec 3< %s; i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done" % (HELD, HELD)


@pytest.fixture
def stopped_at_checkpoint(lab, unique):
    """A counter on the lab's target, checkpointed (stopped) with a file open that is then removed from its layer;
    everything removed afterwards."""
    dst = lab[1]
    name, checkpoint = unique, unique + "-cp"
    try:
        dst.out(["docker", "run", "-d", "--name", name, "--label", "mec.migration.test=1", IMAGE, "sh", "-c", LOOP])
        deadline = time.monotonic() + 20
        while len(dst.out(["docker", "logs", name]).split()) < 5:  # it runs, the file open
            assert time.monotonic() < deadline, "the counter %s did not start counting" % name
            time.sleep(0.2)
        dst.out(["docker", "checkpoint", "create", name, checkpoint])
        upper = dst.out(["docker", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", name]).strip()
        dst.out(["rm", upper + HELD])
        yield dst, name, checkpoint
    finally:
        dst.run(["docker", "rm", "-f", name], check=False)


def test_a_restore_that_criu_gives_up_on_names_crius_reason(stopped_at_checkpoint):
    dst, name, checkpoint = stopped_at_checkpoint
    result = module(lab_hosts()["target"].name, "container_restore", name=name, checkpoint=checkpoint)
    assert result.get("failed"), "the restore of a checkpoint whose open file is gone succeeded: %s" % result
    # CRIU had begun: runc names its own last message to CRIU, a notification's answer
    assert "criu failed: type NOTIFY" in result["engine_error"], result["engine_error"]
    # the log the engine names is gone, yet CRIU's reason is there: the file it could not open
    named = re.findall(r"(/\S+/restore\.log)\b", result["engine_error"])
    assert named and dst.run(["test", "-e", named[0]], check=False).returncode != 0, (named, result["engine_error"])
    assert result["criu_log"].endswith("(removed by the engine; kept while it ran)"), result["criu_log"]
    assert any(HELD.lstrip("/") in e for e in result["criu_errors"]), result["criu_errors"]
    assert "CRIU says: Error" in result["msg"], result["msg"]
    # tried once more (CRIU gave up after the restore had begun), and the error says so
    assert result["restore_attempts"] == 2 and "(try 2 of 2; the first failed too: " in result["msg"], result["msg"]
    assert dst.out(["docker", "inspect", "-f", "{{.State.Running}}", name]).strip() == "false"
