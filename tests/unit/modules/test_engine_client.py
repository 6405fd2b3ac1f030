"""The engine dispatch of module_utils/docker_client.get_client (one module: the SDK's constructors mocked): which
socket each engine is reached on, the exact calls, and the refusal of a host that runs the other engine."""
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.mec.migration.plugins.module_utils import docker_client, engines
from .conftest import AnsibleFailJson

DOCKER_VERSION = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41",
                  "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"},
                                 {"Name": "containerd", "Version": "1.6.20~ds1"}]}
# what Podman 4.3.1's Docker-compatible API answers to GET /version (trimmed)
PODMAN_VERSION = {"Version": "4.3.1", "ApiVersion": "1.41",
                  "Components": [{"Name": "Podman Engine", "Version": "4.3.1"},
                                 {"Name": "Conmon", "Version": "conmon version 2.1.6"}]}


def _module(params):
    with patch_module_args(params):
        return AnsibleModule(argument_spec=dict(**docker_client.DOCKER_COMMON_ARGS))


def _client(version):
    c = mock.MagicMock(name="DockerClient")
    c.version.return_value = version
    return c


def test_docker_is_the_default_and_goes_through_docker_from_env():
    client = _client(DOCKER_VERSION)
    with mock.patch.object(docker_client.docker, "from_env", return_value=client) as from_env, \
            mock.patch.object(docker_client.docker, "DockerClient") as ctor:
        got = docker_client.get_client(_module({}))
    from_env.assert_called_once_with(version="auto", timeout=120)
    ctor.assert_not_called()
    client.version.assert_called_once_with()
    assert got is client
    assert (got.mec_engine, got.mec_engine_version) == ("docker", "20.10.24+dfsg1")
    assert engines.engine_of(got) == "docker"


def test_podman_goes_to_its_service_socket():
    client = _client(PODMAN_VERSION)
    with mock.patch.object(docker_client.docker, "from_env") as from_env, \
            mock.patch.object(docker_client.docker, "DockerClient", return_value=client) as ctor:
        got = docker_client.get_client(_module({"engine": "podman", "timeout": 30}))
    ctor.assert_called_once_with(base_url="unix:///run/podman/podman.sock", version="auto", timeout=30)
    from_env.assert_not_called()
    assert (engines.engine_of(got), got.mec_engine_version) == ("podman", "4.3.1")


def test_docker_host_wins_over_the_engines_socket():
    client = _client(PODMAN_VERSION)
    with mock.patch.object(docker_client.docker, "DockerClient", return_value=client) as ctor:
        docker_client.get_client(_module({"engine": "podman", "docker_host": "unix:///tmp/p.sock"}))
    ctor.assert_called_once_with(base_url="unix:///tmp/p.sock", version="auto", timeout=120)


def test_podman_answering_where_docker_is_declared_is_refused():
    """podman-docker's /var/run/docker.sock is Podman: declared docker, the module refuses and says what to set."""
    client = _client(PODMAN_VERSION)
    with mock.patch.object(docker_client.docker, "from_env", return_value=client):
        with pytest.raises(AnsibleFailJson) as exc:
            docker_client.get_client(_module({"engine": "docker"}))
    res = exc.value.result
    host = docker_client.hostname()
    assert res["msg"] == ("Host %s runs Podman 4.3.1 (answering at the default socket), but its migration_engine is "
                          "docker: set migration_engine: podman for %s in the inventory (or point docker_host at its "
                          "Docker engine). Nothing was changed." % (host, host))
    assert res["engine"] == {"declared": "docker", "actual": "podman", "version": "4.3.1"}


def test_declared_podman_on_a_docker_host_names_what_answers_instead():
    """No Podman socket; Docker answers on its own: the failure says the host runs Docker."""
    docker_answer = _client(DOCKER_VERSION)

    def ctor(base_url, version, timeout):
        if base_url == "unix:///run/podman/podman.sock":
            raise docker_client.DockerException("Error while fetching server API version: No such file or directory")
        assert (base_url, timeout) == ("unix:///var/run/docker.sock", 5)
        return docker_answer
    with mock.patch.object(docker_client.docker, "DockerClient", side_effect=ctor) as made:
        with pytest.raises(AnsibleFailJson) as exc:
            docker_client.get_client(_module({"engine": "podman"}))
    assert [c.kwargs["base_url"] for c in made.call_args_list] == [
        "unix:///run/podman/podman.sock", "unix:///var/run/docker.sock"]
    msg = exc.value.result["msg"]
    assert msg.startswith("Host %s runs Docker 20.10.24+dfsg1 (answering at unix:///var/run/docker.sock), but its "
                          "migration_engine is podman: set migration_engine: docker" % docker_client.hostname())
    assert "does not answer at unix:///run/podman/podman.sock" in msg
    assert "Traceback" not in msg and "Traceback" in exc.value.result["exception"]
    docker_answer.close.assert_called_once_with()


def test_no_engine_at_all_says_how_to_start_the_declared_one():
    def ctor(base_url, version, timeout):
        raise docker_client.DockerException("connection refused")
    with mock.patch.object(docker_client.docker, "DockerClient", side_effect=ctor):
        with pytest.raises(AnsibleFailJson) as exc:
            docker_client.get_client(_module({"engine": "podman"}))
    msg = exc.value.result["msg"]
    assert msg.startswith("The Podman engine on host %s is not reachable (unix:///run/podman/podman.sock): "
                          "connection refused. Start its API service" % docker_client.hostname())


def test_identify_reads_the_components():
    assert engines.identify(DOCKER_VERSION) == ("docker", "20.10.24+dfsg1")
    assert engines.identify(PODMAN_VERSION) == ("podman", "4.3.1")
    assert engines.identify({"Version": "24.0.7"}) == ("docker", "24.0.7")


def test_engine_of_a_client_without_the_mark_is_docker():
    assert engines.engine_of(object()) == "docker"
    assert engines.engine_of(mock.MagicMock()) == "docker"


def test_strategy_problems_refuse_m3_across_engines():
    assert engines.strategy_problems(False, "h1", "podman", "h2", "docker") == []
    assert engines.strategy_problems(True, "h1", "docker", "h2", "docker") == []
    assert engines.strategy_problems(True, "h1", "podman", "h2", "podman") == []
    for mine, peer in (("docker", "podman"), ("podman", "docker")):
        (problem,) = engines.strategy_problems(True, "h1", mine, "h2", peer)
        assert problem.startswith("Strategy m3 (CRIU checkpoint/restore) runs only between two hosts of the same "
                                  "engine: h1 is %s and h2 is %s" % (engines.title(mine), engines.title(peer)))
        assert "Use strategy m2" in problem and "Nothing was changed." in problem


def test_names_as_docker_writes_them():
    assert engines.short_image_name("podman", "localhost/mec-test/counter:1") == "mec-test/counter:1"
    assert engines.short_image_name("podman", "docker.io/mec-migration/a2:r1") == "mec-migration/a2:r1"
    assert engines.short_image_name("podman", "docker.io/library/debian:12") == "debian:12"
    assert engines.short_image_name("podman", "quay.io/x/y:1") == "quay.io/x/y:1"
    assert engines.short_image_name("docker", "localhost/x:1") == "localhost/x:1"
    assert engines.portable_network("podman", "podman") == "bridge"
    assert engines.portable_network("docker", "podman") == "podman"
    assert engines.portable_network("podman", "mec-lab") == "mec-lab"
