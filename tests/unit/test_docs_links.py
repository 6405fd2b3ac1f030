"""Every relative link and image of the docs points to a file that is there (docs move between the reference and the
lab notebook; a link left behind is found here)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK_RE = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE_RE = re.compile(r"^```.*?^```", re.S | re.M)


def doc_files():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    return sorted(p for p in out if (ROOT / p).is_file())


def broken_links(doc_path, text, root=ROOT):
    broken = []
    for target in LINK_RE.findall(FENCE_RE.sub("", text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        path = target.split("#", 1)[0]
        if not (root / doc_path).parent.joinpath(path).exists():
            broken.append(target)
    return broken


@pytest.mark.parametrize("doc", doc_files())
def test_relative_links_resolve(doc):
    assert broken_links(doc, (ROOT / doc).read_text(encoding="utf-8")) == []


def test_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "docs" / "notebook").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("x")
    text = ("[ok](a.md) [ok too](notebook/) ![gone](old.png) [anchor](#x) [web](https://example.org/x) "
            "[moved](drive.md#figures)\n```\n[in code](nothing.md)\n```\n")
    assert broken_links("docs/b.md", text, root=tmp_path) == ["old.png", "drive.md#figures"]
