"""Only the missing layers move, between the two lab hosts: the modules image_layers_info (target), image_save
with skip_chain_ids (source), file_transfer (source -> target) and image_load (target), as migrate.yml's m2/m3 call
them, on a committed image of a running container.

Three targets: one that holds the image the commit was made from (only the commit moves), one that lacks it (that
image's own layer moves too; the Debian and counter layers below it do not), and one that holds a different image
under the committed image's name (the name plays no part: the commit moves and the name is taken over). Each time the
loaded image has the source's ID and configuration (CMD, ENV, labels), runs, and holds the new file.

Costs about 40 s on the lab (three commits, three copies of a few KB, three container starts).
"""
import json
import time

import pytest

from labtools import docker_cli, lab_hosts, load_image, module

pytestmark = pytest.mark.lab
WORK = "/var/lib/mec-migration/work"


def ok(result, what):
    assert not result.get("failed") and not result.get("unreachable"), "%s: %s" % (what, result.get("msg", result))
    return result


@pytest.fixture(scope="module")
def hosts(lab, lab_image):
    """(source, target) names and Hosts; the target holds mec-test/counter:1 (the very image of the source)."""
    names = lab_hosts()
    src, dst = lab
    want = docker_cli("image", "inspect", "-f", "{{.Id}}", lab_image).stdout.strip()
    if dst.run(["docker", "image", "inspect", "-f", "{{.Id}}", lab_image], check=False).stdout.strip() != want:
        load_image(lab_image, dst)
    return names["source"].name, names["target"].name, src, dst


@pytest.fixture
def made(hosts, unique):
    """What a test made on both hosts, removed afterwards."""
    _, _, src, dst = hosts
    things = {"containers": [], "images": [], "dirs": []}
    yield things
    for h in (src, dst):
        for argv, items in ((["docker", "rm", "-f"], things["containers"]),
                            (["docker", "image", "rm", "-f"], things["images"]), (["rm", "-rf"], things["dirs"])):
            if items:
                h.run(argv + items, check=False)


def commit_changed(src, made, image, name, ref, content):
    """Run ``image`` as ``name`` on the source, write /srv/h6/file (as root) while it runs, commit it as ``ref``
    with an ENV and a LABEL of its own; returns the committed image's inspect."""
    made["containers"].append(name)
    src.docker("run", "-d", "--name", name, "--label", "mec.migration.test=1", image)
    src.docker("exec", "-u", "0", name, "sh", "-c", "mkdir -p /srv/h6 && printf '%%s' '%s' > /srv/h6/file" % content)
    made["images"].append(ref)
    src.docker("commit", "--change", "ENV H6_LAB=kept", "--change", "LABEL h6.lab=kept", name, ref)
    return json.loads(src.docker("image", "inspect", ref))[0]


def move(hosts, made, ref, unique):
    """The m2 image step with layer skipping: target's chain IDs, trimmed save, copy, load."""
    s, t, src, dst = hosts
    work = "%s/h6-%s" % (WORK, unique)
    made["dirs"].append(work)
    for h in (src, dst):
        h.run(["install", "-d", "-m", "0700", work])
    info = ok(module(t, "image_layers_info"), "image_layers_info on the target")
    saved = ok(module(s, "image_save", image=ref, dest=work + "/image.tar", skip_chain_ids=info["chain_ids"]),
               "image_save on the source")
    copied = ok(module(s, "file_transfer", src=work + "/image.tar", dest_host=lab_hosts()["target"].address,
                       dest=work + "/image.tar", method="scp"), "file_transfer")
    loaded = ok(module(t, "image_load", src=work + "/image.tar", image=ref), "image_load on the target")
    return info, saved, copied, loaded


def check_loaded(hosts, made, ref, source_image, content, unique):
    """The image on the target: the source's ID and configuration; a container of it runs with the new file."""
    _, _, _, dst = hosts
    got = json.loads(dst.docker("image", "inspect", ref))[0]
    assert got["Id"] == source_image["Id"]
    assert got["RootFS"]["Layers"] == source_image["RootFS"]["Layers"]
    assert got["Config"] == source_image["Config"]
    assert "H6_LAB=kept" in got["Config"]["Env"] and got["Config"]["Labels"]["h6.lab"] == "kept"
    assert got["Config"]["Cmd"] == ["/opt/counter/counter.sh"] and got["Config"]["Labels"]["mec.migration.app"] \
        == "counter"
    name = "h6-run-" + unique
    made["containers"].append(name)
    dst.docker("run", "-d", "--name", name, ref)
    deadline = time.monotonic() + 20
    while not dst.running(name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dst.running(name), dst.docker("logs", name, check=False)
    assert dst.read(name, "/srv/h6/file") == content


def test_target_holding_the_base_gets_only_the_commit(hosts, made, lab_image, unique):
    s, t, src, dst = hosts
    ref = "mec-test/h6-layers:" + unique
    image = commit_changed(src, made, lab_image, "h6-src-" + unique, ref, "commit " + unique)
    info, saved, copied, loaded = move(hosts, made, ref, unique)
    n = len(image["RootFS"]["Layers"])
    assert (saved["method"], saved["fallback_reason"]) == ("layerdb", None)
    assert (saved["layers_sent"], saved["layers_skipped"]) == (1, n - 1)
    assert saved["bytes_written"] < 200 * 1024 and saved["bytes_skipped"] > 100 * 10**6
    assert copied["transferred_bytes"] == saved["bytes_written"]
    assert (loaded["changed"], loaded["image_id"], loaded["layers_loaded"], loaded["layers_present"]) == \
        (True, image["Id"], 1, n - 1)
    check_loaded(hosts, made, ref, image, "commit " + unique, unique)
    # the same archive again: the target has it now, nothing is loaded
    again = ok(module(t, "image_load", src="%s/h6-%s/image.tar" % (WORK, unique), image=ref), "image_load again")
    assert again["changed"] is False and again["image_id"] == image["Id"]


def test_target_lacking_the_base_image_gets_its_layer_too(hosts, made, lab_image, unique):
    """The commit's parent is an image only the source has (a commit of its own): its layer moves as well; the
    Debian and counter layers under it, which the target holds, do not."""
    s, t, src, dst = hosts
    base = "mec-test/h6-base:" + unique
    commit_changed(src, made, lab_image, "h6-base-" + unique, base, "base " + unique)
    assert dst.run(["docker", "image", "inspect", base], check=False).returncode != 0
    ref = "mec-test/h6-layers:" + unique
    image = commit_changed(src, made, base, "h6-src-" + unique, ref, "commit " + unique)
    info, saved, copied, loaded = move(hosts, made, ref, unique)
    n = len(image["RootFS"]["Layers"])
    assert (saved["layers_sent"], saved["layers_skipped"]) == (2, n - 2)
    assert (loaded["layers_loaded"], loaded["layers_present"]) == (2, n - 2)
    check_loaded(hosts, made, ref, image, "commit " + unique, unique)


def test_different_image_under_the_same_name_is_replaced(hosts, made, lab_image, unique):
    """The target holds another image under the committed image's name (another commit of the same app): the
    selection goes by chain ID, so the commit moves, and the name ends on the source's image."""
    s, t, src, dst = hosts
    ref = "mec-test/h6-layers:" + unique
    made["images"].append(ref)
    dst.docker("tag", lab_image, ref)                         # same name, different image
    image = commit_changed(src, made, lab_image, "h6-src-" + unique, ref, "commit " + unique)
    info, saved, copied, loaded = move(hosts, made, ref, unique)
    assert (saved["layers_sent"], saved["layers_skipped"]) == (1, len(image["RootFS"]["Layers"]) - 1)
    assert loaded["changed"] is True and loaded["image_id"] == image["Id"]
    check_loaded(hosts, made, ref, image, "commit " + unique, unique)
