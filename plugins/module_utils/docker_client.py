# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The one Docker client wrapper of the collection.

* ``get_client()`` returns a ``docker.DockerClient(version="auto")`` that
  answered a ping, or fails the module with a message naming the host and
  saying what to do.
* ``fail()`` fails a module with the traceback in ``exception``, never in ``msg``.
* ``run_tool()`` runs a tool the SDK does not replace (tar, rsync, ssh, criu)
  through ``module.run_command`` with a list argv and ``LANG=C``.

Works with Docker SDK for Python >= 5.0 (Debian 12 ships python3-docker 5.0.3).
"""

from __future__ import annotations

import socket
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        pass

    class APIError(DockerException):
        pass

    class NotFound(APIError):
        pass


# Options every module that talks to an engine accepts.
DOCKER_COMMON_ARGS = dict(
    docker_host=dict(type="str", default=None),
    timeout=dict(type="int", default=120),
)

LANG_C = dict(LANG="C", LC_ALL="C", LC_MESSAGES="C")


def hostname():
    return socket.gethostname()


def fail(module, msg, exc=None, **kwargs):
    """Fail with ``msg``; a traceback (of ``exc`` or the current one) goes to ``exception``."""
    if exc is not None:
        kwargs["exception"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    elif "exception" not in kwargs:
        tb = traceback.format_exc()
        if tb and not tb.startswith("NoneType: None"):
            kwargs["exception"] = tb
    module.fail_json(msg=msg, **kwargs)


def get_client(module, docker_host=None, timeout=None):
    """A pinged ``DockerClient``; fails the module clearly when the engine is unreachable."""
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (Debian: python3-docker)"),
                         exception=DOCKER_IMPORT_ERROR)
    params = module.params
    docker_host = docker_host or params.get("docker_host")
    timeout = timeout or params.get("timeout") or 120
    try:
        if docker_host:
            client = docker.DockerClient(base_url=docker_host, version="auto", timeout=timeout)
        else:
            client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests errors, socket errors
        fail(module,
             "The Docker engine on host %s is not reachable (%s): %s. Start it (on the lab hosts: "
             "/usr/local/sbin/mec-dockerd-supervisor start; elsewhere: systemctl start docker) "
             "or point docker_host at it." % (hostname(), docker_host or "DOCKER_HOST or the default socket",
                                              exc),
             exc=exc, host=hostname())
    return client


def run_tool(module, args, what, check=True, data=None):
    """Run a non-docker tool found on PATH (tar, rsync, ssh, scp, criu) with ``LANG=C``."""
    binary = module.get_bin_path(args[0], required=True)
    argv = [binary] + list(args[1:])
    rc, out, err = module.run_command(argv, environ_update=LANG_C, data=data, binary_data=data is not None)
    if check and rc != 0:
        module.fail_json(msg="%s failed on host %s (rc=%s): %s" % (what, hostname(), rc, (err or out).strip()),
                         rc=rc, stdout=out, stderr=err, cmd=argv, host=hostname())
    return rc, out, err
