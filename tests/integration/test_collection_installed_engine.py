"""The collection as users get it: built (`ansible-galaxy collection build`), installed into a collections path,
and its migrate playbook run by FQCN from another directory. It stops at the preflight on a missing app (nothing
changes) and writes its record under ./results of the directory it ran in, not inside the installed collection."""
import json
import os
import subprocess
import sys

import pytest

from labtools import ROOT

pytestmark = pytest.mark.docker


def _tool(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name


def test_installed_migrate_playbook_writes_its_record_in_the_current_directory(docker_client, tmp_path, unique):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # run outside the checkout: its ansible.cfg would find the collection already "installed" in .build/
    subprocess.run([_tool("ansible-galaxy"), "collection", "build", ROOT, "--output-path", str(tmp_path / "dist")],
                   check=True, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    (artifact,) = (tmp_path / "dist").glob("mec-migration-*.tar.gz")
    collections = tmp_path / "collections"
    subprocess.run([_tool("ansible-galaxy"), "collection", "install", "--force", str(artifact), "-p", str(collections)],
                   check=True, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    installed = collections / "ansible_collections" / "mec" / "migration"
    assert (installed / "playbooks" / "migrate.yml").is_file()

    # Two "hosts" on this machine's engine (local connection): the app does not exist, so the preflight stops.
    work = tmp_path / "work"
    work.mkdir()
    inventory = work / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"children": {
        "source": {"hosts": {"here-source": dict(host, ansible_host="127.0.0.1")}},
        "target": {"hosts": {"here-target": dict(host, ansible_host="127.0.0.2")}}}}}))
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PWD=str(work))
    extra = {"app": unique, "strategy": "m2", "migration_state_root": str(work / "state"),
             "migration_work_root": str(work / "tmp")}
    proc = subprocess.run([_tool("ansible-playbook"), "-i", str(inventory), "mec.migration.migrate",
                           "-e", json.dumps(extra)],
                          cwd=str(work), capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "stopped before any change" in out, out[-4000:]

    records = list((work / "results").glob("*-%s-m2-*.json" % unique))
    assert len(records) == 1, (sorted(os.listdir(str(work))), out[-3000:])
    record = json.loads(records[0].read_text())
    assert (record["app"], record["status"]) == (unique, "failed")
    assert not (installed / "results").exists()
    assert not (collections / "results").exists()
