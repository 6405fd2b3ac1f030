"""Every role has a short README (STYLE 16) that names its variables' prefix and where they are described."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme(role):
    readme = ROOT / "roles" / role / "README.md"
    assert readme.is_file(), "roles/%s has no README.md (what it does, its variables, an example, its tests)" % role
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# mec.migration.%s\n" % role), "roles/%s/README.md: the title is the role's FQCN" % role
    assert "meta/argument_specs.yml" in text, "roles/%s/README.md: say where the variables are described" % role
