# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Options shared by the modules that talk to a container engine (Docker, or Podman through its Docker-compatible
API)."""

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  engine:
    description:
      - The engine the host runs (the role passes the host's inventory variable C(migration_engine)).
      - V(docker), Docker Engine; V(podman), Podman 4 through the Docker-compatible API of its service
        (C(podman system service), socket V(unix:///run/podman/podman.sock)).
      - The module fails, naming the host and what to do, when what answers is the other engine.
    type: str
    choices: [docker, podman]
    default: docker
  docker_host:
    description:
      - URL of the engine's API, for example V(unix:///var/run/docker.sock).
      - Default with O(engine=docker) is E(DOCKER_HOST) or Docker's default socket; with O(engine=podman)
        V(unix:///run/podman/podman.sock).
    type: str
  timeout:
    description: Seconds to wait for an answer of the engine.
    type: int
    default: 120
requirements:
  - Docker SDK for Python >= 5.0 (Debian 12 package C(python3-docker))
  - Docker Engine 20.10 or later, or Podman 4.3 or later with its API service, on the managed host
notes:
  - The module runs on the MEC host itself (source or target); transfers go host to host, never through the controller.
"""
