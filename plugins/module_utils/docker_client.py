# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The one engine client wrapper of the collection.

* ``get_client()`` returns a ``docker.DockerClient(version="auto")`` for the
  host's engine (``engine``: Docker on its socket, Podman on its Docker-compatible
  API; module_utils/engines.py) that answered and is the engine declared, or
  fails the module with a message naming the host and saying what to do.
* ``fail()`` fails a module with the traceback in ``exception``, never in ``msg``.
* ``run_tool()`` runs a tool the SDK does not replace (tar, rsync, ssh, criu)
  through ``module.run_command`` with a list argv and ``LANG=C``.

Works with Docker SDK for Python >= 5.0 (Debian 12 ships python3-docker 5.0.3).
"""

from __future__ import annotations

import socket
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.mec.migration.plugins.module_utils import engines
from ansible_collections.mec.migration.plugins.module_utils.engines import ENGINES

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
    engine=dict(type="str", choices=list(ENGINES), default="docker"),
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


def _connect(docker_host, timeout):
    """A client for ``docker_host`` (None: DOCKER_HOST or the default socket) and the engine's /version answer."""
    if docker_host:
        client = docker.DockerClient(base_url=docker_host, version="auto", timeout=timeout)
    else:
        client = docker.from_env(version="auto", timeout=timeout)
    return client, client.version()


def _other_engine_answers(engine, timeout):
    """``(engine, version, url)`` of the other engine when it answers on its default socket on this host, else
    None (what the host runs instead of the declared engine)."""
    for other in ENGINES:
        if other == engine:
            continue
        url = engines.default_socket(other) or "unix:///var/run/docker.sock"
        try:
            client, version = _connect(url, min(timeout, 5))
            client.close()
        except Exception:
            continue
        kind, number = engines.identify(version)
        return kind, number, url
    return None


def get_client(module, docker_host=None, timeout=None, engine=None):
    """A client of the host's engine that answered and is the declared ``engine`` (default the module's
    ``engine`` option, else docker); fails the module clearly when the engine is unreachable or is another one.
    The client's ``mec_engine`` is the engine (engines.engine_of())."""
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (Debian: python3-docker)"),
                         exception=DOCKER_IMPORT_ERROR)
    params = module.params
    engine = engine or params.get("engine") or "docker"
    if engine not in ENGINES:
        module.fail_json(msg="engine=%s on host %s: the engine of a host is docker or podman (the inventory variable "
                             "migration_engine). Nothing was changed." % (engine, hostname()), host=hostname())
    docker_host = docker_host or params.get("docker_host") or engines.default_socket(engine)
    timeout = timeout or params.get("timeout") or 120
    try:
        client, version = _connect(docker_host, timeout)
    except Exception as exc:  # DockerException, requests errors, socket errors
        other = _other_engine_answers(engine, timeout)
        if other is not None:
            fail(module, engines.mismatch_message(hostname(), engine, other[0], other[1], other[2]) +
                 " (The %s engine does not answer at %s: %s.)" % (engines.title(engine), docker_host or
                                                                  "DOCKER_HOST or the default socket", exc),
                 exc=exc, host=hostname(), engine=dict(declared=engine, actual=other[0], version=other[1]))
        fail(module,
             "The %s engine on host %s is not reachable (%s): %s. %s." % (
                 engines.title(engine), hostname(), docker_host or "DOCKER_HOST or the default socket", exc,
                 engines.start_hint(engine)[0].upper() + engines.start_hint(engine)[1:]),
             exc=exc, host=hostname())
    actual, number = engines.identify(version)
    if actual != engine:
        module.fail_json(msg=engines.mismatch_message(hostname(), engine, actual, number, docker_host),
                         host=hostname(), engine=dict(declared=engine, actual=actual, version=number))
    client.mec_engine = engine
    client.mec_engine_version = number
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
