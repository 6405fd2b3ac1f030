"""The container image: built offline from the lab's Debian base, it serves the default scenario to a client with a
token. And, when the lab runs the sandbox (role mec_sandbox), every MEC host reaches it: through its gateway (which
holds the gateways' token) with an answer, directly without a token with a 401."""

import json
import os
import shutil
import subprocess
import time

import pytest
import requests
from mec_sandbox.credentials import TokenClient, generate, load_client
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
def test_image_builds_offline_and_serves_the_default_scenario(tmp_path):
    docker("build", "--label", LABEL, "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", TAG,
           os.path.join(APPS, "mec_sandbox"))
    creds = tmp_path / "creds"
    generate(str(creds))
    env_file = creds / "env"  # the configuration as the role passes it: in the environment, on one line
    env_file.write_text("MEC_SANDBOX_AUTH=" + json.dumps(json.loads((creds / "sandbox-auth.json").read_text())))
    env_file.chmod(0o600)
    port = free_port()
    name = f"mec-sandbox-pytest-{port}"
    docker("run", "-d", "--rm", "--label", LABEL, "--name", name, "-p", f"127.0.0.1:{port}:8080",
           "--env-file", str(env_file), TAG)
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
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        headers = TokenClient(f"http://127.0.0.1:{port}", *load_client(str(creds / "credentials.json"),
                                                                       "mec-eda")).headers()
        r = requests.get(url, headers=headers, timeout=2)
        assert r.status_code == 200
        assert len(r.json()["userList"]["user"]) == 6
        bad = requests.get(url, params={"zone": "x"}, headers=headers, timeout=2)
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
    # through the host's gateway (role mec_gateway, on the mec-apps network at 10.77.0.2), which sends the
    # gateways' token; directly, without a token, the sandbox refuses
    probe = ("import json, urllib.request, urllib.error\n"
             "print(json.load(urllib.request.urlopen('http://10.77.0.2/location/v2/queries/zones',"
             " timeout=5))['zoneList']['zone'][0]['zoneId'])\n"
             "try:\n"
             "    urllib.request.urlopen('http://172.30.77.5:8080/sandbox/location/v2/queries/zones', timeout=5)\n"
             "except urllib.error.HTTPError as e:\n"
             "    print(e.code, e.headers['WWW-Authenticate'].split(' ')[0])\n")
    out = docker("exec", host, "python3", "-c", probe, timeout=30)
    assert out.stdout.split("\n")[:2] == ["zone01", "401 Bearer"], out.stdout + out.stderr
