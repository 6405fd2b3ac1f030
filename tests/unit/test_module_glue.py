"""module_glue.run_guarded: an engine's refusal names the engine the module talks to, and the host."""
import pytest

from ansible_collections.mec.migration.plugins.module_utils import module_glue
from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError


class Failed(Exception):
    pass


class FakeModule(object):
    def __init__(self, params):
        self.params = params

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


def refuse():
    raise APIError("failed to load image")


@pytest.mark.parametrize("params,engine", [({"engine": "podman"}, "Podman"), ({"engine": "docker"}, "Docker"),
                                           ({}, "container")])
def test_an_engine_refusal_names_the_engine_and_the_host(params, engine):
    with pytest.raises(Failed) as err:
        module_glue.run_guarded(FakeModule(params), refuse)
    result = err.value.args[0]
    assert result["msg"] == "The %s engine on host %s refused: failed to load image" % (
        engine, module_glue.hostname()) and result["host"] == module_glue.hostname()
