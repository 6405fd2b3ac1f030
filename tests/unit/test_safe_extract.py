"""volumes.extract_volumes_tar: hostile archives are refused member by member and nothing lands outside the
volume; a legitimate volume keeps its files, links, owners, modes and times."""
import io
import os
import stat
import tarfile

import pytest

from ansible_collections.mec.migration.plugins.module_utils import volumes as volumes_mod
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.volumes import extract_volumes_tar, write_volumes_tar


def member(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=0o644, uid=0, gid=0, mtime=1700000000):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def archive(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, data)
    buf.seek(0)
    return buf


@pytest.fixture
def tree(tmp_path):
    """A volume root and, beside it, an 'outside' directory that must never change."""
    root = tmp_path / "volume"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep")
    return root, outside


def snapshot(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def refused(tree, members, name_in_message, why, stream=False):
    root, outside = tree
    before = snapshot(outside.parent / "outside")
    with pytest.raises(MigrationError) as err:
        extract_volumes_tar(archive(*members), {"data": str(root)}, stream=stream)
    assert name_in_message in str(err.value) and why in str(err.value), str(err.value)
    assert snapshot(outside) == before  # nothing written outside the volume
    assert (outside / "secret").read_text() == "keep"
    return root


def test_absolute_path_is_refused(tree):
    _root, outside = tree
    target = str(outside / "planted")
    refused(tree, [member(target, data=b"x")], target, "absolute path")
    assert not os.path.exists(target)


def test_dotdot_escape_is_refused(tree):
    refused(tree, [member("data/../outside/planted", data=b"x")], "data/../outside/planted", "contains '..'")


def test_absolute_symlink_then_file_through_it_is_refused(tree):
    _root, outside = tree
    refused(tree, [member("data/tmp", tarfile.SYMTYPE, linkname=str(outside)),
                   member("data/tmp/planted", data=b"x")], "data/tmp", "absolute path")


def test_relative_symlink_escape_is_refused(tree):
    refused(tree, [member("data/sub", tarfile.DIRTYPE, mode=0o755),
                   member("data/sub/up", tarfile.SYMTYPE, linkname="../../outside")],
            "data/sub/up", "resolves outside the volume")


def test_file_through_an_inside_symlink_is_refused(tree):
    root = refused(tree, [member("data/real", tarfile.DIRTYPE, mode=0o755),
                          member("data/link", tarfile.SYMTYPE, linkname="real"),
                          member("data/link/f", data=b"x")], "data/link/f", "passes through the symlink link")
    assert os.listdir(root / "real") == []


@pytest.mark.parametrize("linkname", ["/etc/shadow", "data/../../etc/shadow", "other/shadow"])
def test_hard_link_out_of_the_volume_is_refused(tree, linkname):
    refused(tree, [member("data/shadow", tarfile.LNKTYPE, linkname=linkname)], "data/shadow", linkname)


def test_hard_link_to_a_symlink_is_refused(tree):
    refused(tree, [member("data/s", tarfile.SYMTYPE, linkname="x"),
                   member("data/h", tarfile.LNKTYPE, linkname="data/s")],
            "data/h", "not a regular file")


@pytest.mark.parametrize("kind, word", [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
                                        (tarfile.FIFOTYPE, "FIFO")])
def test_device_nodes_and_fifos_are_refused(tree, kind, word):
    root = refused(tree, [member("data/node", kind)], "data/node", word)
    assert not os.path.lexists(root / "node")


@pytest.mark.parametrize("links, bad", [
    # each link alone looks harmless to a check of its own text; together they would leave the volume
    ([("data/a/l1", "../l2"), ("data/l2", "../outside")], "data/l2"),
    ([("data/l", "f/../../outside"), ("data/f", ".")], "data/l"),
    ([("data/l", "f/../x"), ("data/f", ".")], "data/l"),   # f/.. would be the volume's parent once f -> .
    ([("data/a/f", ".."), ("data/a/l", "f/../x")], "data/a/l"),  # a/f -> the root, so f/.. is its parent
])
def test_symlink_chains_that_escape_are_refused(tree, links, bad):
    members = [member("data/a", tarfile.DIRTYPE, mode=0o755)]
    members += [member(name, tarfile.SYMTYPE, linkname=target) for name, target in links]
    refused(tree, members, bad, "symlink")


def test_planted_links_are_never_followed(tree):
    """Links placed in the volume by anything else (a race, a bug) are not followed either."""
    root, outside = tree
    extractor = volumes_mod._VolumeExtractor(str(root))
    os.symlink(str(outside), root / "dir")
    os.symlink(str(outside / "secret"), root / "file")
    try:
        with tarfile.open(fileobj=archive(member("data/dir/secret", data=b"owned"), member("data/file", data=b"new")),
                          mode="r") as tf:
            members = tf.getmembers()
            with pytest.raises(MigrationError, match="passes through the symlink dir"):
                extractor.extract(tf, members[0], "dir/secret")
            extractor.extract(tf, members[1], "file")  # replaces the link, does not write through it
    finally:
        extractor.close()
    assert (outside / "secret").read_text() == "keep"
    assert not (root / "file").is_symlink() and (root / "file").read_text() == "new"


def test_file_over_an_extracted_symlink_replaces_the_link(tree):
    root, outside = tree
    extract_volumes_tar(archive(member("data/f", tarfile.SYMTYPE, linkname="g"), member("data/g", data=b"g"),
                                member("data/f", data=b"f")), {"data": str(root)})
    assert not (root / "f").is_symlink() and (root / "f").read_text() == "f" and (root / "g").read_text() == "g"


def test_legitimate_volume_keeps_links_owners_modes_and_times(tree, monkeypatch):
    root, _outside = tree
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # as on Debian 12's Python 3.11.2
    uid = 4242 if os.geteuid() == 0 else os.getuid()
    gid = 4343 if os.geteuid() == 0 else os.getgid()
    count = extract_volumes_tar(archive(
        member("data", tarfile.DIRTYPE, mode=0o755),
        member("data/bin", tarfile.DIRTYPE, mode=0o555, uid=uid, gid=gid, mtime=1600000000),
        member("data/bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=uid, gid=gid),
        member("data/bin/up", tarfile.SYMTYPE, linkname="../conf/app.conf"),
        member("data/conf/app.conf", data=b"a=1\n", mode=0o640, uid=uid, gid=gid, mtime=1500000000),
        member("data/conf/same", tarfile.LNKTYPE, linkname="data/conf/app.conf"),
        member("data/here", tarfile.SYMTYPE, linkname="."),
    ), {"data": str(root)})
    assert count == 6
    assert (root / "bin" / "up").read_text() == "a=1\n" and os.readlink(root / "bin" / "up") == "../conf/app.conf"
    assert os.stat(root / "conf" / "same").st_ino == os.stat(root / "conf" / "app.conf").st_ino
    tool = os.stat(root / "bin" / "tool")
    assert stat.S_IMODE(tool.st_mode) == 0o4755  # setuid kept (documented: the app's data, copied as is)
    assert (tool.st_uid, tool.st_gid) == (uid, gid)
    assert stat.S_IMODE(os.stat(root / "bin").st_mode) == 0o555
    assert os.stat(root / "bin").st_mtime == 1600000000  # set after its content was written
    assert os.stat(root / "conf" / "app.conf").st_mtime == 1500000000
    assert stat.S_IMODE(os.stat(root / "conf").st_mode) == 0o755  # a parent the stream did not list


def test_round_trip_of_two_volumes_in_stream_mode(tmp_path):
    src_a, src_b = tmp_path / "a", tmp_path / "b"
    (src_a / "d").mkdir(parents=True)
    (src_a / "d" / "f").write_bytes(os.urandom(5000))
    os.symlink("d/f", src_a / "l")
    src_b.mkdir()
    (src_b / "g").write_text("g")
    buf = io.BytesIO()
    write_volumes_tar(buf, {"va": str(src_a), "vb": str(src_b)}, stream=True)
    dst_a, dst_b = tmp_path / "da", tmp_path / "db"
    dst_a.mkdir()
    dst_b.mkdir()
    (dst_a / "stale").write_text("old")
    buf.seek(0)
    assert extract_volumes_tar(buf, {"va": str(dst_a), "vb": str(dst_b)}, stream=True) == 4
    assert sorted(os.listdir(dst_a)) == ["d", "l"]
    assert (dst_a / "l").read_bytes() == (src_a / "d" / "f").read_bytes()
    assert (dst_b / "g").read_text() == "g"


def test_member_of_another_volume_is_refused(tree):
    root, _outside = tree
    with pytest.raises(MigrationError, match="not a volume mount"):
        extract_volumes_tar(archive(member("other/f", data=b"x")), {"data": str(root)})


# --------------------------------------------------------------------------- size caps (sparse members included)

SPARSE_SIZE = 256 * 1024 * 1024


def sparse_archive(tmp_path, fmt):
    """A tar (GNU tar -S) of one 256 MiB sparse file holding 4 KiB of data: a few KiB that expand on extraction."""
    import subprocess
    src = tmp_path / "sparse-src" / "data"
    src.mkdir(parents=True)
    with open(src / "big", "wb") as fh:
        fh.truncate(SPARSE_SIZE)
        fh.seek(SPARSE_SIZE // 2)
        fh.write(b"x" * 4096)
    out = tmp_path / ("sparse-%s.tar" % fmt)
    subprocess.run(["tar", "-S", "--format=%s" % fmt, "-cf", str(out), "-C", str(src.parent), "data"], check=True)
    assert os.path.getsize(out) < 64 * 1024
    return out


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_sparse_member_counts_at_its_full_size(tree, tmp_path, fmt, stream):
    root, _outside = tree
    tar = sparse_archive(tmp_path, fmt)
    with open(tar, "rb") as fh, pytest.raises(MigrationError) as err:
        extract_volumes_tar(fh, {"data": str(root)}, stream=stream, max_bytes=16 * 1024 * 1024)
    msg = str(err.value)
    assert "data/big" in msg and "sparse" in msg and str(SPARSE_SIZE) in msg and "cap" in msg, msg
    assert not (root / "big").exists()  # refused before anything of it was written


def test_the_free_space_of_the_volume_caps_any_extraction(tree, tmp_path, monkeypatch):
    root, _outside = tree
    tar = sparse_archive(tmp_path, "pax")
    # the volume's file system has 100 MiB free: 256 MiB would leave less than the reserve
    monkeypatch.setattr(volumes_mod, "free_bytes", lambda path: 100 * 1024 * 1024)
    with open(tar, "rb") as fh, pytest.raises(MigrationError) as err:
        extract_volumes_tar(fh, {"data": str(root)})
    assert "data/big" in str(err.value) and "file system of volume data" in str(err.value)
    assert not (root / "big").exists()


def test_the_cap_is_on_the_sum_of_members(tree):
    root, _outside = tree

    def five():
        return archive(*[member("data/f%d" % i, data=b"x" * 1000) for i in range(5)])
    assert extract_volumes_tar(five(), {"data": str(root)}, max_bytes=5000) == 5
    with pytest.raises(MigrationError) as err:
        extract_volumes_tar(five(), {"data": str(root)}, max_bytes=4999)
    assert "data/f4" in str(err.value) and "5000 bytes" in str(err.value)
    assert sorted(os.listdir(root)) == ["f0", "f1", "f2", "f3"]


def test_a_sparse_member_within_the_cap_is_extracted_whole(tree, tmp_path):
    root, _outside = tree
    tar = sparse_archive(tmp_path, "pax")
    with open(tar, "rb") as fh:
        assert extract_volumes_tar(fh, {"data": str(root)}, max_bytes=SPARSE_SIZE) == 1
    assert os.path.getsize(root / "big") == SPARSE_SIZE
