import pytest
from docker.errors import NotFound

from ansible_collections.mec.migration.plugins.modules import migration_cleanup
from .conftest import inspect_container, inspect_image, resolving_inspect


def test_removes_only_what_exists(run_module, client, tmp_path):
    work = tmp_path / "run1"
    work.mkdir()
    (work / "image.tar").write_bytes(b"x")
    client.api.inspect_container.side_effect = \
        lambda n: inspect_container(name=n) if n == "app" else (_ for _ in ()).throw(NotFound(n))
    client.api.inspect_image.return_value = inspect_image()
    client.api.inspect_volume.side_effect = NotFound("none")
    res = run_module(migration_cleanup, {"containers": ["app", "ghost"], "images": ["mec-migration/app:run1"],
                                         "volumes": ["appdata"], "paths": [str(work), str(tmp_path / "none")]})
    client.api.remove_container.assert_called_once_with("app", force=True)
    client.api.remove_image.assert_called_once_with("mec-migration/app:run1", force=True)
    client.api.remove_volume.assert_not_called()
    assert not work.exists()
    assert res["removed"] == {"containers": ["app"], "images": ["mec-migration/app:run1"], "volumes": [],
                              "paths": [str(work)]}
    assert res["changed"] is True


def test_nothing_to_remove_is_unchanged(run_module, client):
    client.api.inspect_container.side_effect = NotFound("none")
    res = run_module(migration_cleanup, {"containers": ["app"]})
    assert res["changed"] is False
    client.api.remove_container.assert_not_called()


def test_paths_go_even_when_the_engine_does_not_answer(run_module, client, tmp_path):
    from .conftest import AnsibleFailJson
    work = tmp_path / "run1"
    work.mkdir()
    (work / "image.tar").write_bytes(b"x" * 10)
    client.api.inspect_image.side_effect = ConnectionError("engine socket closed")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_cleanup, {"images": ["mec-migration/app:run1"], "paths": [str(work)]})
    assert "engine socket closed" in exc.value.result["msg"]
    assert not work.exists()


def test_paths_only_need_no_engine(run_module, client, tmp_path):
    work = tmp_path / "run1"
    work.mkdir()
    res = run_module(migration_cleanup, {"paths": [str(work)]})
    assert res["changed"] is True and res["removed"]["paths"] == [str(work)]
    client.api.remove_image.assert_not_called()


def test_finish_journal_closes_the_run_after_the_cleanup(run_module, client, tmp_path):
    import json
    from ansible_collections.mec.migration.plugins.module_utils import journal as jr
    root, work = tmp_path / "state", tmp_path / "run1"
    work.mkdir()
    jr.begin(str(root), "run1", "app", {}, [], "h")
    res = run_module(migration_cleanup, {"paths": [str(work)], "finish_journal": {
        "root": str(root), "app": "app", "run_id": "run1", "outcome": "done"}})
    assert res["changed"] is True and res["released"] is True and not work.exists()
    journal = json.loads((root / "runs" / "run1.json").read_text())
    assert journal["outcome"] == "done" and not (root / "locks" / "app.lock").exists()


def test_a_failed_cleanup_leaves_the_journal_open(run_module, client, tmp_path):
    from ansible_collections.mec.migration.plugins.module_utils import journal as jr
    from .conftest import AnsibleFailJson
    root = tmp_path / "state"
    jr.begin(str(root), "run1", "app", {}, [], "h")
    client.api.inspect_image.side_effect = ConnectionError("engine socket closed")
    with pytest.raises(AnsibleFailJson):
        run_module(migration_cleanup, {"images": ["mec-migration/app:run1"], "finish_journal": {
            "root": str(root), "app": "app", "run_id": "run1", "outcome": "done"}})
    assert (root / "locks" / "app.lock").exists() and jr.read_journal(str(root), "run1")["outcome"] is None


def test_a_container_that_only_matches_by_id_prefix_is_not_removed(run_module, client):
    """The engines answer a name that no container has with the container whose ID starts with it: A2's container
    a343df09... answered for a missing "a3" on the Podman lab. Only the container called "a3" is the run's."""
    a2 = inspect_container(name="a2", cid="a343df09" + "0" * 56)
    client.api.inspect_container.side_effect = resolving_inspect(a2)
    res = run_module(migration_cleanup, {"containers": ["a3"]})
    client.api.remove_container.assert_not_called()
    assert res["changed"] is False and res["removed"]["containers"] == []
    res = run_module(migration_cleanup, {"containers": ["a2"]})
    client.api.remove_container.assert_called_once_with("a2", force=True)
