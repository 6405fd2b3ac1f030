"""README.md's layout table names every module, action plugin, module_utils file, role, playbook, event source,
rulebook, app, test folder, script and doc of the collection, and nothing that is not there.

Each checked row of the table (the section "## Layout") has its folder in backticks in the first cell and the items
in backticks in the second; items are compared with the checkout's files (tracked or new, not ignored) both ways.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]


def checkout_files(root=ROOT):
    out = subprocess.run(["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    return [PurePosixPath(p) for p in out if (root / p).exists()]


def layout_rows(readme):
    """{folder in the first cell: [backticked items of the second cell]} of the layout table."""
    m = re.search(r"^## Layout.*?\n(.*?)(?=^## )", readme, re.S | re.M)
    assert m, "README.md has no '## Layout' section"
    rows = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        for key in re.findall(r"`([^`]+)`", cells[0]):
            rows[key] = re.findall(r"`([^`]+)`", cells[1])
    return rows


def expected(files):
    """What each checked row must name, from the checkout's files."""
    def under(folder, depth=None, suffix=None):
        out = set()
        for f in files:
            parts = f.parts
            n = len(PurePosixPath(folder).parts)
            if parts[:n] != PurePosixPath(folder).parts or len(parts) <= n:
                continue
            rest = parts[n:]
            if depth == "dirs":
                if len(rest) > 1:
                    out.add(rest[0] + "/")
            elif len(rest) == 1 and (suffix is None or rest[0].endswith(suffix)):
                out.add(rest[0])
        return out

    def stems(names):
        return {n.rsplit(".", 1)[0] for n in names if not n.startswith("__init__")}

    return {
        "plugins/modules/": stems(under("plugins/modules", suffix=".py")),
        "plugins/action/": stems(under("plugins/action", suffix=".py")),
        "plugins/module_utils/": under("plugins/module_utils", suffix=".py") - {"__init__.py"},
        "plugins/doc_fragments/": under("plugins/doc_fragments", suffix=".py") - {"__init__.py"},
        "roles/": {d.rstrip("/") for d in under("roles", depth="dirs")},
        "playbooks/": under("playbooks", suffix=".yml")
        | {"tasks/" + n for n in under("playbooks/tasks", suffix=".yml")}
        | {"vars/" + n for n in under("playbooks/vars", suffix=".yml")},
        "extensions/eda/": {n for n in stems(under("extensions/eda/plugins/event_source", suffix=".py"))
                            if not n.startswith("_")}
        | {"rulebooks/" + n for n in under("extensions/eda/rulebooks", suffix=".yml")},
        "apps/": {d.rstrip("/") for d in under("apps", depth="dirs")},
        "tests/": under("tests", depth="dirs") - {"__pycache__/"},
        "scripts/": under("scripts"),
        "docs/": under("docs", suffix=".md") | ({"notebook/"} if under("docs/notebook") else set()),
    }


def compare(rows, want, root=ROOT):
    problems = []
    for folder, items in sorted(want.items()):
        if folder not in rows:
            problems.append("no row for `%s`" % folder)
            continue
        named = set()
        for item in rows[folder]:
            # a deeper path in a row only has to exist (below the row's folder or the repository root)
            if item.count("/") > (1 if item.endswith("/") else 0) and item not in items:
                if not ((root / folder / item).exists() or (root / item).exists()
                        or any((root / folder).glob("**/" + item))):
                    problems.append("`%s` row names `%s`, which does not exist" % (folder, item))
                continue
            named.add(item)
        for missing in sorted(items - named):
            problems.append("`%s` row misses `%s`" % (folder, missing))
        for stale in sorted(named - items):
            problems.append("`%s` row names `%s`, which is not there" % (folder, stale))
    return problems


def top_level_problems(rows, files):
    """Every top-level folder of the collection has a row (or is a row's parent), and every row's folder exists."""
    problems = []
    tops = {f.parts[0] for f in files if len(f.parts) > 1 and not f.parts[0].startswith(".")}
    keys = set(rows)
    for top in sorted(tops):
        if not any(k == top + "/" or k.startswith(top + "/") for k in keys):
            problems.append("no row for the folder `%s/`" % top)
    for key in sorted(keys):
        if not (ROOT / key).exists():
            problems.append("a row names `%s`, which does not exist" % key)
    return problems


def test_readme_layout_names_everything_there_is():
    files = checkout_files()
    rows = layout_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    problems = compare(rows, expected(files)) + top_level_problems(rows, files)
    assert problems == [], "README.md's layout table:\n  " + "\n  ".join(problems)


# The checker itself: a table that misses an item, names a removed one, or lacks a row is found.
TABLE = """## Layout

| path | what it holds |
| --- | --- |
| `plugins/modules/` | `a`, `b` |
| `docs/` | `x.md`, `notebook/` |

## Next
"""


@pytest.mark.parametrize("table, expected_problem", [
    (TABLE, None),
    (TABLE.replace("`a`, `b`", "`a`"), "`plugins/modules/` row misses `b`"),
    (TABLE.replace("`a`, `b`", "`a`, `b`, `c`"), "`plugins/modules/` row names `c`, which is not there"),
    (TABLE.replace("| `docs/` | `x.md`, `notebook/` |\n", ""), "no row for `docs/`"),
    (TABLE.replace("`notebook/`", "`notebook/`, `notebook/nothing.md`"),
     "`docs/` row names `notebook/nothing.md`, which does not exist"),
])
def test_checker_finds_what_the_table_misses(tmp_path, table, expected_problem):
    want = {"plugins/modules/": {"a", "b"}, "docs/": {"x.md", "notebook/"}}
    problems = compare(layout_rows(table), want, root=tmp_path)
    assert problems == ([] if expected_problem is None else [expected_problem])


def test_expected_reads_the_files():
    files = [PurePosixPath(p) for p in ("plugins/modules/m.py", "plugins/modules/__init__.py", "roles/r/tasks/main.yml",
                                        "playbooks/p.yml", "playbooks/tasks/t.yml", "docs/d.md", "docs/notebook/n.md",
                                        "docs/fig.png", "extensions/eda/plugins/event_source/_private.py",
                                        "extensions/eda/plugins/event_source/src.py")]
    want = expected(files)
    assert want["plugins/modules/"] == {"m"}
    assert want["roles/"] == {"r"}
    assert want["playbooks/"] == {"p.yml", "tasks/t.yml"}
    assert want["docs/"] == {"d.md", "notebook/"}
    assert want["extensions/eda/"] == {"src"}
