"""The container image: built offline from the lab's Debian base, it serves the default scenario.
And, when the lab runs the sandbox (role mec_sandbox), every MEC host reaches it."""

import os
import shutil
import subprocess
import time

import pytest
import requests
from sandbox_helpers import APPS, free_port

BASE_IMAGE = os.environ.get("MEC_SANDBOX_BASE_IMAGE", "mec-lab/base:bookworm")
TAG = "mec-sandbox-test:pytest"
LABEL = "mec.migration.test=1"
INVENTORY = os.path.normpath(os.path.join(APPS, "..", "inventories", "local", "hosts.yml"))


def docker(*args, check=True, timeout=300):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def _have_base():
    return shutil.which("docker") and docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0


@pytest.mark.docker
@pytest.mark.skipif(not _have_base(), reason=f"needs the Docker engine and the base image {BASE_IMAGE}")
def test_image_builds_offline_and_serves_the_default_scenario():
    docker("build", "--label", LABEL, "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", TAG,
           os.path.join(APPS, "mec_sandbox"))
    port = free_port()
    name = f"mec-sandbox-pytest-{port}"
    docker("run", "-d", "--rm", "--label", LABEL, "--name", name, "-p", f"127.0.0.1:{port}:8080", TAG)
    try:
        url = f"http://127.0.0.1:{port}/location/v2/queries/users"
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, docker("logs", name, check=False).stdout
                time.sleep(0.3)
        assert r.status_code == 200
        assert len(r.json()["userList"]["user"]) == 6
        bad = requests.get(url, params={"zone": "x"}, timeout=2)
        assert bad.status_code == 400 and bad.json()["status"] == 400
        user = docker("inspect", "--format", "{{.Config.User}}", name).stdout.strip()
        assert user == "65534:65534"
    finally:
        docker("rm", "-f", name, check=False)
        docker("image", "rm", TAG, check=False)


@pytest.mark.lab
@pytest.mark.skipif(not os.path.exists(INVENTORY), reason="the local lab is not up")
@pytest.mark.parametrize("host", ["mec-lab-source", "mec-lab-target"])
def test_every_mec_host_reaches_the_lab_sandbox(host):
    if docker("container", "inspect", "mec-sandbox", check=False).returncode != 0:
        pytest.skip("the lab's sandbox is not running (apply role mec.migration.mec_sandbox)")
    probe = ("import json, urllib.request; "
             "print(json.load(urllib.request.urlopen('http://172.30.77.5:8080/sandbox/location/v2/queries/zones',"
             " timeout=5))['zoneList']['zone'][0]['zoneId'])")
    out = docker("exec", host, "python3", "-c", probe, timeout=30)
    assert out.stdout.strip() == "zone01"
