"""Integration tests of the migration: on this machine's Docker engine (``docker`` mark) and on the
local lab (``lab`` mark: two MEC hosts reached over SSH, inventories/local/hosts.yml)."""
import os
import sys
import uuid

import pytest

from labtools import (BASE_IMAGES, INVENTORY, ROOT, Host, LabPair, docker_cli, lab_hosts, load_image,  # noqa: F401
                      local_base_image, skip_or_fail)

COLLECTIONS = os.path.join(ROOT, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "mec", "migration")
if not os.path.lexists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink("../../../..", LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

LAB_INVENTORY = os.path.join(ROOT, "inventories", "local", "hosts.yml")
COUNTER_APP = os.path.join(os.path.dirname(__file__), "files", "counter_app")
TEST_LABEL = "mec.migration.test=1"


def pytest_terminal_summary(terminalreporter):
    """The fault campaign's table (tests/integration/test_faults_lab.py): results/fault_campaign.json (or the file
    that MEC_FAULT_CAMPAIGN names, relative to the repository: scripts/test.sh runs the Podman lab's part in a pytest of
    its own, beside the local lab's) and printed."""
    rows = []
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").endswith("test_faults_lab"):
            rows = getattr(mod, "FAULT_CAMPAIGN", [])
    if not rows:
        return
    import json
    path = os.path.join(ROOT, os.environ.get("MEC_FAULT_CAMPAIGN") or os.path.join("results", "fault_campaign.json"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(rows, fh, indent=2)
    tr = terminalreporter
    tr.section("fault campaign (%s)" % os.path.relpath(path, ROOT))
    tr.write_line("%-36s %-3s %-7s %-12s %-8s %-12s %s"
                  % ("fault", "str", "passed", "outcome", "one host", "lost nothing", "state (source -> now)"))
    for r in rows:
        tr.write_line("%-36s %-3s %-7s %-12s %-8s %-12s %s" % (
            r["fault"], r["strategy"], r["passed"], r.get("outcome"), r.get("one_host"), r.get("lost_nothing"),
            r.get("state") or ""))
    tr.write_line("%d of %d fault runs recovered and lost nothing" % (sum(1 for r in rows if r["passed"]), len(rows)))


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a running Docker engine on this machine")
    config.addinivalue_line("markers", "lab: needs the local lab (inventories/local/hosts.yml, two MEC hosts over SSH)")


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker
    except ImportError as exc:  # the Docker SDK is in requirements.txt: its absence is always a failure
        pytest.fail("the Docker SDK for Python is not installed (%s): run scripts/bootstrap.sh" % exc)
    try:
        client = docker.from_env(version="auto")
        client.ping()
    except Exception as exc:  # no engine: the docker-marked tests cannot run here
        skip_or_fail("no Docker engine: %s" % exc)
    return client


@pytest.fixture(scope="session")
def counter_image(docker_client):
    """mec-test/counter:1 built from a local base image (ENTRYPOINT/CMD/ENV/WORKDIR/USER of its own)."""
    base = local_base_image()
    if base is None:
        skip_or_fail("no local base image (%s); make one with debootstrap and docker import (playbooks/lab.yml does)"
                     % ", ".join(BASE_IMAGES))
    docker_cli("build", "-q", "--build-arg", "BASE=" + base, "--label", TEST_LABEL, "-t", "mec-test/counter:1",
               COUNTER_APP)
    return "mec-test/counter:1"


@pytest.fixture(scope="session")
def lab():
    """(source, target) of the local lab, each answering with a running engine; the lab's absence fails."""
    if not os.path.exists(INVENTORY):
        pytest.fail("the local lab is not up (no %s): bring it up with playbooks/lab.yml or scripts/test.sh"
                    % INVENTORY)
    hosts = lab_hosts()
    src, dst = Host(hosts["source"]), Host(hosts["target"])
    for h in (src, dst):
        h.out(["docker", "info", "--format", "{{.ServerVersion}}"])
    return src, dst


@pytest.fixture(scope="module")
def lab_pair(request):
    """The LabPair of the lab the test is parametrized with (labtools.LAB_PAIRS, indirect; the local lab where it is
    not parametrized): "local" (through ``lab``, which fails when the local lab is not up) or "podman" (the Podman
    lab's source and target; its absence fails)."""
    which = getattr(request, "param", "local")
    if which == "local":
        request.getfixturevalue("lab")
    return LabPair(which)


@pytest.fixture(scope="session")
def lab_groups(lab):
    """The local lab as tests/conftest.py gives it, {group: (host name, address)}, for the tests that name the hosts
    by group (this folder's ``lab`` is the pair of hosts); through ``lab``, so that it fails the same way."""
    return lab_hosts()


@pytest.fixture(scope="session")
def lab_image(lab, counter_image):
    """mec-test/counter:1 on the lab's source, the very image built here (loaded again when the source holds
    another image under that name, e.g. one of an older counter.sh)."""
    src = lab[0]
    want = docker_cli("image", "inspect", "-f", "{{.Id}}", counter_image).stdout.strip()
    if src.run(["docker", "image", "inspect", "-f", "{{.Id}}", counter_image], check=False).stdout.strip() != want:
        load_image(counter_image, src)
    return counter_image


@pytest.fixture
def unique():
    return "mt" + uuid.uuid4().hex[:8]


class Cleanup(object):
    """Names of what a test made on an engine; removed at teardown."""

    def __init__(self, client):
        self.client = client
        self.containers, self.volumes, self.images, self.networks = [], [], [], []

    def run(self):
        from docker.errors import NotFound, APIError
        for name in self.containers:
            try:
                self.client.api.remove_container(name, force=True)
            except (NotFound, APIError):
                pass
        for name in self.volumes:
            try:
                self.client.api.remove_volume(name, force=True)
            except (NotFound, APIError):
                pass
        for ref in self.images:
            try:
                self.client.api.remove_image(ref, force=True)
            except (NotFound, APIError):
                pass
        for name in self.networks:
            try:
                self.client.api.remove_network(name)
            except (NotFound, APIError):
                pass


@pytest.fixture
def cleanup(docker_client):
    c = Cleanup(docker_client)
    yield c
    c.run()


@pytest.fixture
def ansible_module():
    """A real AnsibleModule (real run_command) for the migration operations of plugins/module_utils."""
    from ansible.module_utils.basic import AnsibleModule
    from ansible.module_utils.testing import patch_module_args
    with patch_module_args({}):
        return AnsibleModule(argument_spec={})
