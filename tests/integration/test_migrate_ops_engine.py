"""The migration operations (plugins/module_utils) against this machine's Docker engine, on real containers of
mec-test/counter:1.

Source and "target" share one engine here, so the target container gets another name and volume; the
lab tests (test_migrate_lab.py) run the real two-host playbook.
"""
import copy
import os
import re
import threading
import time

import pytest

from ansible_collections.mec.migration.plugins.module_utils import images, relocation, run_config, volumes

pytestmark = pytest.mark.docker


def _read(client, name, path):
    cid = client.api.exec_create(name, ["cat", path])["Id"]
    return client.api.exec_start(cid).decode().strip()


def _wait_value(client, name, path, minimum=1, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = int(_read(client, name, path) or 0)
            if value >= minimum:
                return value
        except ValueError:
            pass
        time.sleep(0.1)
    raise AssertionError("%s:%s never reached %s" % (name, path, minimum))


def _volume_count(client, volume):
    """The count in a volume, read from the host side (for a stopped container)."""
    with open(os.path.join(client.api.inspect_volume(volume)["Mountpoint"], "count")) as fh:
        return int(fh.read())


def _starts(client, name):
    """The volume counts the counter app started from, oldest first (its log's start lines)."""
    logs = client.api.logs(name, stdout=True, stderr=True).decode()
    return [int(n) for n in re.findall(r"^counter started: volume count (\d+)$", logs, re.M)]


def _run_counter(client, cleanup, image, name, volume=None, **host):
    binds = ["%s:/data:rw" % volume] if volume else None
    if volume:
        client.api.create_volume(volume, labels={"mec.migration.test": "1"})
        cleanup.volumes.append(volume)
    hc = client.api.create_host_config(binds=binds, **host)
    cid = client.api.create_container(image, name=name, environment=["RUN_ENV=1"],
                                      labels={"mec.migration.test": "1"}, host_config=hc,
                                      volumes=["/data"] if volume else None)["Id"]
    cleanup.containers.append(name)
    client.api.start(cid)
    return cid


def _retarget(run_config, suffix):
    """The run config for a second container on the same engine: other name, other volumes, no host ports."""
    cfg = copy.deepcopy(run_config)
    cfg["name"] = cfg["name"] + suffix
    cfg["ports"] = {}
    for m in cfg["mounts"]:
        if m["type"] == "volume":
            m["name"] = m["name"] + suffix
    return cfg


def test_export_import_loses_image_config(docker_client, counter_image, cleanup, unique, tmp_path):
    c = docker_client
    _run_counter(c, cleanup, counter_image, unique)
    src = run_config.capture_run_config(c, unique)
    exp = images.export_container(c, unique, str(tmp_path / "fs.tar"))
    assert exp["size"] == os.path.getsize(str(tmp_path / "fs.tar")) > 1000000
    ref = "mec-test/%s-imported:1" % unique
    cleanup.images.append(ref)
    imp = images.import_image(c, exp["path"], ref, source_config=src["image_config"])
    assert imp["lost_config"] == ["CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL"]

    name = unique + "-m1"
    cleanup.containers.append(name)
    command = src["effective"]["entrypoint"] + src["effective"]["cmd"]  # the seed's manual input
    run_config.create_container_from_config(c, _retarget(src, "-m1"), ref, name=name, start_command=command, start=True)
    cfg = c.api.inspect_container(name)["Config"]
    assert cfg["Entrypoint"] is None and cfg["WorkingDir"] == "" and cfg["User"] == ""
    assert "MEC_APP=counter" not in cfg["Env"] and "RUN_ENV=1" in cfg["Env"]  # run-time env kept, image env lost
    assert _wait_value(c, name, "/tmp/mem.value") >= 1  # the manual command starts it


def test_commit_save_load_keeps_image_config(docker_client, counter_image, cleanup, unique, tmp_path):
    c = docker_client
    _run_counter(c, cleanup, counter_image, unique, restart_policy={"Name": "unless-stopped"})
    src = run_config.capture_run_config(c, unique)
    ref = "mec-test/%s-committed:1" % unique
    cleanup.images.append(ref)
    com = images.commit_container(c, unique, ref)
    print("commit %.3fs, freeze %.3fs (%s)" % (com["duration"], com["freeze_duration"], com["freeze_source"]))
    # The engine pauses the container for the commit and reports it: the freeze is measured from its pause and
    # unpause events (not the fallback, the commit's whole duration), so it lies strictly inside the commit.
    assert com["freeze_source"] == "engine events"
    assert 0 < com["freeze_duration"] < com["duration"]
    saved = images.save_image(c, ref, str(tmp_path / "img.tar"))
    c.api.remove_image(ref, force=True)
    loaded = images.load_image(c, saved["path"])
    assert loaded["images"] == [ref]

    name = unique + "-m2"
    cleanup.containers.append(name)
    run_config.create_container_from_config(c, _retarget(src, "-m2"), ref, name=name, start=True)
    cleanup.volumes.extend(m["name"] for m in _retarget(src, "-m2")["mounts"] if m["type"] == "volume")
    want, got = c.api.inspect_container(unique), c.api.inspect_container(name)
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts"):
        assert got["Config"][key] == want["Config"][key], key
    assert got["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert _wait_value(c, name, "/tmp/mem.value") >= 1


def test_run_config_networks_aliases_ports(docker_client, counter_image, cleanup, unique):
    c = docker_client
    net = unique + "-net"
    c.api.create_network(net, labels={"mec.migration.test": "1"})
    cleanup.networks.append(net)
    hc = c.api.create_host_config(network_mode=net, port_bindings={"8080/tcp": ("127.0.0.1", None)})
    netcfg = c.api.create_networking_config({net: c.api.create_endpoint_config(aliases=["gateway-app"])})
    c.api.create_container(counter_image, name=unique, host_config=hc, networking_config=netcfg, ports=[8080],
                           labels={"mec.migration.test": "1"})
    cleanup.containers.append(unique)
    src = run_config.capture_run_config(c, unique)
    assert src["networks"] == {net: {"aliases": ["gateway-app"], "ipv4_address": None}}
    cfg = _retarget(src, "-copy")
    cfg["ports"] = src["ports"]
    name = unique + "-copy"
    cleanup.containers.append(name)
    run_config.create_container_from_config(c, cfg, counter_image, name=name)
    got = c.api.inspect_container(name)
    assert got["NetworkSettings"]["Networks"][net]["Aliases"][:1] == ["gateway-app"]
    assert got["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}


def test_volume_archive_restore(docker_client, counter_image, cleanup, unique, tmp_path):
    c = docker_client
    _run_counter(c, cleanup, counter_image, unique, volume=unique + "-data")
    value = _wait_value(c, unique, "/data/count", minimum=3)
    c.api.stop(unique, timeout=2)
    arch = volumes.archive_volume(c, unique + "-data", str(tmp_path / "v.tar"))
    assert arch["volume_size"] > 0
    cleanup.volumes.append(unique + "-copy")
    res = volumes.restore_volume(c, unique + "-copy", arch["path"])
    mp = c.api.inspect_volume(unique + "-copy")["Mountpoint"]
    assert res["created"] is True
    assert int(open(os.path.join(mp, "count")).read()) >= value
    assert os.stat(os.path.join(mp, "count")).st_uid == 1000  # owner kept (the app runs as uid 1000)


def test_relocation_on_loopback_continues_volume_counter(docker_client, counter_image, cleanup, unique,
                                                         ansible_module, tmp_path):
    """Both halves of migration_relocate on one engine over 127.0.0.1 (the authenticated stream); prints the
    downtime figures."""
    secret = "c3" * 32
    c = docker_client
    _run_counter(c, cleanup, counter_image, unique, volume=unique + "-data")
    src = run_config.capture_run_config(c, unique)
    dst = _retarget(src, "-t")
    cleanup.containers.append(dst["name"])
    cleanup.volumes.append(unique + "-data-t")
    run_config.create_container_from_config(c, dst, counter_image)
    before = _wait_value(c, unique, "/data/count", minimum=5)
    port = 47000 + int(unique[-3:], 16) % 1000
    out = {}

    def target():
        try:
            out["t"] = relocation.relocate_target(ansible_module, c, dst["name"], "stream", port=port, timeout=20,
                                                  listen_address="127.0.0.1", source_address="127.0.0.1",
                                                  secret=secret, run_id=unique)
        except Exception as exc:
            out["err"] = exc
    t = threading.Thread(target=target)
    t.start()
    s = relocation.relocate_source(ansible_module, c, unique, "stream", "127.0.0.1", port=port, stop_timeout=2,
                                   timeout=20, local_workdir=str(tmp_path), secret=secret, run_id=unique)
    t.join(30)
    assert "err" not in out, out.get("err")
    tres = out["t"]
    wall = tres["running_at"] - s["stopped_at"]
    ops_sum = s["source_duration"] + s["transfer_duration"] + tres["target_duration"]
    print("loopback relocation: wall %.3fs, operations %.3fs, source %s, target %s"
          % (wall, ops_sum, s["durations"], tres["durations"]))
    assert not c.api.inspect_container(unique)["State"]["Running"]
    final = _volume_count(c, unique + "-data")  # the stopped source's last count
    assert final >= before
    now = int(_read(c, dst["name"], "/data/count"))  # once, no waiting
    # the target's app started from the source's last count and went on from there
    assert _starts(c, dst["name"]) == [final] and now >= final, (_starts(c, dst["name"]), final, now)
    assert 0 < wall and 0 < ops_sum


def test_rollback_brings_source_back_with_volume(docker_client, counter_image, cleanup, unique):
    c = docker_client
    _run_counter(c, cleanup, counter_image, unique, volume=unique + "-data")
    _wait_value(c, unique, "/data/count", minimum=3)
    c.api.stop(unique, timeout=2)
    final = _volume_count(c, unique + "-data")  # the count the app stopped at
    res = relocation.rollback_source(c, unique)
    assert (res["method"], res["running"]) == ("start", True)
    # started again from the count it stopped at (its second start line), and counting
    assert _starts(c, unique)[1:] == [final], (_starts(c, unique), final)
    assert _wait_value(c, unique, "/data/count", minimum=final + 1) > final
