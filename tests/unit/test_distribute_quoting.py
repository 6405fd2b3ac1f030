"""roles/mec_apps/tasks/distribute.yml: the shell line that sends the images to a peer is rendered (with the
filters Ansible uses) from a hostile inventory and run by bash against stand-ins for docker and ssh: the peer's
address and the image names arrive as single arguments, no command runs and no ssh option is added."""
import os
import shlex
import subprocess

import jinja2
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TASKS = os.path.join(ROOT, "roles", "mec_apps", "tasks", "distribute.yml")

STUB = """#!/bin/sh
for a in "$@"; do printf '%s\\n' "$a"; done > "$LOG_DIR/$(basename "$0").args"
cat > /dev/null
"""


def _send_task():
    with open(TASKS) as fh:
        tasks = yaml.safe_load(fh)
    return next(t for t in tasks if "ansible.builtin.shell" in t and "docker save" in t["ansible.builtin.shell"]["cmd"])


def _render(cmd, peer_address, images):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["quote"] = lambda s: shlex.quote(str(s))
    return env.from_string(cmd).render(
        _mec_apps_to_send=images, _mec_apps_peer="peer",
        hostvars={"peer": {"ansible_host": peer_address}})


@pytest.mark.parametrize("address", [
    "10.0.0.2; touch {pwn}",
    "$(touch {pwn})",
    "-oProxyCommand=touch {pwn}",
    "10.0.0.2 `touch {pwn}`",
])
def test_a_hostile_address_stays_one_argument(tmp_path, address):
    pwn = tmp_path / "pwned"
    address = address.format(pwn=pwn)
    images = ["mec/app:1", "x';touch %s;'" % pwn]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("docker", "ssh"):
        (bindir / tool).write_text(STUB)
        os.chmod(bindir / tool, 0o755)
    task = _send_task()["ansible.builtin.shell"]
    line = _render(task["cmd"], address, images)
    res = subprocess.run([task.get("executable", "/bin/sh"), "-c", line], capture_output=True, text=True,
                         env=dict(os.environ, PATH="%s:/usr/bin:/bin" % bindir, LOG_DIR=str(tmp_path)), timeout=30)
    assert res.returncode == 0, res.stderr
    assert not pwn.exists(), line
    ssh_args = (tmp_path / "ssh.args").read_text().splitlines()
    # options first, then `--`, then the destination as one word, then the remote command
    assert ssh_args[ssh_args.index("--") + 1:] == ["root@" + address, "docker", "load"]
    assert not any(a.startswith("-o") and "ProxyCommand" in a for a in ssh_args[:ssh_args.index("--")])
    assert "StrictHostKeyChecking=yes" in ssh_args
    docker_args = (tmp_path / "docker.args").read_text().splitlines()
    assert docker_args == ["save", "--"] + images
