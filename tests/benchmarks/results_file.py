"""Raw benchmark results in the committed folder ``benchmarks/results/``.

Every benchmark whose figures a doc quotes writes one JSON file per named measurement::

    from results_file import start, summarize, write_results   # tests/benchmarks/ is on sys.path for its scripts

    start()                                   # optional: the clock and load average start at import otherwise
    runs = [...]                              # raw values, one per run (numbers, or dicts of numbers)
    path = write_results("stream-encrypt-50M", runs,
                         {"encrypted_s": summarize([r["enc"] for r in runs]), "ratio": ratio},
                         extra={"size_bytes": 50 * 2**20})

The file ``benchmarks/results/<name>.json`` holds::

    {name, command (sys.argv), commit (git HEAD), dirty (true when the tree had changes), dirty_paths,
     cores (os.cpu_count()), loadavg_before, loadavg_after ([1, 5, 15] min), started_at, finished_at (UTC, ISO 8601),
     runs: [raw per-run values], summary: {...}, extra: {...}}

A doc table that quotes a figure names this file and the summary key in a marker comment;
``tests/unit/test_docs_figures.py`` reads the file again and compares.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "benchmarks" / "results"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
DIRTY_PATHS_MAX = 50

_start = {}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def start():
    """Mark the start of the measurement: the load average and the clock. Called at import; call it again
    right before the first run when setting up takes a while. Returns what it recorded."""
    _start.clear()
    _start.update(loadavg_before=_loadavg(), started_at=_now())
    return dict(_start)


def summarize(values):
    """Median, min, max and count of a list of numbers. An empty list gives None figures and n = 0 (a
    benchmark whose runs all failed still writes its file; the doc check refuses None)."""
    values = list(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError("summarize: %r is not a finite number" % (v,))
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _git(*args):
    try:
        p = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def git_state():
    """(commit, dirty, dirty_paths) of the checkout the benchmark runs from; commit None outside git."""
    head = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    paths = [line[3:] for line in (status or "").splitlines() if line.strip()]
    return (head.strip() if head else None), bool(paths), paths[:DIRTY_PATHS_MAX]


MEASURED_KEYS = ("command", "commit", "dirty", "dirty_paths", "started_at", "finished_at", "loadavg_before",
                 "loadavg_after")


def write_results(name, runs, summary, extra=None, results_dir=None, measured=None):
    """Write ``<results_dir>/<name>.json`` (default ``benchmarks/results/``) and return its path.

    ``runs`` are the raw per-run values, ``summary`` what the docs quote (e.g. ``summarize(...)`` per figure),
    ``extra`` anything else that describes the setting (sizes, hosts, strategy). The file is replaced atomically;
    values must be plain JSON (no NaN or infinity).

    ``measured`` is for results assembled after the fact from a measurement's own files (e.g. drives run from
    another checkout): it gives that measurement's ``command``, ``commit``, ``dirty``, ``started_at``,
    ``finished_at``, ``loadavg_before``/``loadavg_after`` instead of this process's; the file then also says
    ``assembled_by`` (this command) and ``assembled_at``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError("write_results: name %r must match %s (it becomes a file name)" % (name, NAME_RE.pattern))
    if not isinstance(summary, dict):
        raise TypeError("write_results: summary must be a dict, got %s" % type(summary).__name__)
    if not _start:
        start()
    commit, dirty, dirty_paths = git_state()
    doc = {
        "name": name,
        "command": list(sys.argv),
        "commit": commit,
        "dirty": dirty,
        "dirty_paths": dirty_paths,
        "cores": os.cpu_count(),
        "loadavg_before": _start["loadavg_before"],
        "loadavg_after": _loadavg(),
        "started_at": _start["started_at"],
        "finished_at": _now(),
        "runs": list(runs),
        "summary": summary,
        "extra": extra or {},
    }
    if measured:
        unknown = set(measured) - set(MEASURED_KEYS)
        if unknown:
            raise ValueError("write_results: measured may only give %s, not %s" % (", ".join(MEASURED_KEYS),
                                                                                   ", ".join(sorted(unknown))))
        doc["assembled_by"], doc["assembled_at"] = doc["command"], doc["finished_at"]
        doc.update(measured)
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name + ".json")
    tmp = folder / (".%s.json.tmp%d" % (name, os.getpid()))
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def load_results(name_or_path, results_dir=None):
    """Read a results file back (by name or path)."""
    p = Path(name_or_path)
    if p.suffix != ".json":
        p = (Path(results_dir) if results_dir is not None else RESULTS_DIR) / (str(name_or_path) + ".json")
    return json.loads(p.read_text())


start()
