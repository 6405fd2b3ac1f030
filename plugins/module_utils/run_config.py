# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""A container's run configuration: looked up, captured (what the image gives and what `docker run` added),
compared, and re-created on another engine."""

from __future__ import annotations

import time

from ansible_collections.mec.migration.plugins.module_utils import engines
from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError


IMAGE_CONFIG_KEYS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Labels", "StopSignal")


IMAGE_CONFIG_NAMES = dict(Cmd="CMD", Entrypoint="ENTRYPOINT", Env="ENV", WorkingDir="WORKDIR", User="USER",
                          ExposedPorts="EXPOSE", Labels="LABEL", StopSignal="STOPSIGNAL")


def is_named(info, name):
    """Whether inspect data ``info`` is the container called ``name`` (or whose full ID is ``name``). Docker and
    Podman answer a container reference that no container is named with the container whose ID *starts* with it, so
    that inspecting a missing "a3" returns a container whose ID begins a3... (seen on the Podman lab: A2's container
    answered for A3)."""
    return (info.get("Name") or "").lstrip("/") == name or info.get("Id") == name


def find_container(client, name):
    """Inspect data of the container called ``name``, or None (also when only an ID prefix matched: is_named)."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound
    try:
        info = client.api.inspect_container(name)
    except NotFound:
        return None
    return info if is_named(info, name) else None


def require_container(client, name):
    info = find_container(client, name)
    if info is None:
        raise MigrationError("Container %s does not exist on host %s." % (name, hostname()), host=hostname())
    return info


def volume_mounts(info):
    """``{volume_name: mountpoint}`` of the named volumes a container mounts."""
    return dict((m["Name"], m["Source"]) for m in info.get("Mounts") or [] if m.get("Type") == "volume")


def volume_streams(info):
    """``{key: mountpoint}`` of a container's named volumes, keyed by the (quoted) mount destination, which is
    the same on source and target even where the volumes' names differ."""
    from urllib.parse import quote
    return dict((quote(m["Destination"], safe=""), m["Source"]) for m in info.get("Mounts") or []
                if m.get("Type") == "volume")


def _short_aliases(info):
    return set([info["Id"][:12], info["Id"], info["Name"].lstrip("/")])


def capture_run_config(client, name):
    """The run configuration of a container, split into what the image gives and what `docker run` added.

    ``overrides`` holds only the run-time settings that differ from the image's
    configuration, so re-creating from an image that kept its configuration
    (commit/save/load) reproduces the source exactly, while an imported image
    (export/import) gets only the run-time settings: what the image gave is lost.
    What the engine adds to every container by itself (Podman: its environment, the default stop signal as a
    number, its default network's name) is not a run-time setting: the configuration reads the same on both
    engines (module_utils/engines.py).
    """
    info = require_container(client, name)
    engine = engines.engine_of(client)
    image = client.api.inspect_image(info["Image"])
    cfg = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    icfg = image.get("Config") or {}

    overrides = {}
    image_env = set(icfg.get("Env") or [])
    added_env = engines.engine_added_env(engine, info["Id"]) - image_env
    env = [e for e in cfg.get("Env") or [] if e not in image_env and e not in added_env]
    if env:
        overrides["env"] = env
    for key, field in (("cmd", "Cmd"), ("entrypoint", "Entrypoint"), ("working_dir", "WorkingDir"),
                       ("user", "User")):
        if (cfg.get(field) or None) != (icfg.get(field) or None) and cfg.get(field):
            overrides[key] = cfg.get(field)
    image_labels = icfg.get("Labels") or {}
    labels = dict((k, v) for k, v in (cfg.get("Labels") or {}).items() if image_labels.get(k) != v)
    if labels:
        overrides["labels"] = labels
    if cfg.get("Hostname") and cfg.get("Hostname") != info["Id"][:12]:
        overrides["hostname"] = cfg["Hostname"]
    image_ports = set((icfg.get("ExposedPorts") or {}).keys())
    exposed = sorted(set((cfg.get("ExposedPorts") or {}).keys()) - image_ports)
    if exposed:
        overrides["exposed_ports"] = exposed
    if cfg.get("StopSignal") and cfg.get("StopSignal") != icfg.get("StopSignal") and not (
            not icfg.get("StopSignal") and engines.default_stop_signal(engine, cfg["StopSignal"])):
        overrides["stop_signal"] = cfg["StopSignal"]

    mounts = []
    for m in info.get("Mounts") or []:
        if m.get("Type") == "volume":
            mounts.append(dict(type="volume", name=m["Name"], destination=m["Destination"], rw=bool(m.get("RW")),
                               driver=m.get("Driver") or "local"))
        elif m.get("Type") == "bind":
            mounts.append(dict(type="bind", source=m["Source"], destination=m["Destination"], rw=bool(m.get("RW"))))

    skip_aliases = _short_aliases(info)
    networks = {}
    drivers = {}
    for net, ep in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items():
        net = engines.portable_network(engine, net)
        aliases = [a for a in (ep.get("Aliases") or []) if a not in skip_aliases]
        ipam = ep.get("IPAMConfig") or {}
        networks[net] = dict(aliases=aliases, ipv4_address=ipam.get("IPv4Address") or None)
        if net not in ("bridge", "host", "none"):
            try:
                ninfo = client.api.inspect_network(net)
                drivers[net] = dict(driver=ninfo.get("Driver") or "bridge",
                                    subnets=[c.get("Subnet") for c in ((ninfo.get("IPAM") or {}).get("Config") or [])
                                             if c.get("Subnet")],
                                    labels=ninfo.get("Labels") or {})
            except Exception:
                drivers[net] = dict(driver="bridge", subnets=[], labels={})

    state = info.get("State") or {}
    return dict(
        name=info["Name"].lstrip("/"),
        id=info["Id"],
        image=engines.short_image_name(engine, cfg.get("Image")),
        image_id=info["Image"],
        running=bool(state.get("Running")),
        status=state.get("Status"),
        overrides=overrides,
        ports=dict((port, bindings) for port, bindings in (host.get("PortBindings") or {}).items()
                   if bindings is not None or not engines.lists_exposed_as_bindings(engine)),
        mounts=mounts,
        tmpfs=host.get("Tmpfs") or {},
        network_mode=host.get("NetworkMode") or "default",
        networks=networks,
        network_drivers=drivers,
        restart_policy=host.get("RestartPolicy") or {},
        image_config=dict((k, icfg.get(k)) for k in IMAGE_CONFIG_KEYS),
        effective=dict(cmd=cfg.get("Cmd"), entrypoint=cfg.get("Entrypoint"), env=cfg.get("Env"),
                       working_dir=cfg.get("WorkingDir"), user=cfg.get("User")),
    )


def lost_image_config(source_config, new_config):
    """Names (CMD, ENV, ...) of the configuration keys the source image had and the new image lacks."""
    lost = []
    for key in IMAGE_CONFIG_KEYS:
        had = (source_config or {}).get(key)
        now = (new_config or {}).get(key)
        if had and had != now:
            lost.append(IMAGE_CONFIG_NAMES[key])
    return lost


def ensure_networks(client, run_config):
    """Create the user-defined networks of ``run_config`` that the engine lacks; returns their names."""
    created = []
    for net, spec in (run_config.get("network_drivers") or {}).items():
        if any(n.get("Name") == net for n in client.api.networks(names=[net])):
            continue
        ipam = None
        if spec.get("subnets"):
            from docker.types import IPAMConfig, IPAMPool
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=s) for s in spec["subnets"]])
        client.api.create_network(net, driver=spec.get("driver") or "bridge", ipam=ipam,
                                  labels=spec.get("labels") or None)
        created.append(net)
    return created


def create_container_from_config(client, run_config, image, name=None, start_command=None, start=False):
    """Create (and optionally start) a container from a captured run configuration.

    ``start_command`` (a list) replaces the command, the seed's manual input for
    images that lost theirs. Returns ``(container_id, created_networks)``.
    """
    name = name or run_config["name"]
    ov = run_config.get("overrides") or {}
    created_networks = ensure_networks(client, run_config)

    binds, volumes = [], []
    for m in run_config.get("mounts") or []:
        mode = "rw" if m.get("rw", True) else "ro"
        src = m["name"] if m["type"] == "volume" else m["source"]
        if m["type"] == "volume" and not client.api.volumes(filters={"name": m["name"]}).get("Volumes"):
            client.api.create_volume(name=m["name"], driver=m.get("driver") or "local")
        binds.append("%s:%s:%s" % (src, m["destination"], mode))
        volumes.append(m["destination"])

    port_bindings = {}
    for port, bindings in (run_config.get("ports") or {}).items():
        # the SDK takes (ip, port) tuples; an empty host port lets the engine choose
        port_bindings[port] = [(b.get("HostIp") or "", b["HostPort"]) if b.get("HostPort") else (b.get("HostIp") or "",)
                               for b in (bindings or [])] or None
    ports = sorted(set(list(port_bindings.keys()) + list(ov.get("exposed_ports") or [])))
    ports = [tuple(p.split("/", 1)) if "/" in p else p for p in ports]

    restart = run_config.get("restart_policy") or {}
    restart_policy = None
    if restart.get("Name") and restart.get("Name") != "no":
        restart_policy = dict(Name=restart["Name"], MaximumRetryCount=restart.get("MaximumRetryCount") or 0)

    networks = run_config.get("networks") or {}
    mode = run_config.get("network_mode") or "default"
    first_net = mode if mode in networks else (sorted(networks)[0] if networks else None)
    host_config = client.api.create_host_config(
        binds=binds or None, port_bindings=port_bindings or None, restart_policy=restart_policy,
        network_mode=mode if mode not in ("default",) else None, tmpfs=run_config.get("tmpfs") or None)
    networking_config = None
    if first_net and first_net not in ("bridge", "host", "none"):
        spec = networks[first_net]
        networking_config = client.api.create_networking_config({first_net: client.api.create_endpoint_config(
            aliases=spec.get("aliases") or None, ipv4_address=spec.get("ipv4_address") or None)})

    command = list(start_command) if start_command else ov.get("cmd")
    kwargs = dict(image=image, command=command, name=name, environment=ov.get("env"),
                  hostname=ov.get("hostname"), user=ov.get("user"), working_dir=ov.get("working_dir"),
                  entrypoint=ov.get("entrypoint"), labels=ov.get("labels"), ports=ports or None,
                  volumes=volumes or None, host_config=host_config, networking_config=networking_config,
                  stop_signal=ov.get("stop_signal"))
    result = client.api.create_container(**dict((k, v) for k, v in kwargs.items() if v is not None))
    cid = result["Id"]
    for net, spec in sorted(networks.items()):
        if net == first_net or net in ("bridge", "host", "none") or mode in ("host", "none"):
            continue
        client.api.connect_container_to_network(cid, net, aliases=spec.get("aliases") or None,
                                                ipv4_address=spec.get("ipv4_address") or None)
    if start:
        client.api.start(cid)
    return cid, created_networks


def container_info(client, name, with_sizes=True):
    """Run configuration plus sizes (bytes) of container ``name``; ``None`` when absent."""
    if find_container(client, name) is None:
        return None
    cfg = capture_run_config(client, name)
    if with_sizes:
        rows = client.api.containers(all=True, size=True, filters={"id": cfg["id"]})
        row = rows[0] if rows else {}
        cfg["size_rw"] = int(row.get("SizeRw") or 0)
        cfg["size_root_fs"] = int(row.get("SizeRootFs") or 0)
        cfg["image_size"] = int(client.api.inspect_image(cfg["image_id"]).get("Size") or 0)
        cfg["volume_sizes"] = dict((m["name"], dir_size(mp)) for m in cfg["mounts"] if m["type"] == "volume"
                                   for mp in [volume_mounts(require_container(client, name)).get(m["name"], "")])
    return cfg


def wait_running(client, container, timeout=10.0):
    """Wait until the container runs; returns (running, state)."""
    deadline = time.monotonic() + timeout
    state = {}
    while True:
        state = client.api.inspect_container(container).get("State") or {}
        if state.get("Running") and not state.get("Restarting"):
            return True, state
        if time.monotonic() >= deadline or state.get("Status") in ("exited", "dead"):
            return False, state
        time.sleep(0.02)


# How long a started container must keep running, as the same start, before its migration counts: an app that exits
# (or is restarted by its restart policy) right after its start, e.g. on a volume state it refuses, is caught here.
SETTLE_WINDOW = 0.5


def check_settled(client, container, state, since, restart_count=0, window=SETTLE_WINDOW, host=None, name=None):
    """After ``wait_running`` saw the container run (``state``, its State then; ``since``, time.monotonic() then):
    wait until ``window`` seconds after ``since`` and require the container to run still as that same start (the same
    ``StartedAt``, ``restart_count`` restarts: its count before the start). Returns the State now; otherwise removes
    the container (its last output goes into the error) and raises MigrationError naming the host, the container and
    what happened.

    Removed, not stopped: a container that exited and has a restart policy is started again by its engine a moment
    later (Podman's clean-up process, Docker's restart manager), and a stop of a container that is not running at
    that moment changes nothing, so the rescue would find the target running and take it for the app's migrated
    copy. A forced removal leaves nothing to restart; the rescue's clean-up would remove it anyway."""
    left = since + window - time.monotonic()
    if left > 0:
        time.sleep(left)
    info = client.api.inspect_container(container)
    now = info.get("State") or {}
    restarts = info.get("RestartCount") or 0
    what = None
    if not now.get("Running") or now.get("Restarting"):
        what = "exited within %ss of its start (status %s, exit code %s, error %r)" % (
            window, now.get("Status"), now.get("ExitCode"), now.get("Error"))
    elif now.get("StartedAt") != state.get("StartedAt") or restarts != (restart_count or 0):
        what = ("was started again within %ss of its start (it exited and its restart policy restarted it: started at "
                "%s, then %s; %s restart(s))" % (window, state.get("StartedAt"), now.get("StartedAt"), restarts))
    if what:
        output = _last_output(client, container)
        try:
            client.api.remove_container(container, force=True)
            gone = "the container was removed"
        except Exception as exc:  # the failure below is the one to report; at least stop it
            gone = "the container could not be removed (%s)" % exc
            try:
                client.api.stop(container, timeout=1)
            except Exception:
                pass
        raise MigrationError("Container %s did not stay running on host %s: it %s. The app may refuse its state or "
                             "configuration there; %s. Its last output (%s logs): %s"
                             % (name or container, host or hostname(), what, gone, engines.engine_of(client),
                                output or "(none)"), state=now)
    return now


def _last_output(client, container, lines=20, limit=2000):
    """The container's last ``lines`` lines of output, at most ``limit`` characters, as one line (for an error)."""
    try:
        raw = client.api.logs(container, stdout=True, stderr=True, tail=lines)
    except Exception as exc:
        return "(not readable: %s)" % exc
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text[-limit:]
