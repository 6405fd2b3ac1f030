"""engines.stop_container: on Podman it returns once the container's process has exited (seen on a pidfd), not when
the engine's stop returns (Podman's clean-up comes after); on Docker it is the engine's stop. A real process stands
for the container's: the mocked engine's stop ends it, then takes its clean-up time."""
import subprocess
import threading
import time
from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.module_utils import engines

CLEANUP = 0.6  # the mocked engine's clean-up after the process exited (Podman's is ~0.2 s)


def _engine(engine, proc, stop_error=None):
    """A client whose api.stop(id, timeout=...) ends ``proc`` after 50 ms, then returns after CLEANUP s."""
    client = mock.Mock()
    client.mec_engine = engine
    calls = []

    def stop(cid, timeout):
        calls.append(("stop", cid, timeout, threading.current_thread() is threading.main_thread()))
        time.sleep(0.05)
        if stop_error is not None:
            raise stop_error
        proc.terminate()
        proc.wait()
        calls.append(("exited", time.monotonic()))
        time.sleep(CLEANUP)
        calls.append(("returned", time.monotonic()))
    client.api.stop.side_effect = stop
    return client, calls


def _exited(pid):
    """Whether process ``pid`` has exited (a zombie not reaped yet, or gone)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone; reaped between the open and the read: ESRCH (seen in CI)
        return True


@pytest.fixture
def proc():
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def test_podman_returns_when_the_process_exited_and_the_stop_finishes_in_wait(proc):
    client, calls = _engine("podman", proc)
    info = {"Id": "c1", "State": {"Pid": proc.pid, "Running": True}}
    t0 = time.monotonic()
    stopping = engines.stop_container(client, info, 2)
    back = time.monotonic()
    assert _exited(proc.pid), "returned before the process exited"
    assert calls[0] == ("stop", "c1", 2, False)  # the engine's own stop, in a thread
    assert back - t0 < CLEANUP, "waited for the engine's clean-up (%.3f s)" % (back - t0)
    assert not stopping.done()
    assert stopping.wait(5) is stopping
    assert [c[0] for c in calls] == ["stop", "exited", "returned"] and stopping.done()
    assert 0.05 <= stopping.exited_after < CLEANUP
    client.api.stop.assert_called_once_with("c1", timeout=2)
    client.api.kill.assert_not_called()  # a kill would be undone by Podman's restart policy


def test_docker_is_the_engines_stop_itself(proc):
    client, calls = _engine("docker", proc)
    stopping = engines.stop_container(client, {"Id": "c1", "State": {"Pid": proc.pid, "Running": True}}, 7)
    assert stopping.done() and [c[0] for c in calls] == ["stop", "exited", "returned"]
    client.api.stop.assert_called_once_with("c1", timeout=7)


@pytest.mark.parametrize("pid", [0, None, 2 ** 22 + 12345])
def test_podman_without_a_pidfd_waits_for_the_engines_stop(proc, pid):
    client, calls = _engine("podman", proc)
    stopping = engines.stop_container(client, {"Id": "c1", "State": {"Pid": pid, "Running": True}}, 2)
    assert stopping.done() and calls[-1][0] == "returned"
    assert stopping.exited_after >= CLEANUP


def test_podman_stop_error_is_raised_not_taken_for_an_exit(proc):
    client, calls = _engine("podman", proc, stop_error=RuntimeError("API service gone"))
    with pytest.raises(RuntimeError, match="API service gone"):
        engines.stop_container(client, {"Id": "c1", "State": {"Pid": proc.pid, "Running": True}}, 2)
    assert not _exited(proc.pid)  # the process still runs: nothing was taken for its exit
