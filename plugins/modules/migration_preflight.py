#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_preflight
short_description: Check a MEC host before a migration changes anything
description:
  - Runs every check of its O(role) and reports all problems at once, naming the host; changes nothing.
  - Both roles, the engine answers and is the one declared (O(engine), the inventory's C(migration_engine); what
    answers on the socket is read, and a host that runs the other engine is refused naming the host, both engines
    and what to set); with O(criu=true) (strategy m3), both hosts run Docker (O(engine) and O(peer_engine); m3 on
    Podman or across engines is refused with the reason), the engine has experimental features on and
    C(criu check) passes; the tools of the transfer are installed.
  - O(role=source), the container exists and runs; O(peer_address) is not an address of this host (source
    and target must differ). With O(criu=true), what would make CRIU refuse the
    dump, found before anything changes - non-root processes on a host whose capability bounding set lacks
    CAP_SYS_RESOURCE (CRIU dumps only root processes there), a terminal (C(docker run -t)), a network or PID namespace
    shared with the host or another container, and established TCP connections when O(tcp_policy=refuse).
  - O(role=target), the work directory's and the Docker root's file systems have at least twice
    O(expected_size) free; no container named O(name) exists and none of O(volumes) exists; with
    O(transfer=stream) the receiver's O(port) is free.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: No diff; the module only reads.
  idempotent:
    support: full
    description: It only reads the host; it never reports a change.
options:
  role:
    description: Which host this is.
    type: str
    choices: [source, target]
    required: true
  name:
    description: Container name.
    type: str
    required: true
  criu:
    description:
      - Whether the strategy checkpoints the app with CRIU (m3), so that CRIU and the engine's checkpoints are
        checked. (The modules that take or restore a checkpoint give its name as their C(checkpoint).)
    type: bool
    default: false
  transfer:
    description: How the relocation sends the state (V(nc) is a deprecated alias of V(stream)).
    type: str
    choices: [stream, ssh, nc]
    default: stream
  peer_address:
    description: Address of the other host (source role).
    type: str
  peer_engine:
    description: The engine the other host of the hop declares (its C(migration_engine)); its own preflight checks
      that it runs it.
    type: str
    choices: [docker, podman]
    default: docker
  expected_size:
    description: Bytes the migration is expected to bring to the target (image tarball, checkpoint, volumes).
    type: int
    default: 0
  volumes:
    description: Volumes the container brings along (target role).
    type: list
    elements: str
    default: []
  work_root:
    description: The directory the run's work directory is made in (its file system's free space is checked).
    type: path
    default: /var/lib/mec-migration/work
  port:
    description: TCP port of the stream receiver (target role, O(transfer=stream)).
    type: int
    default: 47777
  tcp_policy:
    description:
      - The policy for established TCP connections that the migration gives CRIU (see M(mec.migration.criu_config)).
      - With V(refuse), established connections of the container are a problem (the dump would fail).
    type: str
    choices: [close, established, refuse]
    default: close
  tools:
    description: Extra programs that must be on PATH.
    type: list
    elements: str
    default: []
  begin:
    description:
      - When every check passes, take the app's lock, begin the run's journal and make its work directory, in the same
        call (as C(mec.migration.migration_journal) C(action=begin) with its C(workdir) and C(phase)). A host whose
        checks fail takes nothing. A begin that is refused (another run holds the lock, a reused run id) fails like a
        failed check, naming the cause.
    type: dict
    suboptions:
      root:
        description: Directory of the journals and locks.
        type: path
        default: /var/lib/mec-migration
      run_id:
        description: The run.
        type: str
        required: true
      data:
        description: Fields of the journal (strategy, role, restart policy, ...).
        type: dict
      changes:
        description: What the run may change on this host.
        type: dict
      artifacts:
        description: Paths the run will make; the begin is refused if one exists (a reused run id).
        type: list
        elements: path
        default: []
      workdir:
        description: The run's work directory, made private (mode 0700) once the lock is taken.
        type: path
      phase:
        description: The phase recorded right after the journal's first entry.
        type: str
"""

EXAMPLES = r"""
- name: Preflight on the target
  mec.migration.migration_preflight:
    role: target
    name: v2x-app
    criu: true
    expected_size: 220000000
    volumes: [v2x-data]
"""

RETURN = r"""
journal:
  description: The run's journal as begun (O(begin)).
  returned: with O(begin), when the checks passed
  type: dict
lock:
  description: The app's lock this run took (O(begin)).
  returned: with O(begin), when the checks passed
  type: dict
began:
  description: Whether this call took the lock (false when the run held it already).
  returned: with O(begin), when the checks passed
  type: bool

problems:
  description: What is wrong (empty when the host is ready).
  returned: always
  type: list
  elements: str
engine:
  description: C(name) (docker or podman), C(version), C(experimental), C(docker_root_dir), C(engine_id),
    C(hostname) of the host's engine.
  returned: always
  type: dict
free_bytes:
  description: Free bytes where the migration writes (the smaller of the work directory's and the Docker root's
    file system).
  returned: always
  type: int
container:
  description: C(exists), C(running), C(image_id) of O(name) on this host.
  returned: always
  type: dict
criu:
  description:
    - With O(criu=true), C(version) of CRIU, C(cap_sys_resource) (whether this host's bounding set has it),
      C(runtime_config_policy) (the TCP policy the runtime's CRIU configuration gives now) and, on the source,
      C(established) (established TCP connections of the container now) and C(processes) (its process count).
  returned: when O(criu=true)
  type: dict
"""

import errno
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, LANG_C, NotFound, get_client, hostname)
from ansible_collections.mec.migration.plugins.module_utils.criu import (
    CAP_SYS_RESOURCE, RUNC_CRIU_CONFIG, bounding_set, dump_obstacles, has_capability, namespace_pids,
    policy_of_config, read_text, tcp_connections)
from ansible_collections.mec.migration.plugins.module_utils import engines
from ansible_collections.mec.migration.plugins.module_utils import journal as jr
from ansible_collections.mec.migration.plugins.module_utils.fsutil import PrivateDirError, free_bytes, private_dir
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError, run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import find_container


def is_local_address(address):
    """Whether ``address`` (name or IP) is one of this host's addresses."""
    try:
        infos = socket.getaddrinfo(address, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    for info in infos:
        ip = info[4][0]
        if ip.startswith("127."):
            return True
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((ip, 0))
            return True
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:
                return True
        finally:
            s.close()
    return False


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def needed_tools(role, transfer, criu):
    tools = []
    if role == "source":
        tools += ["ssh", "scp"]
    if criu:
        tools += ["rsync", "criu"]
    return tools


def check(module, client, p):
    problems = []
    host = hostname()
    engine = engines.facts(client)
    problems += engines.strategy_problems(p["criu"], host, engine["name"], "the %s host" % (
        "target" if p["role"] == "source" else "source"), p["peer_engine"])
    tools = needed_tools(p["role"], p["transfer"], p["criu"]) + list(p["tools"])
    if p["criu"]:
        tools += engines.checkpoint_tools(engine["name"])
    for tool in tools:
        if not module.get_bin_path(tool):
            problems.append("%s is not installed on %s (needed for transfer=%s%s)." % (
                tool, host, p["transfer"], ", strategy m3" if tool in ("rsync", "criu", "podman", "runc") and p["criu"]
                else ""))
    if p["criu"]:
        if engines.checkpoint_needs_experimental(engine["name"]) and not engine["experimental"]:
            problems.append("The Docker engine on %s does not have experimental features on (needed for "
                            "checkpoints, strategy m3): set \"experimental\": true in /etc/docker/daemon.json."
                            % host)
        criu = module.get_bin_path("criu")
        bounding = bounding_set()
        criu_facts = dict(version=None, cap_sys_resource=has_capability(bounding, CAP_SYS_RESOURCE),
                          runtime_config_policy=policy_of_config(read_text(RUNC_CRIU_CONFIG)))
        if criu:
            rc, out, err = module.run_command([criu, "--version"], environ_update=LANG_C)
            criu_facts["version"] = (out.split("Version:")[-1].split()[0] if rc == 0 and "Version:" in out
                                     else None)
            rc, out, err = module.run_command([criu, "check"], environ_update=LANG_C)
            if rc != 0:
                problems.append("criu check fails on %s (strategy m3 needs a working CRIU): %s" % (
                    host, " ".join((err or out).strip().splitlines()[-2:])))
    c = find_container(client, p["name"])
    if p["criu"] and p["role"] == "source" and c is not None and (c.get("State") or {}).get("Running"):
        pid = c["State"].get("Pid") or 0
        pids = namespace_pids(pid) if pid else []
        criu_facts["processes"] = len(pids)
        criu_facts["established"] = len([t for t in tcp_connections(pid) if t[0] == "ESTABLISHED"]) if pid else 0
        problems += dump_obstacles(c, pids, bounding=bounding, tcp_policy=p["tcp_policy"])
    state = (c or {}).get("State") or {}
    container = dict(exists=c is not None, running=bool(state.get("Running")), image_id=(c or {}).get("Image"))
    free = min(free_bytes(p["work_root"]), free_bytes(engine["docker_root_dir"] or "/var/lib/docker"))
    if p["role"] == "source":
        if c is None:
            problems.append("Container %s does not exist on the source host %s." % (p["name"], host))
        elif not state.get("Running"):
            problems.append("Container %s exists on the source host %s but does not run (status %s)."
                            % (p["name"], host, state.get("Status")))
        if not p["peer_address"]:
            problems.append("No target address given (peer_address).")
        elif is_local_address(p["peer_address"]):
            problems.append("The target address %s is an address of the source host %s itself: source and "
                            "target must be different hosts." % (p["peer_address"], host))
    else:
        if free < 2 * p["expected_size"]:
            problems.append("The target host %s has %d bytes free, less than twice the expected %d bytes."
                            % (host, free, p["expected_size"]))
        if c is not None:
            problems.append("A container named %s already exists on the target host %s (%s): remove it or "
                            "migrate under another name." % (p["name"], host, state.get("Status")))
        for vol in p["volumes"]:
            try:
                client.api.inspect_volume(vol)
                problems.append("A volume named %s already exists on the target host %s." % (vol, host))
            except NotFound:
                pass
        if p["transfer"] in ("stream", "nc") and not port_free(p["port"]):
            problems.append("Port %s is busy on the target host %s (the volume receiver needs it): choose "
                            "another migration_port." % (p["port"], host))
    res = dict(problems=problems, engine=engine, free_bytes=free, container=container)
    if p["criu"]:
        res["criu"] = criu_facts
    return res


def begin_run(app, b):
    """Take the app's lock, begin the run's journal, make the work directory, record the phase (preflight passed)."""
    host = hostname()
    try:
        jr.check_name("app", app)
        jr.check_name("run_id", b["run_id"])
        began, journal, lock = jr.begin(b["root"], b["run_id"], app, b["data"], b["artifacts"], host,
                                        changes=b["changes"])
    except jr.JournalError as exc:
        raise MigrationError("%s" % exc if host in str(exc) else "%s (host %s)" % (exc, host)) from exc
    if began and b["workdir"]:
        try:
            private_dir(b["workdir"])
        except (PrivateDirError, OSError) as exc:
            jr.finish(b["root"], b["run_id"], app, "failed", data=dict(error="work directory: %s" % exc))
            raise MigrationError("Cannot make the run's work directory on host %s: %s. The lock this run took was "
                                 "released; nothing else was changed." % (host, exc)) from exc
    if began and b["phase"]:
        journal = jr.update(b["root"], b["run_id"], phase=b["phase"])
    return dict(began=began, journal=journal, lock=lock)


def main():
    module = AnsibleModule(argument_spec=dict(
        role=dict(type="str", choices=["source", "target"], required=True),
        name=dict(type="str", required=True),
        criu=dict(type="bool", default=False),
        transfer=dict(type="str", choices=["stream", "ssh", "nc"], default="stream"),
        peer_address=dict(type="str"),
        peer_engine=dict(type="str", choices=list(engines.ENGINES), default="docker"),
        expected_size=dict(type="int", default=0),
        volumes=dict(type="list", elements="str", default=[]),
        work_root=dict(type="path", default="/var/lib/mec-migration/work"),
        port=dict(type="int", default=47777),
        tcp_policy=dict(type="str", choices=["close", "established", "refuse"], default="close"),
        tools=dict(type="list", elements="str", default=[]),
        begin=dict(type="dict", options=dict(
            root=dict(type="path", default="/var/lib/mec-migration"),
            run_id=dict(type="str", required=True),
            data=dict(type="dict"),
            changes=dict(type="dict"),
            artifacts=dict(type="list", elements="path", default=[]),
            workdir=dict(type="path"),
            phase=dict(type="str"))),
        **DOCKER_COMMON_ARGS), supports_check_mode=True)
    client = get_client(module)
    res = run_guarded(module, check, module, client, module.params)
    if res["problems"]:
        module.fail_json(msg="Preflight failed on %s host %s: %s" % (module.params["role"], hostname(),
                                                                     " ".join(res["problems"])), **res)
    if module.params["begin"] and not module.check_mode:
        res.update(run_guarded(module, begin_run, module.params["name"], module.params["begin"], fail_extra=res))
        module.exit_json(changed=res["began"], **res)
    module.exit_json(changed=False, **res)


if __name__ == "__main__":
    main()
