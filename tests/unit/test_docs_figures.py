"""A doc and its data cannot drift apart: every figure a doc quotes under a marker is recomputed from its results file.

A marker is an HTML comment (invisible when rendered) right before the table or paragraph that quotes figures::

    <!-- figures: benchmarks/results/stream-encrypt.json
    summary.ratio_50M.median: 1.21
    median(runs[*].encrypted_s): 0.53
    summary.served_locally*100: 97.5
    -->
    | size | plain | encrypted | ratio |
    | 50 MB | 0.44 s | 0.53 s | 1.21x |

Each line is ``EXPRESSION: SHOWN``. EXPRESSION is a path into the results file (``summary.x.median``, list indices
``runs[0].t``, every element ``runs[*].t``), optionally inside ``median``/``min``/``max``/``mean``/``sum``/``n``,
optionally times a factor (``*100`` for percentages). The check recomputes the expression from the file, rounds it to
SHOWN's decimals and compares; and SHOWN must appear in the text that follows the marker (up to the next marker or
heading), so that the table cannot be edited away from its marker either. Every results file a doc names must exist
and be a complete results file (tests/benchmarks/results_file.py).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER_RE = re.compile(r"<!--\s*figures:\s*(?P<file>\S+)\s*\n(?P<body>.*?)-->", re.S)
LINE_RE = re.compile(r"^\s*(?P<expr>[^:#][^:]*?)\s*:\s*(?P<shown>-?\d+(?:\.\d+)?)\s*$")
EXPR_RE = re.compile(r"^(?:(?P<func>median|min|max|mean|sum|n)\((?P<inner>[^()]+)\)|(?P<path>[^()]+?))"
                     r"(?:\s*\*\s*(?P<factor>\d+(?:\.\d+)?))?$")
FUNCS = {"median": statistics.median, "min": min, "max": max, "mean": statistics.mean, "sum": sum, "n": len}
REQUIRED_KEYS = ("name", "command", "commit", "dirty", "cores", "loadavg_before", "loadavg_after", "started_at",
                 "finished_at", "runs", "summary")
RESULTS_REF_RE = re.compile(r"benchmarks/results/[a-z0-9][a-z0-9_.-]*\.json")  # the names write_results allows
FENCE_RE = re.compile(r"^```.*?^```", re.S | re.M)


def without_code(text):
    """The text with its fenced code blocks blanked (same line numbers): examples there are not markers."""
    return FENCE_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def doc_files(root=ROOT):
    out = subprocess.run(["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    return sorted(p for p in out if (root / p).is_file())


def resolve(doc, path):
    """Values at a dotted path; ``[*]`` fans out over a list. Returns a list (one value unless fanned out)."""
    values = [doc]
    for part in re.findall(r"[^.\[\]]+|\[\*\]|\[-?\d+\]", path.strip()):
        nxt = []
        for v in values:
            if part == "[*]":
                if not isinstance(v, list):
                    raise KeyError("%s: [*] on a %s" % (path, type(v).__name__))
                nxt.extend(v)
            elif part.startswith("["):
                nxt.append(v[int(part[1:-1])])
            else:
                if not isinstance(v, dict) or part not in v:
                    raise KeyError("%s: no key %r" % (path, part))
                nxt.append(v[part])
        values = nxt
    return values


def evaluate(doc, expr):
    m = EXPR_RE.match(expr.strip())
    if not m:
        raise ValueError("cannot read the expression %r" % expr)
    if m.group("func"):
        values = resolve(doc, m.group("inner"))
        if len(values) == 1 and isinstance(values[0], list):
            values = values[0]
        value = FUNCS[m.group("func")](values)
    else:
        values = resolve(doc, m.group("path"))
        if len(values) != 1:
            raise ValueError("%s: %d values; wrap it in median(), n(), ..." % (expr, len(values)))
        value = values[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s: %r is not a number" % (expr, value))
    return value * float(m.group("factor")) if m.group("factor") else value


def check_doc(text, root=ROOT):
    """Every disagreement between the doc's markers, their files and the text after them, one line each."""
    problems = []
    text = without_code(text)
    markers = list(MARKER_RE.finditer(text))
    for i, m in enumerate(markers):
        line_no = text.count("\n", 0, m.start()) + 1
        where = "line %d (%s)" % (line_no, m.group("file"))
        path = root / m.group("file")
        if not m.group("file").startswith("benchmarks/results/") or not path.is_file():
            problems.append("%s: no such results file in benchmarks/results/" % where)
            continue
        doc = json.loads(path.read_text())
        # markers stacked right before one table share the text after the last of them
        j = i + 1
        while j < len(markers) and not text[markers[j - 1].end():markers[j].start()].strip():
            j += 1
        end = markers[j].start() if j < len(markers) else len(text)
        heading = re.search(r"^#", text[m.end():end], re.M)
        block = text[m.end():m.end() + heading.start()] if heading else text[m.end():end]
        lines = [ln for ln in m.group("body").splitlines() if ln.strip()]
        if not lines:
            problems.append("%s: the marker names no figure" % where)
        for ln in lines:
            lm = LINE_RE.match(ln)
            if not lm:
                problems.append("%s: cannot read %r (EXPRESSION: NUMBER)" % (where, ln.strip()))
                continue
            expr, shown = lm.group("expr"), lm.group("shown")
            try:
                value = evaluate(doc, expr)
            except (KeyError, IndexError, ValueError, TypeError, statistics.StatisticsError) as exc:
                problems.append("%s: %s" % (where, exc))
                continue
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            if round(value, decimals) != round(float(shown), decimals):
                problems.append("%s: %s is %s in the file, the doc says %s" % (where, expr, round(value, decimals + 2),
                                                                               shown))
            if not re.search(r"(?<![\d.])%s(?![\d])" % re.escape(shown), block):
                problems.append("%s: %s (%s) does not appear in the text after the marker" % (where, expr, shown))
    return problems


def results_file_problems(path):
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        return ["%s: not JSON (%s)" % (path.name, exc)]
    problems = ["%s: no %s" % (path.name, k) for k in REQUIRED_KEYS if k not in doc]
    if doc.get("name") != path.stem:
        problems.append("%s: name %r is not the file's name" % (path.name, doc.get("name")))
    if not doc.get("runs"):
        problems.append("%s: no raw runs" % path.name)
    if not doc.get("commit"):
        problems.append("%s: no commit" % path.name)
    for key, s in (doc.get("summary") or {}).items():
        if isinstance(s, dict) and {"median", "min", "max", "n"} <= set(s) and s["n"]:
            if not s["min"] <= s["median"] <= s["max"]:
                problems.append("%s: summary %s has min <= median <= max broken" % (path.name, key))
    return problems


DOCS = doc_files()


@pytest.mark.parametrize("doc", DOCS)
def test_doc_figures_match_their_results_files(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    problems = check_doc(text)
    for ref in sorted(set(RESULTS_REF_RE.findall(without_code(text)))):
        if not (ROOT / ref).is_file():
            problems.append("names %s, which does not exist" % ref)
    assert problems == [], "%s:\n  " % doc + "\n  ".join(problems)


def test_results_files_are_complete():
    files = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    problems = [p for path in files for p in results_file_problems(path)]
    assert problems == []


# The checker itself, on a crafted doc and file: each kind of drift is found.
FIXTURE = {"name": "demo", "command": ["x"], "commit": "0" * 40, "dirty": False, "cores": 2,
           "loadavg_before": [1, 1, 1], "loadavg_after": [1, 1, 1], "started_at": "t", "finished_at": "t",
           "runs": [{"t": 1.0}, {"t": 2.0}, {"t": 4.0}],
           "summary": {"t": {"median": 2.0, "min": 1.0, "max": 4.0, "n": 3}, "ratio": 1.2345, "share": 0.975}}

GOOD = """# Figures
<!-- figures: benchmarks/results/demo.json
summary.t.median: 2.00
median(runs[*].t): 2.00
max(runs[*].t): 4
n(runs): 3
summary.ratio: 1.23
summary.share*100: 97.5
-->
| t median [min-max] | ratio | served locally | runs |
| --- | --- | --- | --- |
| 2.00 s [1-4] | 1.23x | 97.5 % | 3 |
"""


@pytest.fixture
def demo_root(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "demo.json").write_text(json.dumps(FIXTURE))
    return tmp_path


def test_checker_accepts_a_doc_that_matches(demo_root):
    assert check_doc(GOOD, demo_root) == []
    assert results_file_problems(demo_root / "benchmarks" / "results" / "demo.json") == []


@pytest.mark.parametrize("old, new, expected", [
    ("| 2.00 s [1-4] | 1.23x | 97.5 % |", "| 2.00 s [1-4] | 1.40x | 97.5 % |", "1.23) does not appear"),
    ("summary.ratio: 1.23\n", "summary.ratio: 1.40\n", "summary.ratio is 1.2345 in the file, the doc says 1.40"),
    ("summary.share*100: 97.5", "summary.share*100: 59.2", "the doc says 59.2"),
    ("median(runs[*].t): 2.00", "median(runs[*].x): 2.00", "no key 'x'"),
    ("demo.json", "missing.json", "no such results file"),
    ("summary.ratio: 1.23", "summary.ratio 1.23", "cannot read"),
    ("runs[*].t): 2.00", "runs[*].t): 2.00\nruns[*].t: 2.00", "3 values"),
])
def test_checker_finds_drift(demo_root, old, new, expected):
    doc = GOOD.replace(old, new)
    assert doc != GOOD
    problems = check_doc(doc, demo_root)
    assert any(expected in p for p in problems), problems


def test_stacked_markers_share_the_table_after_them(demo_root):
    (demo_root / "benchmarks" / "results" / "other.json").write_text(json.dumps(dict(FIXTURE, name="other",
                                                                                     summary={"x": 7.5})))
    doc = GOOD.replace("-->\n|", "-->\n<!-- figures: benchmarks/results/other.json\nsummary.x: 7.5\n-->\n|", 1)
    doc = doc.replace("| 3 |\n", "| 3 | 7.5 |\n")
    assert check_doc(doc, demo_root) == []
    # a marker followed by text before the next marker does not reach past it
    separated = doc.replace("-->\n<!-- figures: benchmarks/results/other.json", "-->\nsome text\n"
                            "<!-- figures: benchmarks/results/other.json")
    assert any("does not appear" in p for p in check_doc(separated, demo_root))


def test_checker_finds_changed_data(demo_root):
    changed = dict(FIXTURE, runs=[{"t": 1.0}, {"t": 3.0}, {"t": 4.0}])
    (demo_root / "benchmarks" / "results" / "demo.json").write_text(json.dumps(changed))
    assert check_doc(GOOD, demo_root) == ["line 2 (benchmarks/results/demo.json): median(runs[*].t) is 3.0 in the "
                                          "file, the doc says 2.00"]


def test_incomplete_results_file_is_found(demo_root):
    path = demo_root / "benchmarks" / "results" / "demo.json"
    path.write_text(json.dumps(dict(FIXTURE, runs=[], commit=None, summary={"t": {"median": 5, "min": 1, "max": 4,
                                                                                  "n": 3}})))
    assert results_file_problems(path) == ["demo.json: no raw runs", "demo.json: no commit",
                                           "demo.json: summary t has min <= median <= max broken"]
