"""What the experiment's tests share: the checkout's root, the lab they use, synthetic records."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The lab the lab tests use: the main lab by default, another one (e.g. a second lab) by env var.
LAB_INVENTORY = Path(os.environ.get("MEC_EXPERIMENT_INVENTORY", str(ROOT / "inventories" / "local" / "hosts.yml")))


def synthetic_record(app="a2", strategy="m1", network="n1", rep=1, status="ok", passed=True, downtime=1.0,
                     volume=1000, full=15_000_000, transferred=3_000_000, user=None, reloc_source=None):
    """A record as playbooks/experiment.yml writes it now (numbers as numbers, null where a step did not run;
    m3: the final checkpoint, its page delta sent in the stream, CRIU's block)."""
    m3 = strategy == "m3"
    return {
        "schema": "mec.migration/record/v1", "status": status, "error": None if status == "ok" else "migrate: boom",
        "outcome": "migrated" if status == "ok" else "rolled_back", "phase": "done" if status == "ok" else "relocation",
        "run_id": "r-%s-%s-%s-%d" % (app, strategy, network, rep), "app": app, "strategy": strategy,
        "network": network, "transfer": "stream",
        "start_command": ["python3", "/app/app.py"] if strategy == "m1" else None,
        "criu": {"tcp_policy": "close" if m3 else None, "checkpoint_via": "runtime" if m3 else None,
                 "dump_duration": 0.2 if m3 else None, "errors": [] if status == "ok" or not m3 else
                 ["Error (criu/sk-inet.c:191): inet: Connected TCP socket, consider using --tcp-established option."],
                 "log": None},
        "sizes": {"source_image": 200_000_000, "tarball": 180_000_000 if strategy == "m1" else 210_000_000,
                  "checkpoint_full": full if m3 else None, "checkpoint_final": full + 20_000 if m3 else None,
                  "checkpoint_delta": transferred if m3 else None,
                  "rsync_transferred_bytes": transferred + 5_000 if m3 else None,
                  "stream": (transferred if m3 else 0) + volume + 10_000, "volume": volume},
        "durations": {"pre_relocation": {"source": {"export": 2.0, "commit": None},
                                         "transfer": {"image": 1.5}, "target": {"import": 1.0}},
                      "relocation": {"source": {"checkpoint" if m3 else "stop": 0.3},
                                     "transfer": {"transfer": 0.1}, "target": {"receive": 0.01, "start": 0.5},
                                     "source_total": reloc_source if reloc_source is not None else (0.6 if m3 else 0.3),
                                     "transfer_total": 0.1, "target_total": 0.5}},
        "commit_freeze": None if strategy == "m1" else 0.05,
        "downtime": {"wall": downtime if status == "ok" else None, "operations_sum": downtime,
                     "user": user if user is not None else (downtime + 0.2 if status == "ok" else None)},
        "experiment": {"schema": "mec.migration/experiment/v1", "rep": rep, "run_seconds": 40.0,
                       "stage_failed": None if status == "ok" else "migrate",
                       "network_measured": {"profile": network, "rate_mbit": 1000 if network == "n1" else 100,
                                            "mbit_s": 940.0 if network == "n1" else 94.6, "bytes": 1,
                                            "receiver_seconds": 1},
                       "probe": {"kind": "http", "downtime": downtime + 0.2},
                       "state_after": {"passed": passed if status == "ok" else None, "detail": "d"},
                       "totals": {}},
    }
