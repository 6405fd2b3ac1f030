# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Migration operations as importable functions.

The modules in ``plugins/modules`` are thin: they turn their arguments into
calls of these functions and return what the functions measured. Functions
raise ``MigrationError`` for expected failures (the module turns it into a
clear ``fail_json``) and take:

* ``client``: a ``docker.DockerClient`` (SDK >= 5.0) from ``docker_client.get_client``;
* ``module``: the ``AnsibleModule``, for ``run_command`` (CLI, tar-free tools);
* ``cli``: a ``docker_client.DockerCli`` for checkpoints (the SDK has no call).

Durations are seconds (monotonic clock); sizes are bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tarfile
import time

from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C, hostname
from ansible_collections.mec.migration.plugins.module_utils.timing import Stopwatch, wall_clock

# Image configuration keys that `docker import` drops unless given as changes.
IMAGE_CONFIG_KEYS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Labels")
IMAGE_CONFIG_NAMES = dict(Cmd="CMD", Entrypoint="ENTRYPOINT", Env="ENV", WorkingDir="WORKDIR", User="USER",
                          ExposedPorts="EXPOSE", Labels="LABEL")
DEFAULT_SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    # One master connection per run: pre-relocation opens it, relocation reuses it.
    "-o", "ControlMaster=auto",
    "-o", "ControlPath=/var/tmp/mec-migration/ssh-%r@%h:%p",
    "-o", "ControlPersist=300",
]
STREAM_CHUNK = 1024 * 1024


class MigrationError(Exception):
    """An expected failure with a message for the user and details for the result."""

    def __init__(self, msg, **details):
        super(MigrationError, self).__init__(msg)
        self.msg = msg
        self.details = details


# --------------------------------------------------------------------------- helpers

def dir_size(path):
    """Bytes of the regular files below ``path`` (0 if it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size
    return total


def free_bytes(path):
    """Free bytes on the file system of ``path`` (or its closest existing parent)."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    return st.f_bavail * st.f_frsize


def _stream_to_file(chunks, path):
    size = 0
    with open(path, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
    return size


def find_container(client, name):
    """Inspect data of container ``name``, or None."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound
    try:
        return client.api.inspect_container(name)
    except NotFound:
        return None


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


def docker_root(client):
    return client.info().get("DockerRootDir", "/var/lib/docker")


def container_checkpoint_dir(client, container_id, name=None):
    base = os.path.join(docker_root(client), "containers", container_id, "checkpoints")
    return os.path.join(base, name) if name else base


# --------------------------------------------------------------------------- run configuration

def _short_aliases(info):
    return set([info["Id"][:12], info["Id"], info["Name"].lstrip("/")])


def capture_run_config(client, name):
    """The run configuration of a container, split into what the image gives and what `docker run` added.

    ``overrides`` holds only the run-time settings that differ from the image's
    configuration, so re-creating from an image that kept its configuration
    (commit/save/load) reproduces the source exactly, while an imported image
    (export/import) gets only the run-time settings: what the image gave is lost.
    """
    info = require_container(client, name)
    image = client.api.inspect_image(info["Image"])
    cfg = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    icfg = image.get("Config") or {}

    overrides = {}
    image_env = set(icfg.get("Env") or [])
    env = [e for e in cfg.get("Env") or [] if e not in image_env]
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
    if cfg.get("StopSignal") and cfg.get("StopSignal") != icfg.get("StopSignal"):
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
        image=cfg.get("Image"),
        image_id=info["Image"],
        running=bool(state.get("Running")),
        status=state.get("Status"),
        overrides=overrides,
        ports=host.get("PortBindings") or {},
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


# --------------------------------------------------------------------------- images

def export_container(client, name, dest):
    """`docker export` of ``name`` into the tarball ``dest``; returns bytes and duration."""
    require_container(client, name)
    t0 = time.monotonic()
    size = _stream_to_file(client.api.export(name), dest)
    return dict(path=dest, size=size, duration=round(time.monotonic() - t0, 6))


def _repo_tag(ref):
    if ":" in ref.rsplit("/", 1)[-1]:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def find_image(client, ref):
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound
    try:
        return client.api.inspect_image(ref)
    except NotFound:
        return None


def import_image(client, src, ref, changes=None, source_config=None):
    """`docker import` of tarball ``src`` as ``ref`` with Dockerfile ``changes``; reports lost config."""
    repo, tag = _repo_tag(ref)
    t0 = time.monotonic()
    out = client.api.import_image_from_file(src, repository=repo, tag=tag, changes=changes or None)
    duration = round(time.monotonic() - t0, 6)
    text = out if isinstance(out, str) else out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
    if '"error"' in text or "errorDetail" in text:
        raise MigrationError("docker import of %s failed on host %s: %s" % (src, hostname(), text.strip()))
    image = client.api.inspect_image(ref)
    new_cfg = dict((k, (image.get("Config") or {}).get(k)) for k in IMAGE_CONFIG_KEYS)
    return dict(image=ref, image_id=image["Id"], size=int(image.get("Size") or 0), duration=duration,
                lost_config=lost_image_config(source_config, new_cfg) if source_config is not None else None,
                config=new_cfg)


def commit_container(client, name, ref, changes=None):
    """`docker commit` (the engine pauses the container); measures the pause from the engine's events."""
    info = require_container(client, name)
    repo, tag = _repo_tag(ref)
    since = wall_clock()
    t0 = time.monotonic()
    res = client.api.commit(info["Id"], repository=repo, tag=tag, changes=changes or None)
    duration = round(time.monotonic() - t0, 6)
    until = wall_clock() + 0.001
    freeze = None
    try:
        pause = unpause = None
        for ev in client.api.events(since=int(since) - 1, until=int(until) + 1, decode=True,
                                    filters={"container": info["Id"], "event": ["pause", "unpause"]}):
            t = ev.get("timeNano", 0) / 1e9
            if t < since - 0.001:
                continue
            if ev.get("status", ev.get("Action")) == "pause" and pause is None:
                pause = t
            elif ev.get("status", ev.get("Action")) == "unpause" and pause is not None:
                unpause = t
        if pause is not None and unpause is not None:
            freeze = round(unpause - pause, 6)
    except Exception:
        freeze = None
    image = client.api.inspect_image(res["Id"])
    return dict(image=ref, image_id=image["Id"], size=int(image.get("Size") or 0), duration=duration,
                freeze_duration=freeze if freeze is not None else duration,
                freeze_source="engine events" if freeze is not None else "commit duration (upper bound)")


def save_image(client, ref, dest):
    """`docker save` of ``ref`` into ``dest``."""
    t0 = time.monotonic()
    size = _stream_to_file(client.api.get_image(ref), dest)
    return dict(path=dest, size=size, duration=round(time.monotonic() - t0, 6))


def load_image(client, src):
    """`docker load` of tarball ``src``; returns the loaded references."""
    t0 = time.monotonic()
    loaded = []
    with open(src, "rb") as fh:
        res = client.api.load_image(fh)
        for item in (res if not isinstance(res, (bytes, str)) else [json.loads(res)]):
            if isinstance(item, (bytes, str)):
                item = json.loads(item)
            if item.get("error"):
                raise MigrationError("docker load of %s failed on host %s: %s" % (src, hostname(), item["error"]))
            m = re.match(r"Loaded image(?: ID)?: (\S+)", item.get("stream", "").strip())
            if m:
                loaded.append(m.group(1))
    return dict(images=loaded, size=os.path.getsize(src), duration=round(time.monotonic() - t0, 6))


# --------------------------------------------------------------------------- checkpoints

def list_checkpoints(cli, name, checkpoint_dir=None):
    args = ["checkpoint", "ls", "--format", "{{.Name}}"]
    if checkpoint_dir:
        args += ["--checkpoint-dir", checkpoint_dir]
    rc, out, _err = cli.run(args + [name], check=False)
    return [ln.strip() for ln in out.splitlines() if ln.strip()] if rc == 0 else []


def create_checkpoint(client, cli, name, checkpoint, leave_running=True, checkpoint_dir=None):
    """`docker checkpoint create`; returns where it is, its size and the duration."""
    info = require_container(client, name)
    args = ["checkpoint", "create"]
    if leave_running:
        args.append("--leave-running")
    if checkpoint_dir:
        args += ["--checkpoint-dir", checkpoint_dir]
    t0 = time.monotonic()
    cli.run(args + [name, checkpoint], what="docker checkpoint create %s %s" % (name, checkpoint))
    duration = round(time.monotonic() - t0, 6)
    path = os.path.join(checkpoint_dir, checkpoint) if checkpoint_dir else \
        container_checkpoint_dir(client, info["Id"], checkpoint)
    return dict(path=path, size=dir_size(path), duration=duration)


def place_checkpoint(client, container, src_dir, checkpoint):
    """Copy checkpoint dir ``src_dir`` into the container's own ``checkpoints/<name>/``."""
    info = require_container(client, container)
    dest = container_checkpoint_dir(client, info["Id"], checkpoint)
    if os.path.realpath(src_dir) != os.path.realpath(dest):
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        shutil.copytree(src_dir, dest, symlinks=True)
    return dest


def start_from_checkpoint(client, cli, container, checkpoint):
    """`docker start --checkpoint` (the checkpoint must be in the container's own dir)."""
    t0 = time.monotonic()
    cli.run(["start", "--checkpoint", checkpoint, container],
            what="docker start --checkpoint %s %s" % (checkpoint, container))
    return round(time.monotonic() - t0, 6)


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


# --------------------------------------------------------------------------- volumes

def _tar_extract(tf, member, dest):
    if hasattr(tarfile, "data_filter"):
        tf.extract(member, dest, set_attrs=True, numeric_owner=True, filter="tar")
    else:  # Python < 3.11.4 (Debian 12 has 3.11.2)
        tf.extract(member, dest, set_attrs=True, numeric_owner=True)


def clear_dir(path):
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def write_volumes_tar(fileobj, volumes, stream=False):
    """Write ``{key: mountpoint}`` as one tar (members ``<key>/...``) into ``fileobj``."""
    with tarfile.open(fileobj=fileobj, mode="w|" if stream else "w", bufsize=STREAM_CHUNK if stream else 10240,
                      format=tarfile.PAX_FORMAT) as tf:
        for vol, mp in sorted(volumes.items()):
            tf.add(mp, arcname=vol, recursive=True)


def extract_volumes_tar(fileobj, volumes, stream=False):
    """Extract a tar made by ``write_volumes_tar`` into the mountpoints of ``{key: mountpoint}``."""
    for mp in volumes.values():
        clear_dir(mp)
    count = 0
    with tarfile.open(fileobj=fileobj, mode="r|" if stream else "r", bufsize=STREAM_CHUNK if stream else 10240) as tf:
        for member in tf:
            vol, _sep, rest = member.name.partition("/")
            if vol not in volumes:
                raise MigrationError("The volume stream holds %s, which is not a volume mount of the container "
                                     "(expected one of %s)." % (vol, ", ".join(sorted(volumes)) or "none"))
            if not rest:
                continue  # the volume's root directory itself
            if rest.startswith("/") or ".." in rest.split("/"):
                raise MigrationError("Unsafe path in the volume stream: %s" % member.name)
            member.name = rest
            _tar_extract(tf, member, volumes[vol])
            count += 1
    return count


def archive_volume(client, volume, dest):
    """Tar of the volume's Mountpoint into ``dest``."""
    mp = client.api.inspect_volume(volume)["Mountpoint"]
    t0 = time.monotonic()
    with open(dest, "wb") as fh:
        write_volumes_tar(fh, {"volume": mp})
    return dict(path=dest, size=os.path.getsize(dest), volume_size=dir_size(mp),
                duration=round(time.monotonic() - t0, 6))


def restore_volume(client, volume, src, create=True):
    """Create ``volume`` (if missing) and fill its Mountpoint from the tar ``src``."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound
    created = False
    try:
        info = client.api.inspect_volume(volume)
    except NotFound:
        if not create:
            raise MigrationError("Volume %s does not exist on host %s." % (volume, hostname()))
        info = client.api.create_volume(name=volume)
        created = True
    t0 = time.monotonic()
    with open(src, "rb") as fh:
        members = extract_volumes_tar(fh, {"volume": info["Mountpoint"]})
    return dict(created=created, members=members, volume_size=dir_size(info["Mountpoint"]),
                duration=round(time.monotonic() - t0, 6))


# --------------------------------------------------------------------------- transfers

def ssh_base(module, ssh_options=None):
    opts = list(DEFAULT_SSH_OPTIONS if ssh_options is None else ssh_options)
    if any(o.startswith("ControlPath=") for o in opts):
        os.makedirs("/var/tmp/mec-migration", mode=0o700, exist_ok=True)
    return opts


def _run(module, argv, what):
    binary = module.get_bin_path(argv[0], required=True)
    rc, out, err = module.run_command([binary] + list(argv[1:]), environ_update=LANG_C)
    if rc != 0:
        raise MigrationError("%s failed on host %s (rc=%s): %s" % (what, hostname(), rc, (err or out).strip()),
                             rc=rc, stdout=out, stderr=err)
    return out


RSYNC_STATS = {
    "files_transferred": r"Number of regular files transferred: ([\d,]+)",
    "total_file_size": r"Total file size: ([\d,]+) bytes",
    "transferred_file_size": r"Total transferred file size: ([\d,]+) bytes",
    "literal_data": r"Literal data: ([\d,]+) bytes",
    "matched_data": r"Matched data: ([\d,]+) bytes",
    "bytes_sent": r"Total bytes sent: ([\d,]+)",
    "bytes_received": r"Total bytes received: ([\d,]+)",
}


def parse_rsync_stats(text):
    """The figures of ``rsync --stats`` as integers."""
    stats = {}
    for key, pattern in RSYNC_STATS.items():
        m = re.search(pattern, text)
        if m:
            stats[key] = int(m.group(1).replace(",", ""))
    return stats


def transfer(module, method, src, dest_host, dest_path, user="root", ssh_options=None, delete=True):
    """Copy ``src`` to ``user@dest_host:dest_path`` with scp or rsync (over ssh), host to host."""
    opts = ssh_base(module, ssh_options)
    remote = "%s@%s:%s" % (user, dest_host, dest_path)
    t0 = time.monotonic()
    stats = {}
    if method == "scp":
        _run(module, ["scp", "-q", "-r"] + opts + [src, remote], "scp of %s to %s" % (src, dest_host))
        size = dir_size(src) if os.path.isdir(src) else os.path.getsize(src)
        stats = dict(bytes_sent=size)
    elif method == "rsync":
        ssh_bin = module.get_bin_path("ssh", required=True)
        rsh = " ".join([ssh_bin] + opts)
        argv = ["rsync", "-a", "--stats", "-e", rsh]
        if delete:
            argv.append("--delete")
        out = _run(module, argv + [src, remote], "rsync of %s to %s" % (src, dest_host))
        stats = parse_rsync_stats(out)
    else:
        raise MigrationError("Unknown transfer method %s (valid: scp, rsync)." % method)
    return dict(method=method, duration=round(time.monotonic() - t0, 6), stats=stats,
                transferred_bytes=stats.get("bytes_sent", 0))


def ssh_command(module, dest_host, argv, user="root", ssh_options=None, what=None):
    """Run ``argv`` on ``dest_host`` over ssh (list argv; each word quoted for the remote shell)."""
    import shlex
    opts = ssh_base(module, ssh_options)
    return _run(module, ["ssh"] + opts + ["%s@%s" % (user, dest_host), " ".join(shlex.quote(a) for a in argv)],
                what or "ssh %s %s" % (dest_host, argv[0]))


# --------------------------------------------------------------------------- app phase

def notify_phase(url, timeout=5, method="GET", validate_certs=True):
    """Tell a migration-aware app its phase (e.g. GET /changePhase?inMigration=1)."""
    from ansible.module_utils.urls import open_url
    t0 = time.monotonic()
    resp = open_url(url, method=method, timeout=timeout, validate_certs=validate_certs)
    body = resp.read()
    return dict(status=resp.getcode(), body=body.decode("utf-8", "replace")[:2048],
                duration=round(time.monotonic() - t0, 6))


# --------------------------------------------------------------------------- relocation

def _connect_retry(host, port, deadline):
    last = None
    while time.monotonic() < deadline:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError as exc:
            last = exc
            time.sleep(0.005)
    raise MigrationError("Could not connect to the target's receiver at %s:%s: %s" % (host, port, last))


def _wait_remote_ready(module, host, path, deadline, user="root", ssh_options=None):
    """Poll (over the run's shared ssh connection) until ``path`` exists on ``host``."""
    import shlex
    ssh_bin = module.get_bin_path("ssh", required=True)
    argv = [ssh_bin] + ssh_base(module, ssh_options) + ["%s@%s" % (user, host), "test -e %s" % shlex.quote(path)]
    while True:
        rc, _out, err = module.run_command(argv, environ_update=LANG_C)
        if rc == 0:
            return
        if rc == 255 or time.monotonic() > deadline:
            raise MigrationError("The target %s did not get ready for the relocation (%s): %s" % (
                host, path, (err or "timed out").strip()))
        time.sleep(0.02)


def relocate_source(module, client, cli, name, transfer_method, target_host, checkpoint=None,
                    target_checkpoint_dir=None, remote_workdir=None, port=None, stop_timeout=2,
                    ssh_options=None, user="root", timeout=120, local_workdir=None, result=None):
    """Source half of the relocation: stop (or final checkpoint), send state, signal completion.

    ``result`` (a dict) is filled as the steps go, so a caller still has the
    figures (and ``source_stopped``) when a step fails.
    """
    info = require_container(client, name)
    if not (info.get("State") or {}).get("Running"):
        raise MigrationError("Container %s is not running on the source host %s." % (name, hostname()))
    volumes = volume_streams(info)
    sw = Stopwatch()
    result = {} if result is None else result
    result.update(volumes=sorted(volume_mounts(info)), sizes={}, source_stopped=False, durations=sw.durations)
    deadline = time.monotonic() + timeout
    # Handshake before the stop: the source stops only once the target is ready to receive, so a target
    # that is down or failed its checks costs no downtime (and the wait is not part of the downtime).
    t0 = time.monotonic()
    sock = None
    if transfer_method == "nc":
        sock = _connect_retry(target_host, port, deadline)
    else:
        _wait_remote_ready(module, target_host, os.path.join(remote_workdir, "target.ready"), deadline,
                           user=user, ssh_options=ssh_options)
    result["handshake_duration"] = round(time.monotonic() - t0, 6)
    # A restart policy would bring the source back after the stop or the final checkpoint (which the
    # engine does not count as a manual stop): clear it; migration_rollback puts it back.
    policy = (info.get("HostConfig") or {}).get("RestartPolicy") or {}
    if policy.get("Name") not in (None, "", "no"):
        client.api.update_container(info["Id"], restart_policy={"Name": "no", "MaximumRetryCount": 0})
        result["restart_policy_cleared"] = policy
    try:
        result["stopped_at"] = wall_clock()
        result["source_stopped"] = True  # from here on a failure needs a rollback (idempotent if it still runs)
        if checkpoint:
            with sw.step("checkpoint"):
                ck = create_checkpoint(client, cli, name, checkpoint, leave_running=False)
            result["sizes"]["checkpoint_final"] = ck["size"]
            result["checkpoint_path"] = ck["path"]
        else:
            with sw.step("stop"):
                client.api.stop(info["Id"], timeout=stop_timeout)
        result["sizes"]["volume"] = sum(dir_size(mp) for mp in volumes.values())
        if checkpoint:
            with sw.step("checkpoint_transfer"):
                tr = transfer(module, "rsync", ck["path"].rstrip("/") + "/", target_host,
                              target_checkpoint_dir.rstrip("/") + "/", user=user, ssh_options=ssh_options)
            result["rsync_stats"] = tr["stats"]
            result["sizes"]["checkpoint_transferred"] = tr["transferred_bytes"]
        if transfer_method == "nc":
            with sw.step("volume_transfer"):
                try:
                    sock.settimeout(max(1.0, deadline - time.monotonic()))
                    with sock.makefile("wb", buffering=STREAM_CHUNK) as wf:
                        write_volumes_tar(wf, volumes, stream=True)
                    sock.shutdown(socket.SHUT_WR)  # EOF = completion signal
                    ack = sock.makefile("rb").readline().decode("utf-8", "replace").strip()
                finally:
                    sock.close()
            if ack != "OK":
                raise MigrationError("The target did not confirm the volume stream (answer: %r)." % ack)
        else:
            archive = os.path.join(local_workdir, "volumes.tar")
            with sw.step("volume_archive"):
                with open(archive, "wb") as fh:
                    write_volumes_tar(fh, volumes)
            result["sizes"]["volume_tarball"] = os.path.getsize(archive)
            with sw.step("volume_transfer"):
                transfer(module, "scp", archive, target_host, os.path.join(remote_workdir, "volumes.tar"),
                         user=user, ssh_options=ssh_options)
            with sw.step("signal"):
                ssh_command(module, target_host, ["touch", os.path.join(remote_workdir, "relocation.done")],
                            user=user, ssh_options=ssh_options, what="writing the completion marker on the target")
    except BaseException:
        if sock is not None:
            sock.close()  # the target sees the stream end early and fails at once
        raise
    result["durations"] = sw.durations
    result["transfer_duration"] = round(sum(v for k, v in sw.durations.items()
                                            if k in ("checkpoint_transfer", "volume_transfer", "signal")), 6)
    result["source_duration"] = round(sum(v for k, v in sw.durations.items()
                                          if k in ("checkpoint", "stop", "volume_archive")), 6)
    return result


def relocate_target(module, client, cli, name, transfer_method, checkpoint=None, port=None, workdir=None,
                    timeout=120, listen_address="0.0.0.0", result=None):
    """Target half: receive the volumes, wait for the completion signal, start (from the checkpoint)."""
    info = require_container(client, name)
    if (info.get("State") or {}).get("Running"):
        raise MigrationError("Container %s already runs on the target host %s." % (name, hostname()))
    volumes = volume_streams(info)
    sw = Stopwatch()
    result = {} if result is None else result
    result.update(volumes=sorted(volume_mounts(info)), durations=sw.durations)
    deadline = time.monotonic() + timeout
    if transfer_method == "nc":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            srv.bind((listen_address, port))
            srv.listen(1)
            srv.settimeout(timeout)
            with sw.step("wait"):
                try:
                    conn, _peer = srv.accept()
                except socket.timeout:
                    raise MigrationError("No volume stream arrived on port %s of host %s within %ss (did the "
                                         "source fail?)." % (port, hostname(), timeout))
                conn.settimeout(max(1.0, deadline - time.monotonic()))
                try:
                    # the source connects before it stops the app; the stream starts after its stop
                    conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    pass  # reported by the extraction below
            try:
                with sw.step("volume_receive"):
                    with conn.makefile("rb", buffering=STREAM_CHUNK) as rf:
                        result["members"] = extract_volumes_tar(rf, volumes, stream=True)
                        rest = rf.read()  # up to EOF: the completion signal
                        if rest.strip(b"\0"):
                            raise MigrationError("Unexpected data after the volume stream.")
                conn.sendall(b"OK\n")
            except (OSError, tarfile.TarError, EOFError) as exc:
                raise MigrationError("The volume stream was cut on host %s: %s" % (hostname(), exc))
            finally:
                conn.close()
        finally:
            srv.close()
    else:
        marker = os.path.join(workdir, "relocation.done")
        with open(os.path.join(workdir, "target.ready"), "w") as fh:
            fh.write("%s\n" % wall_clock())
        with sw.step("wait"):
            while not os.path.exists(marker):
                if time.monotonic() > deadline:
                    raise MigrationError("The completion marker %s did not appear on host %s within %ss (did "
                                         "the source fail?)." % (marker, hostname(), timeout))
                time.sleep(0.002)
        with sw.step("volume_restore"):
            with open(os.path.join(workdir, "volumes.tar"), "rb") as fh:
                result["members"] = extract_volumes_tar(fh, volumes)
    with sw.step("start"):
        if checkpoint:
            start_from_checkpoint(client, cli, info["Id"], checkpoint)
        else:
            client.api.start(info["Id"])
        running, state = wait_running(client, info["Id"], timeout=10)
    result["running_at"] = wall_clock()
    if not running:
        raise MigrationError("Container %s did not stay running on the target host %s (status %s, exit code %s, "
                             "error %r)." % (name, hostname(), state.get("Status"), state.get("ExitCode"),
                                             state.get("Error")), state=state)
    result["durations"] = sw.durations
    result["target_duration"] = round(sum(v for k, v in sw.durations.items() if k != "wait"), 6)
    return result


def _restore_policy(client, info, restart_policy):
    if restart_policy and restart_policy.get("Name") not in (None, "", "no") and \
            (info.get("HostConfig") or {}).get("RestartPolicy") != restart_policy:
        client.api.update_container(info["Id"], restart_policy=dict(
            Name=restart_policy["Name"], MaximumRetryCount=restart_policy.get("MaximumRetryCount") or 0))
        return True
    return False


def rollback_source(client, cli, name, checkpoint=None, restart_policy=None):
    """Bring the source container back: from its checkpoint (m3) or a plain start with its volumes.

    ``restart_policy`` (the source's own, which the relocation cleared) is put back.
    """
    info = require_container(client, name)
    if (info.get("State") or {}).get("Running"):
        policy_changed = _restore_policy(client, info, restart_policy)
        return dict(changed=policy_changed, method="already running", running=True)
    method = "start"
    errors = []
    if checkpoint and os.path.isdir(container_checkpoint_dir(client, info["Id"], checkpoint)):
        rc, _out, err = cli.run(["start", "--checkpoint", checkpoint, info["Id"]], check=False)
        if rc == 0:
            method = "checkpoint"
        else:
            errors.append("start from checkpoint %s failed: %s" % (checkpoint, err.strip()))
    if method == "start":
        client.api.start(info["Id"])
    running, state = wait_running(client, info["Id"], timeout=10)
    _restore_policy(client, info, restart_policy)
    return dict(changed=True, method=method, running=running, state=state, errors=errors)


def write_artifact(module, dest, force, func, *args, **kwargs):
    """The shape of the modules that write one file (export, save, volume archive): an existing ``dest`` is
    kept unless ``force`` (changed=false), check mode only reports, else ``func`` writes it. Exits."""
    if os.path.exists(dest) and not force:
        module.exit_json(changed=False, path=dest, size=os.path.getsize(dest), duration=0.0)
    if module.check_mode:
        module.exit_json(changed=True, path=dest, size=0, duration=0.0)
    module.exit_json(changed=True, **run_guarded(module, func, *args, **kwargs))


def run_guarded(module, func, *args, **kwargs):
    """Call ``func``; turn expected and unexpected failures into a clear ``fail_json``.

    ``fail_extra`` (a dict, may be filled by ``func`` while it runs) is added to
    the failure's result, so partial figures survive a failure.
    """
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError, fail
    extra = kwargs.pop("fail_extra", None)
    try:
        return func(*args, **kwargs)
    except MigrationError as exc:
        details = dict(extra or {})
        details.update(exc.details)
        details.setdefault("host", hostname())
        module.fail_json(msg=exc.msg, **details)
    except APIError as exc:
        fail(module, "The Docker engine on host %s refused: %s" % (hostname(), getattr(exc, "explanation", None)
                                                                   or exc), exc=exc, host=hostname(), **(extra or {}))
    except (OSError, tarfile.TarError) as exc:
        fail(module, "%s on host %s: %s" % (type(exc).__name__, hostname(), exc), exc=exc, host=hostname(),
             **(extra or {}))
    except Exception as exc:
        fail(module, "Unexpected %s on host %s: %s" % (type(exc).__name__, hostname(), exc), exc=exc,
             host=hostname(), **(extra or {}))
