"""Helpers to run a module's main() with exit_json/fail_json patched to raise (kubernetes.core style)."""
import contextlib
import json
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class AnsibleExitJson(BaseException):
    """exit_json was called; ``.result`` holds its arguments."""

    def __init__(self, kwargs):
        super().__init__(kwargs)
        self.result = kwargs


class AnsibleFailJson(BaseException):
    """fail_json was called; ``.result`` holds its arguments. A BaseException, like the SystemExit of the
    real fail_json, so the modules' ``except Exception`` guards do not swallow it."""

    def __init__(self, kwargs):
        super().__init__(kwargs)
        self.result = kwargs


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    json.dumps(kwargs)  # results must be serialisable, as on a real host
    raise AnsibleExitJson(kwargs)


def _fail_json(self, **kwargs):
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


def _bin(self, name, required=False, opt_dirs=None):
    return "/usr/bin/" + name


@pytest.fixture(autouse=True)
def patched_module():
    with mock.patch.multiple(basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json,
                             get_bin_path=_bin):
        yield


@pytest.fixture
def run_command():
    """``AnsibleModule.run_command`` mocked; default answer rc=0 and empty output."""
    with mock.patch.object(basic.AnsibleModule, "run_command", return_value=(0, "", "")) as rc:
        yield rc


@pytest.fixture
def client():
    """A mocked DockerClient returned by every module's get_client."""
    c = mock.MagicMock(name="DockerClient")
    c.info.return_value = {"DockerRootDir": "/var/lib/docker", "ExperimentalBuild": True, "ID": "ENGINE1",
                           "Name": "host1"}
    c.version.return_value = {"Version": "20.10.24"}
    # the engine's API paths the modules call without an SDK method (checkpoints)
    c.api._url.side_effect = lambda path, *args: "http+docker://e" + path.format(*args)
    with mock.patch("ansible_collections.mec.migration.plugins.module_utils.docker_client.get_client",
                    return_value=c):
        yield c


@pytest.fixture
def run_module(client):
    """``run_module(module, args)``: run ``module.main()`` with ``args`` and ``client`` as its Docker client;
    returns the exit_json result, or raises AnsibleFailJson."""
    def _run(module, args):
        patches = [patch_module_args(args)]
        if hasattr(module, "get_client"):
            patches.append(mock.patch.object(module, "get_client", return_value=client))
        with contextlib.ExitStack() as stack:
            for p in patches:
                stack.enter_context(p)
            try:
                module.main()
            except AnsibleExitJson as exc:
                return exc.result
        raise AssertionError("main() returned without calling exit_json or fail_json")
    return _run


def inspect_container(name="app", cid="c" * 64, running=True, mounts=None, image="sha256:" + "a" * 64, **extra):
    """An inspect answer of a container, as Docker 20.10 gives it (only the fields the modules read)."""
    data = {
        "Id": cid, "Name": "/" + name, "Image": image,
        "State": {"Running": running, "Status": "running" if running else "exited", "Restarting": False},
        "Config": {"Image": "mec/app:1", "Cmd": ["/app/run"], "Entrypoint": None, "Env": ["PATH=/bin", "MODE=x"],
                   "WorkingDir": "/app", "User": "", "Labels": {}, "Hostname": cid[:12], "ExposedPorts": {}},
        "HostConfig": {"PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                       "NetworkMode": "default", "Tmpfs": None},
        "NetworkSettings": {"Networks": {"bridge": {"Aliases": None, "IPAMConfig": None}}},
        "Mounts": mounts or [],
    }
    data.update(extra)
    return data


def resolving_inspect(*containers):
    """An ``inspect_container`` side effect that resolves a reference as Docker and Podman do: the full ID, then the
    name, then any container whose ID starts with it (what a lookup by name must not take); else NotFound."""
    from docker.errors import NotFound

    def inspect(ref):
        for c in containers:
            if ref == c["Id"] or ref == c["Name"].lstrip("/"):
                return c
        for c in containers:
            if c["Id"].startswith(ref):
                return c
        raise NotFound(ref)
    return inspect


def inspect_image(cid="sha256:" + "a" * 64, size=1000, **config):
    cfg = {"Cmd": ["/app/run"], "Entrypoint": None, "Env": ["PATH=/bin"], "WorkingDir": "/app", "User": "",
           "ExposedPorts": None, "Labels": None}
    cfg.update(config)
    return {"Id": cid, "Size": size, "Config": cfg}
