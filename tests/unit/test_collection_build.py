"""`ansible-galaxy collection build` makes an installable artifact of the repository root."""

import subprocess
import tarfile
import json

from labutil import ROOT, venv_bin


def test_collection_builds_and_installs(tmp_path):
    out = tmp_path / "dist"
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    (artifact,) = out.glob("mec-migration-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["namespace"] == "mec"
    assert manifest["collection_info"]["name"] == "migration"
    for path in ("plugins/modules/lab_host.py", "plugins/module_utils/docker_client.py",
                 "roles/docker_engine/tasks/main.yml", "roles/criu/tasks/main.yml", "playbooks/lab.yml",
                 "meta/runtime.yml"):
        assert path in names
    assert not any(n.startswith((".venv", ".build", "inventories/local", "results/", ".ruff_cache", ".hypothesis"))
                   for n in names)

    installed = tmp_path / "installed"
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "install", "--force", str(artifact),
                    "-p", str(installed)],
                   check=True, capture_output=True, text=True, timeout=300)
    assert (installed / "ansible_collections" / "mec" / "migration" / "plugins" / "modules" / "lab_host.py").exists()
