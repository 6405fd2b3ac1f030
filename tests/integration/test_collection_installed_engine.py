"""The collection as users get it: built (`ansible-galaxy collection build`), installed into a collections path,
and its migrate playbook run by FQCN from another directory. It stops at the preflight on a missing app (nothing
changes) and writes its record under ./results of the directory it ran in, not inside the installed collection.
On the local lab (test_installed_collection_migrates_m1_m2_m3_on_the_lab): the installed mec.migration.migrate,
run from a folder without the checkout's ansible.cfg, moves a counter app with m1, back with m2 and again with m3,
the counter continuing each time: m1 with ansible-core's linear strategy (-e migration_play_strategy=linear), where
the role's SSH settings (pipelining, one master connection per host) hold there too, m2 and m3 with the play's
default strategy mec.migration.mitogen_linear, which runs them with Mitogen from the installed collection (no
ANSIBLE_STRATEGY_PLUGINS, no ansible.cfg)."""
import json
import os
import subprocess
import sys
import uuid

import pytest

import yaml

from labtools import INVENTORY, ROOT, WORK_ROOT

pytestmark = pytest.mark.docker


def _tool(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name


def _install(tmp_path):
    """(environment without ANSIBLE_* settings, collections path, installed collection): the checkout built and
    installed as a user would, outside the checkout (its ansible.cfg would find the collection in .build/)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    subprocess.run([_tool("ansible-galaxy"), "collection", "build", ROOT, "--output-path", str(tmp_path / "dist")],
                   check=True, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    (artifact,) = (tmp_path / "dist").glob("mec-migration-*.tar.gz")
    collections = tmp_path / "collections"
    subprocess.run([_tool("ansible-galaxy"), "collection", "install", "--force", str(artifact), "-p", str(collections)],
                   check=True, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    installed = collections / "ansible_collections" / "mec" / "migration"
    assert (installed / "playbooks" / "migrate.yml").is_file()
    assert (installed / "roles" / "migration" / "meta" / "argument_specs.yml").is_file()
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return env, collections, installed


def test_installed_migrate_playbook_writes_its_record_in_the_current_directory(docker_client, tmp_path, unique):
    env, collections, installed = _install(tmp_path)

    # Two "hosts" on this machine's engine (local connection): the app does not exist, so the preflight stops.
    work = tmp_path / "work"
    work.mkdir()
    inventory = work / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"children": {
        "source": {"hosts": {"here-source": dict(host, ansible_host="127.0.0.1")}},
        "target": {"hosts": {"here-target": dict(host, ansible_host="127.0.0.2")}}}}}))
    env.update(PWD=str(work))
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


def _lab_inventory(path, swap=False):
    """The lab's inventory written to ``path`` (another folder) with its key and known_hosts paths made absolute;
    ``swap`` exchanges the groups source and target (to move the app back)."""
    with open(INVENTORY) as fh:
        data = yaml.safe_load(fh)
    lab = data["all"]["children"]["mec_hosts"]
    here = os.path.dirname(os.path.abspath(INVENTORY))
    for key in ("ansible_ssh_private_key_file", "ansible_ssh_common_args"):
        if key in lab.get("vars", {}):
            lab["vars"][key] = lab["vars"][key].replace("{{ inventory_dir }}", here)
    if swap:
        groups = lab["children"]
        groups["source"], groups["target"] = groups["target"], groups["source"]
    path.write_text(yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
    return path


@pytest.mark.lab
def test_installed_collection_migrates_m1_m2_m3_on_the_lab(lab, lab_image, tmp_path):
    """About 1 min: one build and install, three migrations of a counter app (m1 there, m2 back, m3 there again)."""
    src, dst = lab
    if not (src.run(["criu", "check"], check=False).returncode == 0
            and dst.run(["criu", "check"], check=False).returncode == 0):
        pytest.fail("criu check fails on the lab hosts: m3 cannot run")
    env, _collections, _installed = _install(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    forth, back = _lab_inventory(work / "hosts.yml"), _lab_inventory(work / "hosts-back.yml", swap=True)
    name = "mi" + uuid.uuid4().hex[:8]
    run_ids = []
    # run as root (user 0): CRIU on this lab cannot dump another user's process (test_migrate_lab.py's M3_USER)
    src.out(["docker", "run", "-d", "--name", name, "--label", "mec.migration.test=1", "--user", "0",
             "-v", name + "-data:/data", lab_image])
    try:
        where = (src, dst)
        for i, (strategy, inventory) in enumerate((("m1", forth), ("m2", back), ("m3", forth))):
            here, there = where if i % 2 == 0 else where[::-1]
            counted = here.wait_int(name, "/data/count", minimum=3)
            run_ids.append("ti" + uuid.uuid4().hex[:10])
            extra = {"app": name, "strategy": strategy, "run_id": run_ids[-1], "migration_cleanup": True,
                     "migration_port": 47791}
            linear = strategy == "m1"
            if linear:
                extra["migration_play_strategy"] = "linear"
            proc = subprocess.run([_tool("ansible-playbook"), "-i", str(inventory), "mec.migration.migrate", "-vvvv",
                                   "-e", json.dumps(extra)], cwd=str(work), capture_output=True, text=True,
                                  timeout=600, env=dict(env, PWD=str(work)), stdin=subprocess.DEVNULL)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0, out[-4000:]
            (path,) = (work / "results").glob("%s-%s-%s-*.json" % (run_ids[-1], name, strategy))
            record = json.loads(path.read_text())
            assert (record["status"], record["outcome"]) == ("ok", "migrated"), record.get("error")
            # the volume's counter continues on the new host (a fresh volume would count from 1 again); with
            # migration_cleanup=true the host left keeps nothing of the app
            assert there.running(name) and here.inspect(name) is None
            assert there.wait_int(name, "/data/count", minimum=counted + 1) > counted
            if linear:
                # the role's connection settings hold without the checkout's ansible.cfg: modules piped into one
                # persistent SSH master connection per host
                assert "ControlPersist=300s" in out and "ControlMaster=auto" in out, "no persistent SSH connection"
                assert "PUT " not in out, "modules were copied to the hosts: no pipelining"
                assert "the play runs with Mitogen" not in out
            else:
                # Mitogen ran the play (plugins/strategy/mitogen_linear.py says so at -vv), not a silent linear
                # fallback: no warning, and no task used ansible-core's ssh connection (it logs each SSH: EXEC)
                assert "mec.migration.mitogen_linear: the play runs with Mitogen for Ansible" in out, out[-3000:]
                assert "Mitogen for Ansible could not be loaded" not in out
                assert "SSH: EXEC" not in out, "a task ran over ansible-core's ssh connection, not Mitogen's"
    finally:
        for h in (src, dst):
            h.run("docker rm -f %s; docker volume rm -f %s-data; docker images -q 'mec-migration/%s' | xargs -r docker "
                  "rmi -f" % (name, name, name), check=False)
            for rid in run_ids:
                h.run(["rm", "-rf", "%s/%s" % (WORK_ROOT, rid)], check=False)
