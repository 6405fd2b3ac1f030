"""What the modules do differently on Podman (each test runs one module's main() with a mocked client whose
mec_engine is the engine, as docker_client.get_client marks it): exact calls and results."""
from unittest import mock

from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.modules import container_info, image_import, migration_preflight
from .conftest import AnsibleFailJson, inspect_container, inspect_image

CID = "a22819fc70996009d3ed038560cd2c394ff3c3f1363c86b64e804d33dc53d68e"


def podman_counter():
    """The counter test app as Podman 4.3.1's compatible API inspects it (fields the modules read)."""
    data = inspect_container(name="counter", cid=CID, mounts=[
        {"Type": "volume", "Name": "counter-data", "Source": "/var/lib/containers/storage/volumes/counter-data/_data",
         "Destination": "/data", "Driver": "local", "RW": True}])
    data["Config"].update(Image="localhost/mec-test/counter:1", Cmd=["/opt/counter/counter.sh"], Entrypoint=["/bin/sh"],
                          Env=["PATH=/bin", "COUNTER_INTERVAL=0.1", "TERM=xterm", "container=podman",
                               "HOSTNAME=" + CID[:12], "MODE=x"],
                          WorkingDir="/opt/counter", User="1000", StopSignal="15")
    data["HostConfig"].update(NetworkMode="bridge", PortBindings={"8080/tcp": None})
    data["NetworkSettings"]["Networks"] = {"podman": {"Aliases": None, "IPAMConfig": None}}
    return data


def counter_image():
    return inspect_image(Cmd=["/opt/counter/counter.sh"], Entrypoint=["/bin/sh"],
                         Env=["PATH=/bin", "COUNTER_INTERVAL=0.1"], WorkingDir="/opt/counter", User="1000")


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_run_config_leaves_out_what_podman_adds(run_module, client, engine):
    client.mec_engine = engine
    client.api.inspect_container.return_value = podman_counter()
    client.api.inspect_image.return_value = counter_image()
    client.api.inspect_network.return_value = {"Driver": "bridge", "IPAM": {"Config": []}, "Labels": {}}
    res = run_module(container_info, {"name": "counter", "sizes": False, "engine": engine})
    c = res["container"]
    if engine == "podman":
        assert c["overrides"] == {"env": ["MODE=x"]}
        assert c["ports"] == {}  # an exposed port Podman lists as a binding is not published
        assert c["networks"] == {"bridge": {"aliases": [], "ipv4_address": None}}
        assert c["image"] == "mec-test/counter:1"
        client.api.inspect_network.assert_not_called()
        assert res["engine"]["name"] == "podman"
    else:  # the same data from Docker: everything is the user's own
        assert c["overrides"] == {"env": ["TERM=xterm", "container=podman", "HOSTNAME=" + CID[:12], "MODE=x"],
                                  "stop_signal": "15"}
        assert c["networks"] == {"podman": {"aliases": [], "ipv4_address": None}}
        assert c["ports"] == {"8080/tcp": None}
        assert c["image"] == "localhost/mec-test/counter:1"
        client.api.inspect_network.assert_called_once_with("podman")
        assert res["engine"]["name"] == "docker"


def test_a_podman_target_offers_no_layers_to_leave_out(run_module, client):
    client.mec_engine = "podman"
    client.api.inspect_container.side_effect = NotFound("none")
    res = run_module(container_info, {"name": "counter", "chain_ids": True, "engine": "podman"})
    assert res["chain_ids"] == []
    client.api.images.assert_not_called()


def test_a_docker_target_offers_the_layers_it_holds(run_module, client):
    client.api.inspect_container.side_effect = NotFound("none")
    client.api.images.return_value = ["sha256:" + "1" * 64]
    client.api.inspect_image.return_value = {"RootFS": {"Layers": ["sha256:" + "2" * 64]}}
    res = run_module(container_info, {"name": "counter", "chain_ids": True})
    assert res["chain_ids"] == ["sha256:" + "2" * 64]
    client.api.images.assert_called_once_with(all=True, quiet=True)


@pytest.mark.parametrize("engine,repository,tag", [("podman", "mec-migration/a2:r1", None),
                                                   ("docker", "mec-migration/a2", "r1")])
def test_import_names_the_image_as_each_engine_takes_it(run_module, client, tmp_path, engine, repository, tag):
    src = tmp_path / "fs.tar"
    src.write_bytes(b"x" * 10)
    client.mec_engine = engine
    client.api.inspect_image.side_effect = [NotFound("none"), inspect_image(Cmd=None)]
    client.api.import_image_from_file.return_value = '{"status":"sha256:' + "d" * 64 + '"}'
    run_module(image_import, {"src": str(src), "image": "mec-migration/a2:r1", "engine": engine})
    client.api.import_image_from_file.assert_called_once_with(str(src), repository=repository, tag=tag, changes=None)


def _preflight(run_module, tmp_path, **args):
    params = dict(role="source", name="counter", peer_address="192.0.2.12", work_root=str(tmp_path))
    params.update(args)
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_preflight, params)
    return exc.value.result


@pytest.mark.parametrize("engine,peer", [("docker", "podman"), ("podman", "docker")])
def test_preflight_refuses_m3_across_engines(run_module, client, run_command, tmp_path, engine, peer):
    client.mec_engine = engine
    client.api.inspect_container.return_value = inspect_container(running=True)
    run_command.return_value = (0, "Looks good.", "")
    res = _preflight(run_module, tmp_path, criu=True, engine=engine, peer_engine=peer)
    (m3,) = [p for p in res["problems"] if p.startswith("Strategy m3")]
    assert m3.startswith("Strategy m3 (CRIU checkpoint/restore) runs only between two hosts of the same engine: %s "
                         "is %s and the target host is %s (" % (migration_preflight.hostname(), engine.title(),
                                                                peer.title()))
    assert "Use strategy m2" in m3
    assert res["engine"]["name"] == engine


def test_preflight_checks_m3_podman_to_podman_for_its_tools(run_module, client, run_command, tmp_path):
    """m3 between two Podman hosts: no engine problem, no Docker experimental features asked for; CRIU checked, and
    the podman and runc binaries m3 runs there are required."""
    client.mec_engine = "podman"
    client.api.inspect_container.return_value = inspect_container(running=True)
    run_command.return_value = (0, "Looks good.", "")
    with mock.patch("ansible.module_utils.basic.AnsibleModule.get_bin_path",
                    side_effect=lambda name, *a, **kw: None if name == "runc" else "/usr/bin/" + name):
        res = _preflight(run_module, tmp_path, criu=True, engine="podman", peer_engine="podman")
    assert not [p for p in res["problems"] if p.startswith("Strategy m3") or "experimental" in p], res["problems"]
    assert [p for p in res["problems"] if p.startswith("runc is not installed on")], res["problems"]


def test_preflight_passes_m2_across_engines(run_module, client, tmp_path):
    client.mec_engine = "podman"
    client.api.inspect_container.return_value = inspect_container(name="counter", running=True)
    res = run_module(migration_preflight, dict(role="source", name="counter", peer_address="192.0.2.12",
                                               work_root=str(tmp_path), engine="podman", peer_engine="docker"))
    assert res["problems"] == []
    assert res["engine"]["name"] == "podman"


def test_preflight_passes_a_podman_source_with_a_restart_policy(run_module, client, tmp_path):
    """Podman never undoes the migration's stop by a restart policy: nothing to refuse (relocation.py leaves the
    policy alone on Podman, engines.can_update_restart_policy)."""
    client.mec_engine = "podman"
    data = inspect_container(name="counter", running=True)
    data["HostConfig"]["RestartPolicy"] = {"Name": "always", "MaximumRetryCount": 0}
    client.api.inspect_container.return_value = data
    res = run_module(migration_preflight, dict(role="source", name="counter", peer_address="192.0.2.12",
                                               work_root=str(tmp_path), engine="podman"))
    assert res["problems"] == []
    client.api.update_container.assert_not_called()


def test_the_record_names_each_hosts_engine(run_module, tmp_path):
    from ansible_collections.mec.migration.plugins.modules import migration_record
    base = dict(results_dir=str(tmp_path), status="ok", outcome="migrated", run_id="r1", app="a2", strategy="m2",
                network="n1", started_at=10.0)
    res = run_module(migration_record, dict(base, source={"host": "mec-pod-docker", "address": "172.30.81.13",
                                                          "engine": "docker"},
                                            target={"host": "mec-pod-source", "address": "172.30.81.11",
                                                    "engine": "podman"}))
    assert (res["record"]["source"], res["record"]["target"]) == (
        {"host": "mec-pod-docker", "address": "172.30.81.13", "engine": "docker"},
        {"host": "mec-pod-source", "address": "172.30.81.11", "engine": "podman"})
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_record, dict(base, run_id="r2", source={"host": "h", "address": "a", "engine": "lxc"},
                                          target={"host": "t", "address": "b"}))
    assert "engine" in exc.value.result["msg"] and "lxc" in exc.value.result["msg"]


def _podman_save(layers, config, name):
    """What Podman 4.3 streams for `save` (docker-archive): <diff ID hex>.tar per layer at the top, the config,
    <v1 id>/layer.tar as links to the top-level files, manifest.json naming the top-level files."""
    import hashlib
    import io
    import json
    import tarfile
    buf = io.BytesIO()
    config_id = hashlib.sha256(config).hexdigest()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        def add(n, data=None, link=None):
            info = tarfile.TarInfo(n)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        names = []
        for raw in layers:
            names.append(hashlib.sha256(raw).hexdigest() + ".tar")
            add(names[-1], raw)
        add(config_id + ".json", config)
        for i, n in enumerate(names):
            add("%064x/layer.tar" % (i + 1), link="../" + n)
        add("manifest.json", json.dumps([{"Config": config_id + ".json", "RepoTags": ["docker.io/" + name],
                                          "Layers": names}]).encode())
    return buf.getvalue(), "sha256:" + config_id


def test_a_podman_source_leaves_out_what_a_docker_target_holds(tmp_path):
    """Podman -> Docker: the layer files of Podman's save layout are dropped like Docker's layer.tar."""
    import hashlib
    import json
    import tarfile
    from unittest import mock
    from ansible_collections.mec.migration.plugins.module_utils import images
    base, top = b"B" * 5000, b"T" * 700
    diffs = ["sha256:" + hashlib.sha256(raw).hexdigest() for raw in (base, top)]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    stream, image_id = _podman_save([base, top], config, "mec-migration/a2:r1")
    client = mock.MagicMock(name="DockerClient")
    client.mec_engine = "podman"
    client.info.return_value = {"Driver": "overlay", "DockerRootDir": "/var/lib/containers/storage"}
    client.api.inspect_image.return_value = {"Id": image_id, "RootFS": {"Layers": diffs}}
    client.api.get_image.return_value = iter([stream[i:i + 4096] for i in range(0, len(stream), 4096)])
    dest = tmp_path / "image.tar"
    with mock.patch.object(images, "_local_engine", return_value=True):
        res = images.write_image_archive(client, "mec-migration/a2:r1", str(dest), images.chain_ids(diffs)[:1])
    client.api.get_image.assert_called_once_with("mec-migration/a2:r1")
    assert res["method"] == "save" and "overlay" in res["fallback_reason"]
    assert (res["layers_sent"], res["layers_skipped"], res["bytes_skipped"]) == (1, 1, len(base))
    with tarfile.open(str(dest)) as tar:
        names = tar.getnames()
    assert diffs[0].split(":")[1] + ".tar" not in names and diffs[1].split(":")[1] + ".tar" in names
    plan = images.read_archive_plan(str(dest))[0]
    assert plan["config_id"] == image_id
    assert [layer["in_archive"] for layer in plan["layers"]] == [False, True]
