"""checkpoints.apply_checkpoint_delta on a hostile checkpoint folder or a hostile delta: it patches only regular
files of its own (one link, never a symlink, device node or FIFO found there), makes new files with O_EXCL,
keeps every run and copy inside its file and caps what the checkpoint may grow to."""
import io
import json
import os
import stat

import pytest

from ansible_collections.mec.migration.plugins.module_utils import checkpoints
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError


def _delta(tmp_path, files, base=None):
    new = tmp_path / "new"
    new.mkdir(exist_ok=True)
    for name, data in files.items():
        (new / name).write_bytes(data)
    buf = io.BytesIO()
    checkpoints.write_checkpoint_delta(buf, str(new), str(base or tmp_path / "nobase"))
    buf.seek(0)
    return checkpoints.LineReader(buf)


def _raw(*entries, tail=b""):
    body = checkpoints.DELTA_MAGIC + b"".join(json.dumps(e).encode() + b"\n" for e in entries) + tail
    return checkpoints.LineReader(io.BytesIO(body))


@pytest.fixture
def target(tmp_path):
    d = tmp_path / "target"
    d.mkdir(mode=0o700)
    return d


def test_a_hard_link_to_another_file_is_refused_and_that_file_kept(tmp_path, target):
    victim = tmp_path / "shadow"
    victim.write_bytes(b"root:x:0:0")
    os.link(victim, target / "pages-1.img")
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_delta(tmp_path, {"pages-1.img": b"attacker pages"}), str(target))
    assert "pages-1.img" in exc.value.msg and "2 hard links" in exc.value.msg
    assert victim.read_bytes() == b"root:x:0:0"


def test_a_fifo_is_refused_without_blocking(tmp_path, target):
    os.mkfifo(target / "pages-1.img")
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_delta(tmp_path, {"pages-1.img": b"p"}), str(target))
    assert "a FIFO" in exc.value.msg


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_device_node_is_refused(tmp_path, target):
    os.mknod(target / "pages-1.img", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_delta(tmp_path, {"pages-1.img": b"p"}), str(target))
    assert "a device node" in exc.value.msg


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_file_of_another_user_is_refused(tmp_path, target):
    (target / "pages-1.img").write_bytes(b"p")
    os.chown(target / "pages-1.img", 65534, -1)
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_delta(tmp_path, {"pages-1.img": b"q"}), str(target))
    assert "uid 65534" in exc.value.msg


def test_a_symlinked_checkpoint_folder_is_refused(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    os.symlink(real, tmp_path / "target")
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_delta(tmp_path, {"pages-1.img": b"p"}), str(tmp_path / "target"))
    assert "not a real directory" in exc.value.msg
    assert os.listdir(real) == []


def test_new_files_are_made_with_o_excl(tmp_path, target, monkeypatch):
    seen = []
    real_open = os.open

    def spy(path, flags, *args, **kw):
        seen.append((path, flags))
        return real_open(path, flags, *args, **kw)
    monkeypatch.setattr(checkpoints.os, "open", spy)
    checkpoints.apply_checkpoint_delta(_delta(tmp_path, {"pages-1.img": b"p" * 10}), str(target))
    flags = [f for p, f in seen if p == "pages-1.img"]
    assert flags and all(f & os.O_EXCL and f & os.O_NOFOLLOW and f & os.O_CREAT for f in flags)
    assert (target / "pages-1.img").read_bytes() == b"p" * 10


def test_a_legitimate_patch_of_an_existing_file_still_works(tmp_path, target):
    base = tmp_path / "base"
    base.mkdir()
    old = b"a" * 8192
    (base / "pages-1.img").write_bytes(old)
    (target / "pages-1.img").write_bytes(old)
    got = checkpoints.apply_checkpoint_delta(_delta(tmp_path, {"pages-1.img": b"a" * 4096 + b"b" * 4096}, base),
                                             str(target))
    assert got == {"files": 1, "literal_bytes": 4096}
    assert (target / "pages-1.img").read_bytes() == b"a" * 4096 + b"b" * 4096


def test_a_huge_sparse_size_is_refused_by_the_cap(target):
    head = dict(name="pages-1.img", size=1 << 40, mode=0o600, sha256="0" * 64, runs=[[(1 << 40) - 1, 1]])
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_raw(head, tail=b"z"), str(target), max_bytes=1 << 30)
    assert "cap" in exc.value.msg
    assert not (target / "pages-1.img").exists()


def test_growth_beyond_the_free_space_is_refused(target, monkeypatch):
    monkeypatch.setattr(checkpoints, "free_bytes", lambda path: 100 * 1024 * 1024)
    head = dict(name="pages-1.img", size=200 * 1024 * 1024, mode=0o600, sha256="0" * 64, runs=[])
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_raw(head), str(target))
    assert "file system" in exc.value.msg
    assert os.path.getsize(target / "pages-1.img") == 0


@pytest.mark.parametrize("runs, copies, why", [
    ([[10, 5]], [], "past its size"),
    ([], [[0, 0, 4096]], "outside the file"),
    ([[-1, 1]], [], "bad runs entry"),
    ("x", [], "not a list"),
])
def test_runs_and_copies_must_lie_inside_the_file(target, runs, copies, why):
    head = dict(name="core.img", size=12, mode=0o600, sha256="0" * 64, runs=runs, copies=copies)
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(_raw(head, tail=b"z" * 20), str(target))
    assert why in exc.value.msg


def test_delete_removes_a_planted_link_not_its_target(tmp_path, target):
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    os.symlink(outside, target / "gone.img")
    checkpoints.apply_checkpoint_delta(_raw(dict(name="gone.img", delete=True), dict(end=True, files=0)),
                                       str(target))
    assert not os.path.lexists(target / "gone.img") and outside.read_bytes() == b"keep"
