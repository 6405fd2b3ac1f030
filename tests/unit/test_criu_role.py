"""Static checks of roles/criu that the lab run cannot show on an already provisioned host: the role works in
root-only folders, trusts no file because it is there (no `creates:` guard), and checks what it installs against
a recorded SHA-256. The behaviour itself is exercised by roles/criu/molecule (a planted binary is replaced, a
squatted build folder stops the role) and by playbooks/provision.yml on the lab."""
import glob
import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ROLE = os.path.join(ROOT, "roles", "criu")


def _tasks():
    out = []

    def walk(tasks, where):
        for task in tasks or []:
            out.append((where, task))
            for key in ("block", "rescue", "always"):
                walk(task.get(key), where)
    for path in sorted(glob.glob(os.path.join(ROLE, "tasks", "*.yml"))):
        with open(path) as fh:
            walk(yaml.safe_load(fh), os.path.basename(path))
    return out


def _defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as fh:
        return yaml.safe_load(fh)


def test_no_task_trusts_a_file_because_it_exists():
    guarded = [(where, task.get("name")) for where, task in _tasks()
               for module, args in task.items() if isinstance(args, dict) and "creates" in args]
    assert guarded == []


def test_build_and_state_folders_are_root_only_places():
    d = _defaults()
    for key in ("criu_build_dir", "criu_state_dir"):
        assert d[key].startswith("/var/lib/mec-migration/"), (key, d[key])


def test_both_folders_are_checked_on_every_run():
    with open(os.path.join(ROLE, "tasks", "check.yml")) as fh:
        check = yaml.safe_load(fh)
    first = check[0]
    assert "mec.migration.private_dir" in first
    assert set(first["loop"]) == {"{{ criu_state_dir }}", "{{ criu_build_dir }}"}
    with open(os.path.join(ROLE, "tasks", "main.yml")) as fh:
        main = yaml.safe_load(fh)
    # check.yml runs unconditionally, before anything is built or installed
    assert any(t.get("ansible.builtin.import_tasks") == "check.yml" and "when" not in t for t in main)


def test_the_installed_binary_is_run_only_when_its_hash_is_the_recorded_one():
    with open(os.path.join(ROLE, "tasks", "check.yml")) as fh:
        check = yaml.safe_load(fh)
    runs = [t for t in check if "ansible.builtin.command" in t]
    assert runs and all("__criu_installed_trusted" in t["when"] for t in runs)


def test_every_install_is_hashed_and_recorded():
    tasks = _tasks()
    installs = [(w, t) for w, t in tasks
                if (t.get("ansible.builtin.copy") or {}).get("dest") == "{{ criu_install_path }}"]
    assert len(installs) == 2  # the build and the copy of the cached binary
    records = [t for _w, t in tasks if (t.get("ansible.builtin.copy") or {}).get("dest")
               == "{{ criu_state_dir }}/installed.sha256"]
    assert len(records) == 2
    asserts = [t["ansible.builtin.assert"]["that"] for _w, t in tasks if "ansible.builtin.assert" in t]
    assert "__criu_installed_now.stat.checksum == __criu_built.stat.checksum" in asserts
    assert "__criu_copied.stat.checksum == __criu_expected_sha256" in asserts
