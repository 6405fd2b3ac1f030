"""The app images built from their Dockerfiles on this machine's Docker engine and run for real.

The containers use the host's network namespace so that they reach the fake upstream on loopback
(nothing leaves the machine). Everything created carries the label mec.migration.test=1 and is
removed afterwards. The base image is MEC_APPS_TEST_BASE_IMAGE or the lab's local base image.
"""

import json
import os
import subprocess
import time
import uuid

import pytest

from apps_helpers import APPS, free_port, memcached_get, users, zones

pytestmark = pytest.mark.docker
LABEL = "mec.migration.test=1"
BASE_CANDIDATES = [os.environ.get("MEC_APPS_TEST_BASE_IMAGE", ""), "mec-lab/base:bookworm", "mec-lab/base:manual"]


def docker(*args, check=True, timeout=300):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def base_image():
    try:
        docker("version")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no Docker engine")
    for candidate in filter(None, BASE_CANDIDATES):
        if docker("image", "inspect", candidate, check=False).returncode == 0:
            return candidate
    pytest.skip("no local base image (set MEC_APPS_TEST_BASE_IMAGE or bring the lab up)")


@pytest.fixture(scope="module")
def images(base_image):
    """Build the app images once for the module; yield {name: tag}; remove them afterwards."""
    suffix = uuid.uuid4().hex[:8]
    built = {}
    for name, context, dockerfile in (("a1", "a1_rab_logger", "Dockerfile"), ("a2", "a2_zone_counter", "Dockerfile"),
                                      ("a3", "a3_poa_store", "Dockerfile"),
                                      ("a3-loader", "a3_poa_store", "Dockerfile.loader")):
        tag = "mec-apps-test/%s:%s" % (name, suffix)
        docker("build", "--quiet", "--build-arg", "BASE_IMAGE=" + base_image, "--label", LABEL,
               "--file", str(APPS / context / dockerfile), "--tag", tag, str(APPS / context), timeout=600)
        built[name] = tag
    yield built
    docker("image", "rm", "--force", *built.values(), check=False)


@pytest.fixture
def containers():
    names = []
    yield names
    if names:
        docker("rm", "--force", *names, check=False)


@pytest.fixture
def volume():
    name = "mec-apps-test-a2-" + uuid.uuid4().hex[:8]
    docker("volume", "create", "--label", LABEL, name)
    yield name
    users_of_volume = docker("ps", "--all", "--quiet", "--filter", "volume=" + name, check=False).stdout.split()
    if users_of_volume:
        docker("rm", "--force", *users_of_volume, check=False)
    docker("volume", "rm", "--force", name, check=False)


def run(containers, image, *options):
    name = "mec-apps-test-" + uuid.uuid4().hex[:8]
    docker("run", "--detach", "--name", name, "--label", LABEL, "--network", "host", *options, image)
    containers.append(name)
    return name


def logs(name):
    result = docker("logs", name, check=False)
    return result.stdout + result.stderr


def wait_log(name, text, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in logs(name):
            return
        time.sleep(0.2)
    raise AssertionError("%r not in the logs of %s:\n%s" % (text, name, logs(name)[-3000:]))


def test_a1_image_logs_rab_info_and_stops_on_sigterm(images, containers, upstream):
    upstream.set("/rni/v2/queries/rab_info", {"cellUserInfo": [{"ueInfo": [{"erabInfo": [{"erabId": 5}]}]}]})
    name = run(containers, images["a1"], "--env", "MEC_GATEWAY_URL=" + upstream.url)
    wait_log(name, 'erabInfo [{"erabId":5}]')
    docker("stop", "--time", "10", name)
    state = json.loads(docker("inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, "exit 0 means the SIGTERM handler ran (137 would be the kill)"
    assert docker("inspect", "--format", "{{.Config.User}}", name).stdout.strip() == "mecapp"


def test_a2_image_counts_on_its_volume_and_resumes_after_a_restart(images, containers, upstream, volume):
    upstream.set("/location/v2/queries/users", users("zone11"))
    port = free_port()
    options = ("--env", "MEC_GATEWAY_URL=" + upstream.url, "--env", "A2_PORT=%d" % port,
               "--volume", volume + ":/data")
    first = run(containers, images["a2"], *options)
    wait_log(first, "counter=1 zone=zone11")
    upstream.set("/location/v2/queries/users", users("zone12"))
    wait_log(first, "counter=2 zone=zone12")
    docker("stop", first)
    assert json.loads(docker("inspect", first).stdout)[0]["State"]["ExitCode"] == 0
    docker("rm", first)
    containers.remove(first)
    second = run(containers, images["a2"], *options)
    wait_log(second, "Using saved state counter=2 zone=zone12")
    content = docker("run", "--rm", "--label", LABEL, "--volume", volume + ":/data", "--entrypoint", "cat",
                     images["a2"], "/data/state.json").stdout
    assert json.loads(content) == {"counter": 2, "zone": "zone12"}


def test_a3_image_serves_memcached_and_the_loader_image_fills_it(images, containers, upstream):
    port = free_port()
    # The image's own command listens on 0.0.0.0:11211; on the host network use a free loopback port.
    a3 = "mec-apps-test-" + uuid.uuid4().hex[:8]
    docker("run", "--detach", "--name", a3, "--label", LABEL, "--network", "host", images["a3"],
           "memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16")
    containers.append(a3)
    upstream.set("/location/v2/queries/zones", zones([("zone01", 4), ("zone02", 9)]))
    loader = docker("run", "--rm", "--label", LABEL, "--network", "host", "--env", "MEC_GATEWAY_URL=" + upstream.url,
                    "--env", "MEMCACHED_HOST=127.0.0.1", "--env", "MEMCACHED_PORT=%d" % port, images["a3-loader"],
                    check=False, timeout=60)
    assert loader.returncode == 0, loader.stdout + loader.stderr
    assert memcached_get("127.0.0.1", port, ["zone01", "zone02"]) == {"zone01": "4", "zone02": "9"}
    docker("stop", a3)
    assert json.loads(docker("inspect", a3).stdout)[0]["State"]["ExitCode"] == 0
