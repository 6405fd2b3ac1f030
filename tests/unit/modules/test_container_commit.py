import time

from docker.errors import NotFound

from ansible_collections.mec.migration.plugins.modules import container_commit
from .conftest import inspect_container, inspect_image


def test_commit_measures_freeze_from_events(run_module, client):
    client.api.inspect_container.return_value = inspect_container()
    client.api.inspect_image.side_effect = [NotFound("none"), inspect_image(cid="sha256:img", size=500)]
    client.api.commit.return_value = {"Id": "sha256:img"}

    def events(since, until, decode, filters):
        assert filters == {"container": "c" * 64, "event": ["pause", "unpause"]}
        # the engine's pause/unpause instants, 40 ms apart, during the commit
        now = time.time()
        return iter([{"status": "pause", "timeNano": int(now * 1e9)},
                     {"status": "unpause", "timeNano": int((now + 0.04) * 1e9)}])
    client.api.events.side_effect = events
    result = run_module(container_commit, {"name": "app", "image": "mec-migration/app:run1"})
    client.api.commit.assert_called_once_with("c" * 64, repository="mec-migration/app", tag="run1", changes=None)
    assert result["changed"] is True
    assert abs(result["freeze_duration"] - 0.04) < 0.001
    assert result["freeze_source"] == "engine events"
    assert (result["image_id"], result["size"]) == ("sha256:img", 500)


def test_commit_stops_reading_events_at_the_unpause_and_closes_the_stream(run_module, client):
    """The engine ends an events stream only at its `until` (whole seconds, up to 1 s after the commit): the
    module must not wait for it once the unpause it measures has come."""
    client.api.inspect_container.return_value = inspect_container()
    client.api.inspect_image.side_effect = [NotFound("none"), inspect_image(cid="sha256:img")]
    client.api.commit.return_value = {"Id": "sha256:img"}

    class Stream:
        closed = False

        def __iter__(self):
            now = time.time()
            yield {"status": "pause", "timeNano": int(now * 1e9)}
            yield {"status": "unpause", "timeNano": int((now + 0.02) * 1e9)}
            raise AssertionError("read on after the unpause (the engine would hold the stream until `until`)")

        def close(self):
            Stream.closed = True

    client.api.events.return_value = Stream()
    result = run_module(container_commit, {"name": "app", "image": "mec-migration/app:run1"})
    assert result["freeze_source"] == "engine events" and abs(result["freeze_duration"] - 0.02) < 0.001
    assert Stream.closed


def test_commit_without_events_reports_upper_bound(run_module, client):
    client.api.inspect_container.return_value = inspect_container()
    client.api.inspect_image.side_effect = [NotFound("none"), inspect_image(cid="sha256:img")]
    client.api.commit.return_value = {"Id": "sha256:img"}
    client.api.events.return_value = iter([])
    result = run_module(container_commit, {"name": "app", "image": "mec-migration/app:run1"})
    assert result["freeze_duration"] == result["duration"]
    assert result["freeze_source"] == "commit duration (upper bound)"


def test_existing_image_unchanged(run_module, client):
    client.api.inspect_container.return_value = inspect_container()
    client.api.inspect_image.return_value = inspect_image(cid="sha256:img")
    result = run_module(container_commit, {"name": "app", "image": "mec-migration/app:run1"})
    client.api.commit.assert_not_called()
    assert (result["changed"], result["image_id"]) == (False, "sha256:img")
