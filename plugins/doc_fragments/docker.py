# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Options shared by the modules that talk to a Docker engine."""

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - URL of the Docker engine, for example V(unix:///var/run/docker.sock).
      - Default is E(DOCKER_HOST) or the engine's default socket.
    type: str
  timeout:
    description: Seconds to wait for an answer of the Docker engine.
    type: int
    default: 120
requirements:
  - Docker SDK for Python >= 5.0 (Debian 12 package C(python3-docker))
  - Docker Engine 20.10 or later on the managed host
notes:
  - The module runs on the MEC host itself (source or target); transfers go host to host, never through the controller.
"""
