# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""A service container kept idempotently by a hash of its declared configuration.

The hash (SHA-256 of the configuration as canonical JSON) is kept as a label on the container; a container
whose label differs is re-created, a stopped one with the same label is started, a running one with the
same label is left alone. ``config_hash`` and ``next_action`` are shared with the lab's hosts
(``lab_host``), which are system containers made in another way.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound, hostname
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.run_config import find_container

# The one label that holds the hash of a service container's declared configuration (the name the mec_apps and
# mec_gateway roles used; the experiment's reset reads it).
CONFIG_LABEL = "mec.migration.spec"


def config_hash(declared):
    """SHA-256 (hex) of ``declared`` as JSON with sorted keys."""
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()


def next_action(labels, running, wanted_hash, label=CONFIG_LABEL):
    """What brings a container to the wanted state: ``create`` (``labels`` is None: no container),
    ``recreate`` (its ``label`` differs from ``wanted_hash``), ``start`` (same, stopped) or ``none``."""
    if labels is None:
        return "create"
    if (labels or {}).get(label) != wanted_hash:
        return "recreate"
    return "none" if running else "start"


def parse_port(spec):
    """``[ip:][host_port:]container_port[/protocol]`` (as ``docker run --publish``) as a dict."""
    text, protocol = str(spec), "tcp"
    if "/" in text:
        text, protocol = text.rsplit("/", 1)
    parts = text.rsplit(":", 2)
    host_ip = parts[0].strip("[]") if len(parts) == 3 else None
    host_port = parts[-2] if len(parts) >= 2 else ""
    try:
        if protocol not in ("tcp", "udp", "sctp"):
            raise ValueError(protocol)
        return dict(container_port=int(parts[-1]), protocol=protocol, host_ip=host_ip or None,
                    host_port=int(host_port) if host_port else None)
    except ValueError:
        raise MigrationError("Port %r is not [ip:][host_port:]container_port[/tcp|udp|sctp] (one port, no range)."
                             % (spec,)) from None


def check_volume(spec):
    """A volume ``source:destination[:mode]`` (named volume or absolute host path), returned unchanged."""
    parts = str(spec).split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise MigrationError("Volume %r is not source:/destination[:mode] (a named volume or a host path)." % (spec,))
    return str(spec)


def declared_config(params, image_id):
    """The configuration the hash is computed from: what the task declares, with the image's id (a rebuilt
    image under the same reference counts as a change). Values are normalised as the engine takes them."""
    return dict(
        image=image_id,
        command=[str(a) for a in params["command"]] if params["command"] is not None else None,
        env={k: str(v) for k, v in (params["env"] or {}).items()},
        user=params["user"] or "",
        restart_policy=params["restart_policy"],
        ports=[parse_port(p) for p in params["ports"]],
        volumes=[check_volume(v) for v in params["volumes"]],
        networks=[dict(name=n["name"], aliases=list(n.get("aliases") or []), ipv4_address=n.get("ipv4_address") or None)
                  for n in params["networks"]],
        labels={k: str(v) for k, v in (params["labels"] or {}).items()},
    )


def run_argv(name, image, config, wanted_hash):
    """The ``docker run`` command line equivalent to ``create_and_start`` (networks after the first are connected
    separately, with ``docker network connect``, and are not in it)."""
    argv = ["docker", "run", "--detach", "--name", name]
    labels = dict(config["labels"])
    labels[CONFIG_LABEL] = wanted_hash
    for key, value in labels.items():
        argv += ["--label", "%s=%s" % (key, value)]
    if config["restart_policy"] != "no":
        argv += ["--restart", config["restart_policy"]]
    for network in config["networks"][:1]:
        argv += ["--network", network["name"]]
        for alias in network["aliases"]:
            argv += ["--network-alias", alias]
        if network["ipv4_address"]:
            argv += ["--ip", network["ipv4_address"]]
    for port in config["ports"]:
        argv += ["--publish", _publish(port)]
    for volume in config["volumes"]:
        argv += ["--volume", volume]
    for key, value in config["env"].items():
        argv += ["--env", "%s=%s" % (key, value)]
    if config["user"]:
        argv += ["--user", config["user"]]
    return argv + [image] + list(config["command"] or [])


def _publish(port):
    parts = []
    if port["host_ip"]:
        parts += ["[%s]" % port["host_ip"] if ":" in port["host_ip"] else port["host_ip"], str(port["host_port"] or "")]
    elif port["host_port"]:
        parts.append(str(port["host_port"]))
    return ":".join(parts + ["%d/%s" % (port["container_port"], port["protocol"])])


def read_container(client, name):
    """The engine's inspect answer of the container called ``name``, or None (not a container whose ID merely starts
    with ``name``: run_config.find_container)."""
    return find_container(client, name)


def read_image_id(client, ref):
    """The id of image ``ref``, or None when it is not on the engine."""
    try:
        return client.api.inspect_image(ref)["Id"]
    except NotFound:
        return None


def _port_bindings(ports):
    exposed, bindings = [], {}
    for port in ports:
        key = "%d/%s" % (port["container_port"], port["protocol"])
        if (port["container_port"], port["protocol"]) not in exposed:
            exposed.append((port["container_port"], port["protocol"]))
        if port["host_ip"]:
            binding = (port["host_ip"], port["host_port"]) if port["host_port"] else (port["host_ip"],)
        else:
            binding = port["host_port"]
        bindings.setdefault(key, []).append(binding)
    return exposed, bindings


def _endpoint(client, network):
    return client.api.create_endpoint_config(aliases=network["aliases"] or None,
                                             ipv4_address=network["ipv4_address"])


def create_and_start(client, name, image, config, wanted_hash):
    """``docker run --detach`` of the declared ``config``, with the hash label; returns the container's id.
    A container that was created but failed to start is removed again."""
    exposed, bindings = _port_bindings(config["ports"])
    networks = config["networks"]
    host_config = client.api.create_host_config(
        binds=config["volumes"] or None,
        port_bindings=bindings or None,
        restart_policy={"Name": config["restart_policy"]} if config["restart_policy"] != "no" else None,
        network_mode=networks[0]["name"] if networks else None,
    )
    networking_config = None
    if networks:
        networking_config = client.api.create_networking_config({networks[0]["name"]: _endpoint(client, networks[0])})
    labels = dict(config["labels"])
    labels[CONFIG_LABEL] = wanted_hash
    created = client.api.create_container(
        image=image, name=name, command=config["command"], user=config["user"] or None,
        environment=["%s=%s" % item for item in config["env"].items()] or None,
        ports=exposed or None, labels=labels, detach=True,
        host_config=host_config, networking_config=networking_config)
    try:
        for network in networks[1:]:
            client.api.connect_container_to_network(created["Id"], network["name"], aliases=network["aliases"] or None,
                                                    ipv4_address=network["ipv4_address"])
        client.api.start(created["Id"])
    except Exception:
        client.api.remove_container(created["Id"], force=True)
        raise
    return created["Id"]


def ensure_service(client, params, check_mode=False):
    """Bring container ``params["name"]`` to ``params["state"]``. Returns the module's result."""
    name = params["name"]
    current = read_container(client, name)
    before = _state(current)
    if params["state"] == "absent":
        if current is not None and not check_mode:
            client.api.remove_container(current["Id"], force=True)
        action = "remove" if current is not None else "none"
        return dict(changed=current is not None, action=action,
                    diff=dict(before=before, after=dict(exists=False, running=False, config_hash=None)))
    image_id = read_image_id(client, params["image"])
    if image_id is None and not check_mode:
        raise MigrationError("Image %s is not on host %s: build or load it there first (no registry is used)."
                             % (params["image"], hostname()), image=params["image"], host=hostname())
    config = declared_config(params, image_id)
    wanted = config_hash(config)
    action = next_action(current["Config"].get("Labels") if current is not None else None,
                         current is not None and current["State"]["Running"], wanted)
    result = dict(changed=action != "none", action=action, config_hash=wanted, image_id=image_id,
                  run_argv=run_argv(name, params["image"], config, wanted),
                  diff=dict(before=before, after=dict(exists=True, running=True, config_hash=wanted)))
    if check_mode:
        return result
    if action == "recreate":
        client.api.remove_container(current["Id"], force=True)
    if action in ("create", "recreate"):
        container_id = create_and_start(client, name, params["image"], config, wanted)
    else:
        container_id = current["Id"]
        if action == "start":
            client.api.start(container_id)
    final = current if action == "none" else client.api.inspect_container(container_id)
    networks = final["NetworkSettings"]["Networks"] or {}
    result.update(container_id=container_id,
                  ip_addresses={net: (info or {}).get("IPAddress") for net, info in networks.items()})
    return result


def _state(current):
    if current is None:
        return dict(exists=False, running=False, config_hash=None)
    return dict(exists=True, running=bool(current["State"]["Running"]),
                config_hash=(current["Config"].get("Labels") or {}).get(CONFIG_LABEL))
