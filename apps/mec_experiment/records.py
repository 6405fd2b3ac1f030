"""Experiment records: file names, loading (corrupt files named, not fatal), the CSV of all runs.

The run record's schema is the collection's own (plugins/module_utils/records.py, which the module
migration_record writes records with): a record is checked against it when it is loaded, so what is read
has numbers as numbers and needs no coercion."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
from pathlib import Path


def _record_schema():
    """plugins/module_utils/records.py of this checkout (plain Python, loaded by path: the apps run without
    the collection on the import path)."""
    path = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "records.py"
    spec = importlib.util.spec_from_file_location("mec_migration_record_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


record_schema = _record_schema()
SCHEMA = record_schema.SCHEMA
EXPERIMENT_SCHEMA = "mec.migration/experiment/v1"

# columns of results.csv: (header, path in the record)
CSV_COLUMNS = [
    ("app", "app"), ("strategy", "strategy"), ("network", "network"), ("rep", "experiment.rep"),
    ("attempt", "experiment.attempt"),
    ("status", "status"), ("error", "error"), ("run_id", "run_id"),
    ("run_seconds", "experiment.run_seconds"),
    ("measured_mbit_s", "experiment.network_measured.mbit_s"),
    ("downtime_wall", "downtime.wall"), ("downtime_operations_sum", "downtime.operations_sum"),
    ("downtime_user", "downtime.user"), ("downtime_user_method", "experiment.probe.kind"),
    ("freeze_user_pre_relocation", "downtime.user_pre_relocation_freeze"),
    ("state_passed", "experiment.state_after.passed"), ("state_detail", "experiment.state_after.detail"),
    ("size_source_image", "sizes.source_image"), ("size_image", "sizes.image"), ("size_tarball", "sizes.tarball"),
    ("size_checkpoint_full", "sizes.checkpoint_full"), ("size_checkpoint_final", "sizes.checkpoint_final"),
    ("size_checkpoint_delta", "sizes.checkpoint_delta"), ("size_volume", "sizes.volume"),
    ("pre_source", "experiment.totals.pre_source"), ("pre_transfer", "experiment.totals.pre_transfer"),
    ("pre_target", "experiment.totals.pre_target"), ("commit_freeze", "commit_freeze"),
    ("reloc_source", "durations.relocation.source_total"), ("reloc_transfer", "durations.relocation.transfer_total"),
    ("reloc_target", "durations.relocation.target_total"),
]


def run_name(app: str, strategy: str, network: str, rep: int) -> str:
    return "%s-%s-%s-r%d" % (app, strategy, network, rep)


def record_path(results_dir, app, strategy, network, rep, attempt=1) -> Path:
    """runs/<app>-<strategy>-<network>-r<rep>.json for the first attempt, ...-r<rep>.attempt<N>.json for the
    N-th (a retried run is a new attempt beside the failed one, never an overwrite)."""
    suffix = "" if attempt == 1 else ".attempt%d" % attempt
    return Path(results_dir) / "runs" / (run_name(app, strategy, network, rep) + suffix + ".json")


_ATTEMPT = re.compile(r"^(?P<name>.+-r\d+)(?:\.attempt(?P<n>\d+))?\.json$")


def attempts(results_dir, app, strategy, network, rep):
    """[(attempt, path)] of one run of the matrix, oldest first."""
    name = run_name(app, strategy, network, rep)
    out = []
    for path in (Path(results_dir) / "runs").glob(name + "*.json"):
        m = _ATTEMPT.match(path.name)
        if m and m.group("name") == name:
            out.append((int(m.group("n") or 1), path))
    return sorted(out)


def attempt_of(record) -> int:
    """A record's attempt (1 for records written before attempts were counted)."""
    return int(dig(record, "experiment.attempt") or 1)


def dig(record, path, default=None):
    cur = record
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def phase_total(record, phase, side):
    """Sum of a phase's steps on one side (pre_relocation source/transfer/target); None if no step ran."""
    steps = dig(record, "durations.%s.%s" % (phase, side)) or {}
    values = [v for v in steps.values() if v is not None]
    return round(sum(values), 6) if values else None


def load_records(results_dir):
    """(records, skipped): every runs/*.json that is a record; skipped = [(file, why)]."""
    records, skipped = [], []
    runs = Path(results_dir) / "runs"
    if not runs.is_dir():
        return records, [(str(runs), "no runs/ folder")]
    for path in sorted(runs.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            skipped.append((path.name, "not JSON: %s" % exc))
            continue
        problems = record_schema.problems(data, complete=False)
        if problems:
            skipped.append((path.name, "not a %s record: %s" % (SCHEMA, "; ".join(problems[:3]))))
            continue
        records.append(data)
    return records, skipped


def csv_text(records) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([h for h, _ in CSV_COLUMNS])
    for rec in sorted(records, key=lambda r: (r.get("network", ""), r.get("app", ""), r.get("strategy", ""),
                                              dig(r, "experiment.rep") or 0, attempt_of(r))):
        row = []
        for _, path in CSV_COLUMNS:
            value = dig(rec, path)
            row.append("" if value is None else value)
        writer.writerow(row)
    return out.getvalue()


def write_atomic(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_csv(results_dir) -> Path:
    records, _ = load_records(results_dir)
    path = Path(results_dir) / "results.csv"
    write_atomic(path, csv_text(records))
    return path
