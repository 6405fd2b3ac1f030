# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The container engines a migration runs on, and what differs between them, written once.

Every module talks to its host's engine through the Docker SDK: to Docker on its own socket, to Podman (4.x) on the
Docker-compatible API that ``podman system service`` serves on ``/run/podman/podman.sock``. The engine of a host is
declared in the inventory (``migration_engine: docker|podman``, passed to every module as ``engine``) and checked
against what answers on the socket (``identify()``): a host that runs another engine than the inventory says is
refused before anything changes (``mismatch_message()``).

What the engines do differently and the migration has to know:

* the socket (``default_socket()``) and the name of the default network in a container's inspect data (Docker
  ``bridge``, Podman ``podman``; the same network is ``bridge`` in both engines' network lists and run options);
* what Podman adds to every container's configuration without the user asking (``container=podman``,
  ``HOSTNAME=<id>``, ``TERM=xterm`` in the environment, the stop signal as a number, an exposed port listed as a
  binding without host ports): not part of the run configuration to carry (``engine_added_env()``,
  ``default_stop_signal()``, ``lists_exposed_as_bindings()``);
* the image store: only Docker's ``docker load`` takes an archive without the layers it holds already
  (``loads_partial_archives()``); Podman's load needs every layer, so nothing is left out for a Podman target;
* Podman 4.3's compatible API has no container update (``/containers/{id}/update``): a restart policy cannot be
  changed after creation (``can_update_restart_policy()``), and need not be for the migration's stop, which
  Podman's restart policy never undoes (a stop through the API counts as the user's);
* Docker's checkpoints (m3) are not Podman's: m3 runs Docker -> Docker and Podman -> Podman, never across
  (``strategy_problems()``); Podman's checkpoints need no experimental features, but the podman and runc
  binaries on the host (``checkpoint_needs_experimental()``, ``checkpoint_tools()``);
* Podman's stop returns ~0.2 s after the container's process exited (libpod polls the process every 100 ms, then
  waits for conmon's clean-up: the network's teardown, the unmounts): ``stop_container()`` returns once the process
  has exited and lets the engine finish its stop meanwhile.
"""

from __future__ import annotations

import os
import select
import threading
import time

ENGINES = ("docker", "podman")

_SPECS = dict(
    docker=dict(
        title="Docker",
        # None: DOCKER_HOST or the SDK's default, unix:///var/run/docker.sock
        socket=None,
        default_network="bridge",
        start=("start it (on the lab hosts: /usr/local/sbin/mec-dockerd-supervisor start; elsewhere: systemctl "
               "start docker) or point docker_host at it"),
        loads_partial_archives=True,
        can_update_restart_policy=True,
        # checkpoints (m3) need the daemon's experimental features; the binaries m3 runs on the host besides criu
        checkpoint_needs_experimental=True,
        checkpoint_tools=(),
    ),
    podman=dict(
        title="Podman",
        socket="unix:///run/podman/podman.sock",
        default_network="podman",
        start=("start its API service (systemctl start podman.socket, or podman system service --time=0 "
               "unix:///run/podman/podman.sock; the role mec.migration.podman_engine sets it up) or point docker_host "
               "at it"),
        loads_partial_archives=False,
        can_update_restart_policy=False,
        checkpoint_needs_experimental=False,
        # the target container is prepared with `podman container init/cleanup`; runc pauses before the dump
        checkpoint_tools=("podman", "runc"),
    ),
)

# the environment Podman gives every container (containers.conf's default env and the container's identity)
_PODMAN_ADDED_ENV = ("container=podman", "TERM=xterm")


class EngineError(Exception):
    """A bad engine name."""


def check_engine(engine):
    """``engine`` if it is one of ENGINES, else EngineError with a sentence for the user."""
    if engine not in ENGINES:
        raise EngineError("engine=%s: the engine of a host is docker or podman (the inventory variable "
                          "migration_engine)." % (engine,))
    return engine


def title(engine):
    return _SPECS[check_engine(engine)]["title"]


def default_socket(engine):
    """The URL of the engine's API on a host (None: Docker's own default, DOCKER_HOST or /var/run/docker.sock)."""
    return _SPECS[check_engine(engine)]["socket"]


def start_hint(engine):
    return _SPECS[check_engine(engine)]["start"]


def identify(version):
    """``(engine, version)`` of what answered ``GET /version``: Podman names itself in the components
    ("Podman Engine"), Docker does not."""
    for component in (version or {}).get("Components") or []:
        if str(component.get("Name", "")).lower().startswith("podman"):
            return "podman", component.get("Version") or version.get("Version")
    return "docker", (version or {}).get("Version")


def engine_of(client):
    """The engine a client from docker_client.get_client() talks to (checked there); docker for any other."""
    engine = getattr(client, "mec_engine", None)
    return engine if isinstance(engine, str) and engine in ENGINES else "docker"


def mismatch_message(host, declared, actual, actual_version, url):
    """What to say when a host runs another engine than the inventory declares."""
    return ("Host %s runs %s %s (answering at %s), but its migration_engine is %s: set migration_engine: %s for %s "
            "in the inventory (or point docker_host at its %s engine). Nothing was changed."
            % (host, title(actual), actual_version, url or "the default socket", declared, actual, host,
               title(declared)))


def default_network(engine):
    """The name of the engine's default network in a container's inspect data."""
    return _SPECS[check_engine(engine)]["default_network"]


def portable_network(engine, name):
    """A network name as both engines take it in run options: the engine's default network is ``bridge``."""
    return "bridge" if name == default_network(engine) else name


def engine_added_env(engine, container_id=None):
    """Environment entries the engine adds to every container by itself (not to carry to another host)."""
    if engine != "podman":
        return set()
    added = set(_PODMAN_ADDED_ENV)
    if container_id:
        added.add("HOSTNAME=%s" % container_id[:12])
    return added


def default_stop_signal(engine, signal):
    """Whether ``signal`` (from a container's Config.StopSignal) is only the engine's default (Podman writes 15
    where the image set none)."""
    return engine == "podman" and str(signal).upper() in ("15", "SIGTERM", "TERM")


def lists_exposed_as_bindings(engine):
    """Whether the engine lists an exposed port that is not published as a port binding without host ports
    (Podman: ``"8080/tcp": null``); re-created as it reads, such a binding would publish the port on a random host
    port."""
    return engine == "podman"


def loads_partial_archives(engine):
    """Whether the engine loads an image archive that leaves out layers it holds (Docker: yes; Podman: no)."""
    return _SPECS[check_engine(engine)]["loads_partial_archives"]


def can_update_restart_policy(engine):
    """Whether a container's restart policy can be changed after creation through the engine's API."""
    return _SPECS[check_engine(engine)]["can_update_restart_policy"]


def strategy_problems(checkpoint, host, engine, peer, peer_engine):
    """Why a strategy cannot run between these engines (empty: it can). m3 (``checkpoint``) runs between two hosts of
    the same engine only: Docker starts a container from a checkpoint in its own ``checkpoints/`` folder through
    containerd, Podman restores one in its bundle folder with the OCI spec it wrote there, and each engine's
    container (its network namespace, mounts and cgroup as the runtime set them up) is not what the other engine
    restores into."""
    if not checkpoint or engine == peer_engine:
        return []
    return ["Strategy m3 (CRIU checkpoint/restore) runs only between two hosts of the same engine: %s is %s and %s "
            "is %s (a checkpoint of one engine is not restored by the other). Use strategy m2 (commit/save/load; "
            "the app restarts from its volumes) across engines, or two %s hosts. Nothing was changed."
            % (host, title(engine), peer, title(peer_engine), title(engine))]


def checkpoint_needs_experimental(engine):
    """Whether the engine's checkpoints (m3) need its experimental features on (Docker 20.10: yes)."""
    return _SPECS[check_engine(engine)]["checkpoint_needs_experimental"]


def checkpoint_tools(engine):
    """The binaries m3 runs on a host of the engine besides criu."""
    return list(_SPECS[check_engine(engine)]["checkpoint_tools"])


class Stopping(object):
    """A container's stop through its engine's API, running in a thread: ``exited`` (the container's main process
    has exited), ``wait()`` (the engine's stop returned; raises its error)."""

    def __init__(self, client, container_id, timeout):
        self.error = None
        self.exited_after = None  # seconds from the stop's call until the process's exit was seen (None: not seen)
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._stop, args=(client, container_id, timeout), daemon=True)
        self._thread.start()

    def _stop(self, client, container_id, timeout):
        try:
            client.api.stop(container_id, timeout=timeout)
        except BaseException as exc:  # handed to wait()
            self.error = exc

    def done(self):
        return not self._thread.is_alive()

    def wait(self, timeout=None):
        """Wait until the engine's stop returned (at most ``timeout`` s); raises the stop's error."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the engine's stop did not return within %ss" % timeout)
        if self.error is not None:
            raise self.error
        return self


def _pidfd(pid):
    """A pidfd of process ``pid`` (this host's), or None (no such process, no pidfd_open, not this PID namespace)."""
    if not isinstance(pid, int) or pid <= 0 or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def stop_container(client, info, timeout):
    """Stop container ``info`` (its inspect data, running) as the engine's stop does (its stop signal, SIGKILL after
    ``timeout`` seconds; a stop the engine's restart policy does not undo), and return a ``Stopping`` once the
    container's main process has exited: its writes are done, its volumes complete.

    Docker: the stop returns when the process exited (the call itself). Podman: the stop's call returns ~0.2 s after
    that (libpod polls the process every 100 ms, then waits for conmon's clean-up of the network and mounts), so the
    stop runs in a thread and the process's exit is seen on a pidfd of its ``State.Pid`` (the module runs on the
    container's host). Where no pidfd can be had (the process already gone, or another PID namespace), the stop's
    own return is waited for. The caller ``wait()``s for the stop's return before the container is used again."""
    # Docker: no pidfd, the stop's own return is the exit
    fd = _pidfd((info.get("State") or {}).get("Pid")) if engine_of(client) == "podman" else None
    stopping = Stopping(client, info["Id"], timeout)
    try:
        while fd is not None and not stopping.done():
            if select.select([fd], [], [], 0.05)[0]:
                stopping.exited_after = round(time.monotonic() - stopping._t0, 6)
                return stopping
    finally:
        if fd is not None:
            os.close(fd)
    stopping.wait()  # the stop returned first (or no pidfd): the process exited, as the engine says
    stopping.exited_after = round(time.monotonic() - stopping._t0, 6)
    return stopping


def short_image_name(engine, name):
    """An image reference as Docker writes it: Podman qualifies local and Docker Hub names (``localhost/x``,
    ``docker.io/library/x``, ``docker.io/u/x``), Docker does not."""
    if engine != "podman" or not isinstance(name, str):
        return name
    for prefix in ("localhost/", "docker.io/library/", "docker.io/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def facts(client):
    """What the host's engine is: ``name`` (docker|podman), ``version``, ``experimental``, ``docker_root_dir`` (its
    store), ``engine_id``, ``hostname``."""
    info = client.info()
    version = getattr(client, "mec_engine_version", None)
    if not isinstance(version, str):
        version = client.version().get("Version")
    return dict(name=engine_of(client), version=version, experimental=bool(info.get("ExperimentalBuild")),
                docker_root_dir=info.get("DockerRootDir"), engine_id=info.get("ID"), hostname=info.get("Name"))
