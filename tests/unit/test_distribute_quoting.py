"""roles/mec_apps/tasks/distribute.yml: the shell line that sends the images to a peer is rendered (with the
filters Ansible uses) from a hostile inventory and run by bash against stand-ins for the engines' CLIs and ssh: the
peer's address and the image names arrive as single arguments, no command runs and no ssh option is added; each
side uses its own engine's command (roles/mec_apps/vars/main.yml)."""
import os
import shlex
import subprocess

import jinja2
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TASKS = os.path.join(ROOT, "roles", "mec_apps", "tasks", "distribute.yml")
VARS = os.path.join(ROOT, "roles", "mec_apps", "vars", "main.yml")

STUB = """#!/bin/sh
for a in "$@"; do printf '%s\\n' "$a"; done > "$LOG_DIR/$(basename "$0").args"
cat > /dev/null
"""


def _send_task():
    with open(TASKS) as fh:
        tasks = yaml.safe_load(fh)
    return next(t for t in tasks if "ansible.builtin.shell" in t and " load" in t["ansible.builtin.shell"]["cmd"])


def _engines():
    """The role's per-engine commands (the lists only: what the shell line uses)."""
    with open(VARS) as fh:
        engines = yaml.safe_load(fh)["_mec_apps_engines"]
    return {name: dict(cli=e["cli"], save=e["save"]) for name, e in engines.items()}


def _render(task, peer_address, images, engine="docker", peer_engine="docker"):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["quote"] = lambda s: shlex.quote(str(s))
    engines = _engines()
    hostvars = {"peer": {"ansible_host": peer_address, "migration_engine": peer_engine}}
    # the task's own variable: the peer's commands, after the peer's migration_engine
    peer_expr = task["vars"]["_peer_cmd"].strip()
    assert peer_expr.startswith("{{") and peer_expr.endswith("}}")
    peer_of = env.compile_expression(peer_expr[2:-2])
    peer_cmd = peer_of(_mec_apps_engines=engines, hostvars=hostvars, _mec_apps_peer="peer")
    return env.from_string(task["ansible.builtin.shell"]["cmd"]).render(
        _mec_apps_to_send=images, _mec_apps_peer="peer", hostvars=hostvars,
        _mec_apps_cmd=engines[engine], _peer_cmd=peer_cmd)


@pytest.mark.parametrize("address", [
    "10.0.0.2; touch {pwn}",
    "$(touch {pwn})",
    "-oProxyCommand=touch {pwn}",
    "10.0.0.2 `touch {pwn}`",
])
@pytest.mark.parametrize("engine,peer_engine", [("docker", "docker"), ("podman", "podman"), ("podman", "docker"),
                                                ("docker", "podman")])
def test_a_hostile_address_stays_one_argument(tmp_path, address, engine, peer_engine):
    pwn = tmp_path / "pwned"
    address = address.format(pwn=pwn)
    images = ["mec/app:1", "x';touch %s;'" % pwn]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("docker", "podman", "ssh"):
        (bindir / tool).write_text(STUB)
        os.chmod(bindir / tool, 0o755)
    task = _send_task()
    line = _render(task, address, images, engine, peer_engine)
    res = subprocess.run([task["ansible.builtin.shell"].get("executable", "/bin/sh"), "-c", line],
                         capture_output=True, text=True,
                         env=dict(os.environ, PATH="%s:/usr/bin:/bin" % bindir, LOG_DIR=str(tmp_path)), timeout=30)
    assert res.returncode == 0, res.stderr
    assert not pwn.exists(), line
    ssh_args = (tmp_path / "ssh.args").read_text().splitlines()
    # options first, then `--`, then the destination as one word, then the peer engine's load
    assert ssh_args[ssh_args.index("--") + 1:] == ["root@" + address, peer_engine, "load"]
    assert not any(a.startswith("-o") and "ProxyCommand" in a for a in ssh_args[:ssh_args.index("--")])
    assert "StrictHostKeyChecking=yes" in ssh_args
    # this host's engine saves (Podman needs --multi-image-archive for several images); the other CLI is not run
    save_args = (tmp_path / ("%s.args" % engine)).read_text().splitlines()
    assert save_args == ["save"] + (["--multi-image-archive"] if engine == "podman" else []) + ["--"] + images
    assert engine == peer_engine or not (tmp_path / ("%s.args" % peer_engine)).exists()
