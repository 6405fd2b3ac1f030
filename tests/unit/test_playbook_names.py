"""One name per thing in the migration's playbooks and its role roles/migration (docs/migration.md, "Variables"):
every input is migration_<thing>; the short command-line forms (app, strategy, ...) are read only where the input
is defined from them, and the source container has one name. Reads the playbooks' Jinja (expressions in {{ }}, {% %} and
the bare conditions of when/that/failed_when/changed_when/until), not their keys, strings or comments."""

import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ROLE = "roles/migration"
ROLE_DIRS = (os.path.join(ROOT, ROLE, "tasks"), os.path.join(ROOT, ROLE, "vars", "main"))
PLAYBOOKS = ["playbooks/migrate.yml", "playbooks/recover.yml", ROLE + "/defaults/main.yml"] + sorted(
    os.path.join(d, f)[len(ROOT) + 1:] for d in ROLE_DIRS for f in os.listdir(d) if f.endswith(".yml"))
SHORT = {"app", "strategy", "transfer", "network_label", "results_dir", "run_id", "start_command", "import_changes",
         "app_phase_url", "state_check_command", "state_check_url"}
OLD_NAMES = {"_source", "_src", "_src_info", "_src_app", "migration_state_check_cmd"}
TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[A-Za-z_][A-Za-z0-9_]*|\S")
BARE = re.compile(r"^\s*(?:- )?(?:when|failed_when|changed_when|until|that):\s*(.*)$")
# where a short form may be read: the input defined from it, and the run id fixed from run_id
DEFINES = re.compile(r"^\s*migration_(\w+): \"\{\{ (\w+) \| default\(")


def identifiers(expr):
    """The bare identifiers of a Jinja expression (not attributes, not inside quotes)."""
    prev = ""
    for tok in TOKEN.findall(expr):
        if re.match(r"[A-Za-z_]", tok) and prev != ".":
            yield tok
        prev = tok


def expressions(text):
    """(line number, line, expression) of every Jinja expression of a playbook."""
    lines = text.split("\n")
    for m in re.finditer(r"(?:\{\{|\{%)(.*?)(?:\}\}|%\})", text, re.S):
        start = text.count("\n", 0, m.start())
        if not lines[start].lstrip().startswith("#"):
            yield start + 1, lines[start], m.group(1)
    bare_indent = None
    for no, line in enumerate(lines, 1):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if bare_indent is not None and stripped and indent > bare_indent and not stripped.startswith("#"):
            if "{{" not in stripped:
                yield no, line, stripped.lstrip("- ")
            continue
        bare_indent = None
        m = BARE.match(line)
        if m and "{{" not in m.group(1):
            if m.group(1) in ("", ">-", ">"):
                bare_indent = indent
            else:
                yield no, line, m.group(1)


def misuses(text):
    found = []
    for no, line, expr in expressions(text):
        for name in identifiers(expr):
            if name in OLD_NAMES:
                found.append("%d: %s (old name)" % (no, name))
            elif name in SHORT:
                m = DEFINES.match(line)
                if (m and m.group(1) == m.group(2) == name) or (name == "run_id" and "run_id | default(" in line):
                    continue
                found.append("%d: %s (short form outside its definition)" % (no, name))
    return found


@pytest.mark.parametrize("path", PLAYBOOKS)
def test_playbooks_use_one_name_per_thing(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        assert misuses(handle.read()) == []


def test_every_short_form_defines_its_input():
    """The role's defaults define each input from its short form (the run id too: migration_input fixes it)."""
    with open(os.path.join(ROOT, ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        defined = {m.group(2) for m in map(DEFINES.match, handle.read().split("\n")) if m and m.group(1) == m.group(2)}
    assert defined == SHORT


@pytest.mark.parametrize("text, expected", [
    ('    name: "{{ app }}"', ["1: app (short form outside its definition)"]),
    ("  when: state_check_url | length > 0", ["1: state_check_url (short form outside its definition)"]),
    ("  that:\n    - transfer in migration_transfers", ["2: transfer (short form outside its definition)"]),
    ('    x: "{{ _src_info.mounts }}"', ["1: _src_info (old name)"]),
    ('    migration_app: "{{ app | default(none) }}"', []),
    ("    msg: \"{{ 'app=' ~ migration_app ~ x.app }}\"", []),
    ("    # {{ app }} in a comment", []),
])
def test_the_check_finds_a_misuse(text, expected):
    assert misuses(text) == expected
