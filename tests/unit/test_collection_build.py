"""`ansible-galaxy collection build` makes a clean, installable artifact of the repository root.

Clean: it holds the collection's own files and nothing a checkout accumulates locally. No private key (the labs
write theirs under inventories/local and inventories/zones), no inventory with real addresses (only documentation
addresses, RFC 5737), no run results (results/ folders; the committed evidence benchmarks/results/ ships, and only its
tracked files), no caches (__pycache__, .pytest_cache, .ansible, .venv, ...). galaxy.yml's build_ignore is what keeps
them out; the first test plants such files into a copy of the checkout and fails if any of them ships.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import PurePosixPath

from labutil import ROOT, venv_bin

# Written in two pieces so that this file does not itself hold the marker it looks for.
KEY_MARKER = b"PRIVATE" + b" KEY"
ADDRESS_RE = re.compile(rb"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                        "127.0.0.0/8", "0.0.0.0/32")]
INVENTORY_NAMES = re.compile(r"(^|/)(hosts(\.ya?ml|\.ini)?|inventory[^/]*|known_hosts)$")
CACHE_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", ".cache", ".venv",
               ".build", ".ansible", ".tox", ".nox", ".molecule", "htmlcov", ".git"}
EVIDENCE = "benchmarks/results/"
GENERATED = {"MANIFEST.json", "FILES.json"}

FAKE_KEY = (b"-----BEGIN OPENSSH " + KEY_MARKER + b"-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
            b"-----END OPENSSH " + KEY_MARKER + b"-----\n")
# What a checkout accumulates: the labs' inventories and keys, run records and logs, tool caches, a built artifact.
PLANTED = {
    "inventories/zones/id_ed25519": FAKE_KEY,
    "inventories/zones/hosts.yml": b"all:\n  hosts:\n    mec-zone-1:\n      ansible_host: 172.30.79.11\n",
    "inventories/zones/known_hosts": b"172.30.79.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake\n",
    "inventories/local/id_ed25519": FAKE_KEY,
    "inventories/local/hosts.yml": b"all:\n  hosts:\n    mec-lab-source:\n      ansible_host: 172.30.77.11\n",
    "inventories/example/id_ed25519": FAKE_KEY,
    "lab.pem": FAKE_KEY,
    ".ansible/tmp/ansible-local-1/x": b"x",
    ".ansible/collections/ansible_collections/x": b"x",
    "results/20261206T210014Z-9ab00369-a2-m2-lab.json": b"{}",
    "results/pytest.log": b"log",
    "results/drive/20261127T183354Z-reactive/timeline.jsonl": b"{}",
    "apps/mec_experiment/results/runs/x.json": b"{}",
    "tests/integration/results/fault_campaign.json": b"{}",
    "tests/output/junit/x.xml": b"x",
    "playbooks/migrate.retry": b"x",
    ".venv/bin/python": b"x",
    ".build/collections/ansible_collections/mec/x": b"x",
    ".pytest_cache/v/cache/lastfailed": b"{}",
    ".ruff_cache/0.9/x": b"x",
    ".mypy_cache/x": b"x",
    ".hypothesis/examples/x": b"x",
    ".cache/x": b"x",
    ".coverage": b"x",
    "htmlcov/index.html": b"x",
    "plugins/modules/__pycache__/app_phase.cpython-311.pyc": b"x",
    "plugins/module_utils/stray.pyc": b"x",
    "tests/unit/__pycache__/x.cpython-311-pytest-8.pyc": b"x",
    "roles/criu/molecule/default/.molecule/state.yml": b"x",
    "mec-migration-0.1.0.tar.gz": b"x",
    "docs/drive_timeline_ahead.png.tmp": b"x",
    "playbooks/.migrate.yml.swp": b"x",
}


def checkout_files():
    """The checkout's files as scripts/test.sh copies them: tracked and new (not ignored), that exist."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    return {p for p in out if (ROOT / p).is_file()}


def build(src, out):
    out.mkdir()
    p = subprocess.run([venv_bin("ansible-galaxy"), "collection", "build", str(src), "--output-path", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    (artifact,) = out.glob("mec-migration-*.tar.gz")
    return artifact


def members(artifact):
    with tarfile.open(artifact) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def findings(files, tracked):
    """What must not ship, one line each."""
    found = []
    for name, data in sorted(files.items()):
        parts = PurePosixPath(name).parts
        if KEY_MARKER in data:
            found.append("%s: holds a private key" % name)
        if name.startswith("inventories/") or INVENTORY_NAMES.search(name):
            real = sorted({a.decode() for a in ADDRESS_RE.findall(data)
                           if not any(ipaddress.ip_address(a.decode()) in n for n in DOCUMENTATION_NETS)})
            if real:
                found.append("%s: an inventory with real addresses %s" % (name, ", ".join(real)))
        if name.startswith(EVIDENCE):
            if name not in tracked:
                found.append("%s: in benchmarks/results/ but not in git (an uncommitted result)" % name)
        elif "results" in parts[:-1]:
            found.append("%s: run results" % name)
        if CACHE_PARTS & set(parts) or name.endswith((".pyc", ".retry", ".log")) or name.startswith("tests/output/"):
            found.append("%s: a cache or local tool file" % name)
    return found


def test_local_and_generated_files_stay_out_of_the_artifact(tmp_path):
    """A copy of the checkout with the files a checkout accumulates planted into it: none of them ships."""
    src = tmp_path / "src"
    copied = checkout_files()
    for rel in copied:
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    for rel, data in PLANTED.items():
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    files = members(build(src, tmp_path / "dist"))
    shipped = sorted(set(PLANTED) & set(files))
    assert not shipped, "galaxy.yml build_ignore lets local or generated files into the artifact: %s" % shipped
    strays = sorted(set(files) - copied - GENERATED)
    assert not strays, "the artifact holds files that are not the checkout's own: %s" % strays
    assert findings(files, copied) == []


def test_checkout_builds_a_clean_artifact_that_installs(tmp_path):
    artifact = build(ROOT, tmp_path / "dist")
    files = members(artifact)
    tracked = set(subprocess.run(["git", "-C", str(ROOT), "ls-files"], check=True, capture_output=True,
                                 text=True).stdout.splitlines())
    assert findings(files, tracked) == []

    info = json.loads(files["MANIFEST.json"])["collection_info"]
    assert (info["namespace"], info["name"], info["license"]) == ("mec", "migration", ["Apache-2.0"])
    for key in ("repository", "documentation", "homepage", "issues"):  # no made-up address
        assert not info[key] or "example" not in info[key], "%s: %s" % (key, info[key])
    license_text = files["LICENSE"].decode()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text and len(license_text) > 10000  # the full text
    for path in ("plugins/modules/lab_host.py", "plugins/module_utils/docker_client.py",
                 "roles/docker_engine/tasks/main.yml", "roles/criu/tasks/main.yml", "playbooks/lab.yml",
                 "playbooks/migrate.yml", "meta/runtime.yml", "README.md", "inventories/example/hosts.yml"):
        assert path in files, path

    installed = tmp_path / "installed"
    p = subprocess.run([venv_bin("ansible-galaxy"), "collection", "install", "--force", str(artifact),
                        "-p", str(installed)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (installed / "ansible_collections" / "mec" / "migration" / "plugins" / "modules" / "lab_host.py").exists()


def test_findings_name_each_kind():
    """The checker itself: each kind of stray content is found (and documentation addresses are not)."""
    files = {
        "inventories/zones/id_ed25519": FAKE_KEY,
        "inventories/mylab/hosts.yml": b"ansible_host: 10.1.2.3\n",
        "inventories/example/hosts.yml": b"ansible_host: 192.0.2.11\n",
        "results/x.json": b"{}",
        "benchmarks/results/untracked.json": b"{}",
        "benchmarks/results/tracked.json": b"{}",
        "plugins/__pycache__/x.pyc": b"",
    }
    assert findings(files, {"benchmarks/results/tracked.json"}) == [
        "benchmarks/results/untracked.json: in benchmarks/results/ but not in git (an uncommitted result)",
        "inventories/mylab/hosts.yml: an inventory with real addresses 10.1.2.3",
        "inventories/zones/id_ed25519: holds a private key",
        "plugins/__pycache__/x.pyc: a cache or local tool file",
        "results/x.json: run results",
    ]
