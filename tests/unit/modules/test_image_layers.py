"""Layer-skipping image archives (module_utils/images.py): which layers are sent, the two writers, the load's
checks. The Docker API is mocked; the layer store is a real folder laid out as overlay2's, with a layer tar, its
tar-split record and its diff directory made here."""
import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.module_utils import images
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain(parent, diff):
    return "sha256:" + hashlib.sha256(("%s %s" % (parent, diff)).encode()).hexdigest()


D1, D2, D3 = (sha(b"layer-%d" % i) for i in (1, 2, 3))


# ---------------------------------------------------------------------------------------------- chain IDs, plan
def test_chain_ids_follow_the_parents():
    assert images.chain_ids([D1, D2, D3]) == [D1, chain(D1, D2), chain(chain(D1, D2), D3)]
    assert images.chain_ids([]) == []


def test_chain_id_of_a_known_image():
    # a layer as Docker 20.10 stored it (/var/lib/docker/image/overlay2/layerdb/sha256/<chain ID>/{parent,diff}):
    # the engine's own chain ID of the base layer of mec-lab/base:bookworm and the counter app's COPY layer on it
    parent = "sha256:bc81e01885d15e861e8b2605ce3643da5d316cc096a5c258d81cfdff00e01ca5"
    diff = "sha256:167b0f65daa1bb7c22cf8e080207338e997f83dbf7d34fc4d8f445d544c3b75c"
    assert images.chain_ids([parent, diff]) == [
        parent, "sha256:0e474a63aef8793efbbadb6b5e9b225925bb4e3858866220ef9780272cb23b66"]


@pytest.mark.parametrize("present, sent", [
    ([], [True, True, True]),                                      # the target holds none of the layers
    ([D1], [False, True, True]),                                   # it holds the base only
    (images.chain_ids([D1, D2]), [False, False, True]),            # the base image: only the commit moves
    (images.chain_ids([D1, D2, D3]), [False, False, False]),       # all of them
])
def test_plan_sends_what_the_target_lacks(present, sent):
    plan = images.plan_layers([D1, D2, D3], present)
    assert [layer["send"] for layer in plan] == sent
    assert [layer["chain_id"] for layer in plan] == images.chain_ids([D1, D2, D3])


def test_same_layer_on_other_parents_is_sent():
    # the target has D2 and D3 but on another base: same diff IDs, other chain IDs
    other = images.chain_ids([sha(b"other-base"), D2, D3])
    assert [layer["send"] for layer in images.plan_layers([D1, D2, D3], other)] == [True, True, True]


def test_different_image_under_the_same_name_is_sent():
    # names play no part: what the target holds under "app:run1" is another image (other layers)
    client = mock.MagicMock()
    client.api.images.return_value = ["sha256:" + "1" * 64]
    client.api.inspect_image.return_value = {"Id": "sha256:" + "1" * 64, "RepoTags": ["app:run1"],
                                             "RootFS": {"Layers": [D1, sha(b"another commit")]}}
    present = images.present_chain_ids(client)
    plan = images.plan_layers([D1, D2], present)
    assert [layer["send"] for layer in plan] == [False, True]


def test_present_chain_ids_lists_every_prefix_once():
    client = mock.MagicMock()
    client.api.images.return_value = ["i1", "i2", "gone"]
    layers = {"i1": [D1, D2], "i2": [D1, D2, D3]}

    def inspect(ref):
        if ref == "gone":
            raise images.NotFound("removed while listing")
        return {"RootFS": {"Layers": layers[ref]}}
    client.api.inspect_image.side_effect = inspect
    assert images.present_chain_ids(client) == sorted(images.chain_ids([D1, D2, D3]))
    client.api.images.assert_called_once_with(all=True, quiet=True)


@pytest.mark.parametrize("bad", ["sha256:abc", "D1", "sha256:" + "G" * 64, 5, "md5:" + "a" * 64])
def test_bad_chain_ids_are_refused(bad):
    with pytest.raises(MigrationError) as exc:
        images.check_chain_ids([D1, bad])
    assert repr(bad) in exc.value.msg


# ---------------------------------------------------------------------------------------------- a fake store
def make_layer(entries):
    """A layer tar as bytes from ``entries`` (TarInfo, data or None), plus its tar-split record (the JSON lines
    the engine keeps) and the files of its diff directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    # the tar-split: the bytes between file data verbatim (segments), file data as (name, size) entries
    lines, pos, offset = [], 0, 0
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar.getmembers():
            lines.append({"type": 2, "payload": base64.b64encode(raw[offset:m.offset_data]).decode(),
                          "position": pos})
            lines.append({"type": 1, "name": m.name, "size": m.size if m.isreg() else 0, "payload": None,
                          "position": pos + 1})
            pos += 2
            offset = m.offset_data + (m.size if m.isreg() else 0)
    lines.append({"type": 2, "payload": base64.b64encode(raw[offset:]).decode(), "position": pos})
    return raw, lines


def reg(name, data, mode=0o644, uid=0, gid=0):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, 1700000000
    return info, data


def whiteout(name):
    return reg(name, b"")


class Store(object):
    """A Docker root folder laid out as overlay2's, with images made of given layer tars."""

    def __init__(self, root):
        self.root = str(root)
        self.imagedb = os.path.join(self.root, "image", "overlay2", "imagedb", "content", "sha256")
        self.layerdb = os.path.join(self.root, "image", "overlay2", "layerdb", "sha256")
        os.makedirs(self.imagedb)
        os.makedirs(self.layerdb)
        self.images = {}

    def add_image(self, name, layers):
        """``layers``: a list of (raw tar, tar-split lines, {relative path: bytes}). Returns the inspect dict."""
        diff_ids = [sha(raw) for raw, _, _ in layers]
        for (_raw, lines, files), diff, ch in zip(layers, diff_ids, images.chain_ids(diff_ids)):
            d = os.path.join(self.layerdb, ch.split(":")[1])
            os.makedirs(d, exist_ok=True)
            cache = hashlib.sha256(ch.encode()).hexdigest()
            with open(os.path.join(d, "diff"), "w") as fh:
                fh.write(diff)
            with open(os.path.join(d, "cache-id"), "w") as fh:
                fh.write(cache)
            with open(os.path.join(d, "size"), "w") as fh:
                fh.write(str(sum(len(v) for v in files.values())))
            with gzip.open(os.path.join(d, "tar-split.json.gz"), "wt") as fh:
                fh.write("".join(json.dumps(line) + "\n" for line in lines))
            diff_dir = os.path.join(self.root, "overlay2", cache, "diff")
            os.makedirs(diff_dir, exist_ok=True)
            for rel, data in files.items():
                path = os.path.join(diff_dir, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(data)
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/app/run"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        image_id = sha(config)
        with open(os.path.join(self.imagedb, image_id.split(":")[1]), "wb") as fh:
            fh.write(config)
        self.images[name] = dict(Id=image_id, RepoTags=[name], RootFS={"Type": "layers", "Layers": diff_ids},
                                 config=config, raws=[raw for raw, _, _ in layers])
        return self.images[name]

    def client(self, driver="overlay2"):
        c = mock.MagicMock(name="DockerClient")
        c.info.return_value = {"Driver": driver, "DockerRootDir": self.root, "SecurityOptions": ["name=seccomp"]}
        c.api.inspect_image.side_effect = lambda ref: self.images[ref]
        c.api.get_image.side_effect = lambda ref: iter([self.docker_save(ref)])
        return c

    def docker_save(self, name):
        """What `docker save` streams: <v1 id>/{VERSION,json,layer.tar} per layer, <id>.json, manifest.json."""
        img = self.images[name]
        buf = io.BytesIO()
        names = []
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            def add(n, data):
                info = tarfile.TarInfo(n)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            for i, raw in enumerate(img["raws"]):
                v1 = hashlib.sha256(b"v1-%d-" % i + name.encode()).hexdigest()
                add(v1 + "/VERSION", b"1.0")
                add(v1 + "/json", b"{}")
                add(v1 + "/layer.tar", raw)
                names.append(v1 + "/layer.tar")
            add(img["Id"].split(":")[1] + ".json", img["config"])
            add("manifest.json", json.dumps([{"Config": img["Id"].split(":")[1] + ".json", "RepoTags": [name],
                                              "Layers": names}]).encode())
        return buf.getvalue()


def base_layer():
    files = {"etc/os-release": b"ID=debian\n", "bin/sh": b"\x7fELF" + b"x" * 3000}
    raw, lines = make_layer([(dir_info("bin"), None), reg("bin/sh", files["bin/sh"], mode=0o755),
                             (dir_info("etc"), None), reg("etc/os-release", files["etc/os-release"])])
    return raw, lines, files


def dir_info(name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1700000000
    return info


def commit_layer(counter=b"42\n"):
    link = tarfile.TarInfo("data/hard")
    link.type, link.linkname = tarfile.LNKTYPE, "data/counter"
    xattr = reg("usr/bin/ping", b"PING" * 100, mode=0o4755)
    xattr[0].pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02 \x00\x00\x00"}
    raw, lines = make_layer([(dir_info("data", 0o750), None), reg("data/counter", counter, uid=1234, gid=5678),
                             (link, None), reg("etc/.wh.issue", b""), (dir_info("var/cache/apt"), None),
                             reg("var/cache/apt/.wh..wh..opq", b""), xattr])
    return raw, lines, {"data/counter": counter, "usr/bin/ping": b"PING" * 100, "etc/.wh.issue": b"",
                        "var/cache/apt/.wh..wh..opq": b""}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "docker")
    s.add_image("mec-lab/base:bookworm", [base_layer()])
    s.add_image("app:run1", [base_layer(), commit_layer()])
    return s


@pytest.fixture
def local_engine():
    with mock.patch.object(images, "_local_engine", return_value=True):
        yield


def archive_members(path):
    with tarfile.open(str(path)) as tar:
        return dict((m.name, tar.extractfile(m).read() if m.isfile() else m) for m in tar.getmembers())


# ---------------------------------------------------------------------------------------------- the writers
@pytest.mark.parametrize("method", ["layerdb", "save"])
def test_archive_carries_only_the_missing_layer(store, local_engine, tmp_path, method):
    client = store.client()
    app = store.images["app:run1"]
    base_chain = images.chain_ids(app["RootFS"]["Layers"])[:1]
    dest = tmp_path / "image.tar"
    res = images.write_image_archive(client, "app:run1", str(dest), base_chain, method=method)
    members = archive_members(dest)
    manifest = json.loads(members["manifest.json"])
    assert manifest[0]["RepoTags"] == ["app:run1"]
    assert members[manifest[0]["Config"]] == app["config"]          # the config byte for byte: same image ID
    base_tar, commit_tar = manifest[0]["Layers"]
    assert base_tar not in members                                   # listed, not carried
    assert members[commit_tar] == app["raws"][1]                     # the commit's tar byte for byte
    assert (res["method"], res["layers_sent"], res["layers_skipped"]) == (method, 1, 1)
    assert res["bytes_written"] == os.path.getsize(str(dest)) == res["size"]
    assert res["image_id"] == app["Id"] and res["fallback_reason"] is None
    # layerdb: the store's record of the files' bytes; save: the exact tar dropped
    assert res["bytes_skipped"] == (len(b"ID=debian\n") + 3004 if method == "layerdb" else len(app["raws"][0]))
    plans = images.read_archive_plan(str(dest))
    assert [layer["in_archive"] for layer in plans[0]["layers"]] == [False, True]
    assert plans[0]["config_id"] == app["Id"]
    assert not os.path.exists(str(dest) + ".part")
    if method == "layerdb":
        client.api.get_image.assert_not_called()                     # no docker save at all


@pytest.mark.parametrize("method", ["layerdb", "save"])
def test_full_archive_when_the_target_has_nothing(store, local_engine, tmp_path, method):
    app = store.images["app:run1"]
    dest = tmp_path / "image.tar"
    res = images.write_image_archive(store.client(), "app:run1", str(dest), [], method=method)
    members = archive_members(dest)
    layers = json.loads(members["manifest.json"])[0]["Layers"]
    assert [members[n] for n in layers] == app["raws"]
    assert (res["layers_sent"], res["layers_skipped"], res["bytes_skipped"]) == (2, 0, 0)


def test_auto_falls_back_to_save_on_another_driver(store, tmp_path):
    dest = tmp_path / "image.tar"
    with mock.patch.object(images, "_local_engine", return_value=True):
        res = images.write_image_archive(store.client(driver="btrfs"), "app:run1", str(dest),
                                         images.chain_ids(store.images["app:run1"]["RootFS"]["Layers"])[:1])
    assert res["method"] == "save" and "btrfs" in res["fallback_reason"]
    assert res["layers_sent"] == 1


def test_auto_falls_back_on_a_remote_engine(store, tmp_path):
    res = images.write_image_archive(store.client(), "app:run1", str(tmp_path / "a.tar"), [])
    assert res["method"] == "save" and "not on this host" in res["fallback_reason"]


def test_a_changed_file_in_the_store_is_never_sent_as_the_layer(store, local_engine, tmp_path):
    # a diff directory that no longer matches the recorded layer: its tar would not hash to the diff ID
    app = store.images["app:run1"]
    ch = images.chain_ids(app["RootFS"]["Layers"])[1]
    cache = open(os.path.join(store.layerdb, ch.split(":")[1], "cache-id")).read()
    with open(os.path.join(store.root, "overlay2", cache, "diff", "data", "counter"), "wb") as fh:
        fh.write(b"43\n")
    dest = tmp_path / "image.tar"
    with pytest.raises(MigrationError) as exc:
        images.write_image_archive(store.client(), "app:run1", str(dest), [], method="layerdb")
    assert "not its diff ID" in exc.value.msg
    assert not dest.exists() and not os.path.exists(str(dest) + ".part")
    res = images.write_image_archive(store.client(), "app:run1", str(dest), [], method="auto")
    assert res["method"] == "save" and "not its diff ID" in res["fallback_reason"]
    assert archive_members(dest)[json.loads(archive_members(dest)["manifest.json"])[0]["Layers"][1]] == app["raws"][1]


def test_a_symlink_in_the_store_is_not_followed(store, local_engine, tmp_path):
    app = store.images["app:run1"]
    ch = images.chain_ids(app["RootFS"]["Layers"])[1]
    cache = open(os.path.join(store.layerdb, ch.split(":")[1], "cache-id")).read()
    counter = os.path.join(store.root, "overlay2", cache, "diff", "data", "counter")
    secret = tmp_path / "secret"
    secret.write_bytes(b"42\n")
    os.unlink(counter)
    os.symlink(str(secret), counter)
    with pytest.raises(MigrationError) as exc:
        images.write_image_archive(store.client(), "app:run1", str(tmp_path / "a.tar"), [], method="layerdb")
    assert "Too many levels of symbolic links" in exc.value.msg or "ELOOP" in exc.value.msg


def test_a_config_that_does_not_hash_to_the_id_is_not_used(store, local_engine, tmp_path):
    app = store.images["app:run1"]
    with open(os.path.join(store.imagedb, app["Id"].split(":")[1]), "ab") as fh:
        fh.write(b" ")
    res = images.write_image_archive(store.client(), "app:run1", str(tmp_path / "a.tar"), [])
    assert res["method"] == "save" and "does not hash to its ID" in res["fallback_reason"]


def test_save_keeps_a_skipped_tar_that_a_needed_layer_shares(tmp_path, local_engine):
    # the same diff ID at two places: present at the bottom, missing on top (other parents): kept
    s = Store(tmp_path / "docker")
    same = make_layer([reg("f", b"same")]) + ({"f": b"same"},)
    s.add_image("twice:1", [same, commit_layer(), same])
    ids = images.chain_ids(s.images["twice:1"]["RootFS"]["Layers"])
    res = images.write_image_archive(s.client(driver="vfs"), "twice:1", str(tmp_path / "a.tar"), ids[:1],
                                     method="save")
    plan = images.read_archive_plan(str(tmp_path / "a.tar"))[0]
    assert [layer["in_archive"] for layer in plan["layers"]] == [True, True, True]
    assert res["layers_skipped"] == 0


def test_unknown_method_and_image_are_refused(store, tmp_path):
    with pytest.raises(MigrationError, match="method must be"):
        images.write_image_archive(store.client(), "app:run1", str(tmp_path / "a.tar"), method="registry")
    c = store.client()
    c.api.inspect_image.side_effect = images.NotFound("no")
    with pytest.raises(MigrationError, match="Image nope:1 does not exist"):
        images.write_image_archive(c, "nope:1", str(tmp_path / "a.tar"))


# ---------------------------------------------------------------------------------------------- the load
def loaded_client(store, present_names, after_load):
    """A target engine holding ``present_names``' images; after docker load it also holds ``after_load``."""
    c = mock.MagicMock(name="TargetClient")
    held = dict((n, store.images[n]) for n in present_names)

    def inspect(ref):
        for name, img in held.items():
            if ref in (name, img["Id"]):
                return img
        raise images.NotFound(ref)

    def load(fh):
        held[after_load] = store.images[after_load]
        return iter([{"stream": "Loaded image: %s\n" % after_load}])
    c.api.images.side_effect = lambda all, quiet: [img["Id"] for img in held.values()]
    c.api.inspect_image.side_effect = inspect
    c.api.load_image.side_effect = load
    return c


def trimmed_archive(store, tmp_path):
    dest = tmp_path / "image.tar"
    with mock.patch.object(images, "_local_engine", return_value=True):
        images.write_image_archive(store.client(), "app:run1", str(dest),
                                   images.chain_ids(store.images["app:run1"]["RootFS"]["Layers"])[:1])
    return str(dest)


def test_load_of_a_trimmed_archive_on_a_target_with_the_base(store, tmp_path):
    path = trimmed_archive(store, tmp_path)
    c = loaded_client(store, ["mec-lab/base:bookworm"], "app:run1")
    res = images.load_image_archive(c, path, "app:run1")
    assert c.api.load_image.call_count == 1
    assert (res["image_id"], res["layers_loaded"], res["layers_present"]) == (store.images["app:run1"]["Id"], 1, 1)
    assert res["images"] == ["app:run1"]


def test_load_refuses_before_loading_when_a_left_out_layer_is_missing(store, tmp_path):
    path = trimmed_archive(store, tmp_path)
    c = loaded_client(store, [], "app:run1")
    with pytest.raises(MigrationError) as exc:
        images.load_image_archive(c, path, "app:run1")
    c.api.load_image.assert_not_called()
    base_chain = images.chain_ids(store.images["app:run1"]["RootFS"]["Layers"])[0]
    assert exc.value.details["missing_chain_ids"] == [base_chain]
    assert base_chain in exc.value.msg and "skip_chain_ids: []" in exc.value.msg


def test_load_checks_the_loaded_image(store, tmp_path):
    # the engine answers the load but the name then points elsewhere: never reported as a good load
    path = trimmed_archive(store, tmp_path)
    c = loaded_client(store, ["mec-lab/base:bookworm"], "mec-lab/base:bookworm")
    with pytest.raises(MigrationError) as exc:
        images.load_image_archive(c, path, "app:run1")
    assert "did not give image %s" % store.images["app:run1"]["Id"] in exc.value.msg
