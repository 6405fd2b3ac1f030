"""Layer-skipping image archives (plugins/module_utils/images.py) against this machine's Docker engine.

A container of mec-test/counter:1 gets every kind of change a layer can hold (owners, modes with setuid and
sticky bits, hard and symbolic links, a FIFO, a device, a deleted file, a directory replaced (opaque), a security
capability, a name that is not UTF-8, a long path); it is committed; the archive of the commit is written with the
layers the engine holds left out, the committed image is removed, the archive loaded again, and a container of the
loaded image must list the same files as the source container (/etc and the changed folder as `docker cp`
archives them: metadata and contents).

Source and target share this engine, so "the target holds the base" is simulated by removing the committed image
before the load; tests/integration/test_image_layers_lab.py moves the archives between the two lab hosts.
"""
import hashlib
import json
import os
import tarfile

import pytest
from labtools import skip_or_fail

from ansible_collections.mec.migration.plugins.module_utils import images
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

pytestmark = pytest.mark.docker

# written by the engine for every container (its init layer), not by the image
INIT_PATHS = {"etc/hostname", "etc/hosts", "etc/mtab", "etc/resolv.conf"}
# CAP_NET_RAW, permitted and effective (struct vfs_cap_data, revision 2)
CAPABILITY = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")
CHANGES = r"""
set -e
mkdir -p /srv/h6/sub /srv/h6/sticky
printf 'owned\n' > /srv/h6/sub/owned && chown 1234:5678 /srv/h6/sub/owned && chmod 4750 /srv/h6/sub/owned
chmod 1777 /srv/h6/sticky
ln /srv/h6/sub/owned /srv/h6/sub/hardlink
ln -s ../sub/owned /srv/h6/sticky/symlink
mkfifo /srv/h6/fifo
mknod /srv/h6/null c 1 3
cp /bin/true /srv/h6/captrue
head -c 2000000 /dev/urandom > /srv/h6/random
touch "/srv/h6/$(printf 'caf\351')"
mkdir -p /srv/h6/long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
echo deep > /srv/h6/long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/file
rm /etc/issue.net
rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo 'new' > /etc/apt/apt.conf.d/only
"""


def export_listing(client, container, paths=("/etc", "/srv/h6")):
    """The entries below ``paths`` of ``container`` as the engine archives them (the code of `docker export` and
    `docker cp`, so with what a layer keeps: owners, modes, links, devices, security.capability): name -> its
    metadata and sha256. Only these folders: the whole file system would cost ~10 s per listing."""
    listing = {}
    for path in paths:
        stream, _ = client.api.get_archive(container, path)
        with tarfile.open(fileobj=_Reader(stream), mode="r|") as tar:
            for m in tar:
                name = m.name.rstrip("/")
                if name in INIT_PATHS:
                    continue
                digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isfile() else None
                xattrs = sorted((k, v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr."))
                # /etc's time is the init layer's (it writes etc/hostname, etc/hosts, ... into it)
                listing[name] = (m.type, m.mode, m.uid, m.gid, m.size, m.linkname, m.devmajor, m.devminor,
                                 None if name == "etc" else int(m.mtime), tuple(xattrs), digest)
    return listing


class _Reader(object):
    def __init__(self, chunks):
        self.it, self.buf = iter(chunks), b""

    def read(self, n=-1):
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.it)
            except StopIteration:
                break
        out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
        return out


def need_overlay2(client):
    driver = client.info()["Driver"]
    if driver != "overlay2":
        skip_or_fail("this engine's storage driver is %s; the layerdb method reads overlay2's store" % driver)


@pytest.fixture
def committed(docker_client, cleanup, counter_image, unique):
    """(container, image ref, image inspect): the changed container, stopped, and its commit."""
    c = docker_client
    name = "h6-" + unique
    c.api.create_container(counter_image, name=name, user="0", entrypoint=["sleep"], command=["600"],
                           labels={"mec.migration.test": "1"})
    cleanup.containers.append(name)
    c.api.start(name)
    ex = c.api.exec_create(name, ["sh", "-c", CHANGES], user="0")
    out = c.api.exec_start(ex)
    assert c.api.exec_inspect(ex["Id"])["ExitCode"] == 0, out
    upper = c.api.inspect_container(name)["GraphDriver"]["Data"]["UpperDir"]
    os.setxattr(os.path.join(upper, "srv/h6/captrue"), "security.capability", CAPABILITY)
    c.api.stop(name, timeout=1)
    ref = "mec-test/h6-layers:" + unique
    c.api.commit(name, repository=ref.split(":")[0], tag=unique, changes=["ENV H6_ENV=kept", "LABEL h6.label=kept"])
    cleanup.images.append(ref)
    return name, ref, c.api.inspect_image(ref)


def _reload(client, cleanup, path, ref, unique):
    client.api.remove_image(ref)
    loaded = images.load_image_archive(client, path, ref)
    copy = "h6-copy-" + unique
    client.api.create_container(ref, name=copy, labels={"mec.migration.test": "1"})
    cleanup.containers.append(copy)
    return loaded, copy


@pytest.mark.parametrize("method", ["layerdb", "save"])
def test_trimmed_archive_gives_the_same_image_and_files(docker_client, cleanup, committed, unique, tmp_path,
                                                        method):
    c = docker_client
    name, ref, image = committed
    if method == "layerdb":
        need_overlay2(c)
    layers = image["RootFS"]["Layers"]
    commit_chain = images.chain_ids(layers)[-1]
    # the "target": this engine without the committed image
    present = [ch for ch in images.present_chain_ids(c) if ch != commit_chain]
    source_listing = export_listing(c, name)
    assert "h6/captrue" in source_listing and "etc/issue.net" not in source_listing
    assert ("SCHILY.xattr.security.capability", CAPABILITY.decode("latin-1")) in \
        [(k, v.encode("utf-8", "surrogateescape").decode("latin-1")) for k, v in source_listing["h6/captrue"][9]]

    path = str(tmp_path / "image.tar")
    res = images.write_image_archive(c, ref, path, present, method=method)
    assert (res["method"], res["fallback_reason"], res["image_id"]) == (method, None, image["Id"])
    assert (res["layers_sent"], res["layers_skipped"]) == (1, len(layers) - 1)
    assert res["bytes_skipped"] > 50 * 10**6 and res["bytes_written"] < 3 * 10**6

    loaded, copy = _reload(c, cleanup, path, ref, unique)
    assert (loaded["image_id"], loaded["layers_loaded"], loaded["layers_present"]) == (image["Id"], 1, len(layers) - 1)
    again = c.api.inspect_image(ref)
    assert again["Id"] == image["Id"] and again["RootFS"]["Layers"] == layers
    cfg = again["Config"]
    assert "H6_ENV=kept" in cfg["Env"] and "COUNTER_INTERVAL=0.1" in cfg["Env"]
    assert cfg["Labels"]["h6.label"] == "kept" and cfg["Labels"]["mec.migration.app"] == "counter"
    assert cfg == image["Config"] and cfg["WorkingDir"] == "/opt/counter"

    copy_listing = export_listing(c, copy)
    differ = sorted(k for k in set(source_listing) | set(copy_listing) if source_listing.get(k) != copy_listing.get(k))
    assert differ == [], [(k, source_listing.get(k), copy_listing.get(k)) for k in differ[:5]]
    assert {copy_listing["h6/sub/hardlink"][0], copy_listing["h6/sub/owned"][0]} == \
        {tarfile.REGTYPE, tarfile.LNKTYPE}
    assert copy_listing["h6/null"][:1] + copy_listing["h6/null"][6:8] == (tarfile.CHRTYPE, 1, 3)
    assert sorted(k for k in copy_listing if k.startswith("etc/apt/apt.conf.d/")) == ["etc/apt/apt.conf.d/only"]


def test_layers_are_byte_for_byte_docker_saves(docker_client, committed, tmp_path):
    """Every layer tar the layerdb method rebuilds is the very tar `docker save` writes."""
    c = docker_client
    need_overlay2(c)
    _, ref, image = committed
    path = str(tmp_path / "layerdb.tar")
    images.write_image_archive(c, ref, path, [], method="layerdb")
    saved = str(tmp_path / "save.tar")
    images.save_image(c, ref, saved)

    def layer_digests(p):
        with tarfile.open(p) as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())[0]
            out = []
            for n in manifest["Layers"]:
                m = tar.getmember(n)
                while m.issym():
                    m = tar.getmember(os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname)))
                out.append("sha256:" + hashlib.sha256(tar.extractfile(m).read()).hexdigest())
            return out, tar.extractfile(manifest["Config"]).read()
    ours, our_config = layer_digests(path)
    theirs, their_config = layer_digests(saved)
    assert ours == theirs == image["RootFS"]["Layers"]
    assert our_config == their_config


def test_missing_layer_fails_before_loading(docker_client, cleanup, committed, tmp_path):
    """An archive that leaves out a layer the engine does not hold is refused; nothing is loaded."""
    c = docker_client
    _, ref, image = committed
    chains = images.chain_ids(image["RootFS"]["Layers"])
    path = str(tmp_path / "image.tar")
    images.write_image_archive(c, ref, path, chains)      # written for a target that had the commit too
    c.api.remove_image(ref)
    with pytest.raises(MigrationError) as exc:
        images.load_image_archive(c, path, ref)
    assert exc.value.details["missing_chain_ids"] == chains[-1:]
    assert "Nothing was loaded" in exc.value.msg
    assert images.find_image(c, ref) is None and images.find_image(c, image["Id"]) is None
