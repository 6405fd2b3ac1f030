#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Build a container image from a debootstrapped root filesystem, offline from any registry."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rootfs_image
short_description: Build a Docker image from a debootstrapped root filesystem, cached by its recipe
description:
  - Runs C(debootstrap) for a Debian release into a temporary folder, then imports the folder with
    the Docker engine's import call, so that no container registry is needed.
  - The image carries the hash of its recipe (release, variant, packages, archive, image changes) in
    the label C(mec.migration.recipe). An image of that name whose label matches is reused; the
    image is rebuilt only when the recipe changes or O(force=true).
  - The archive is, unless given, the one the host's own APT configuration uses.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
requirements:
  - debootstrap
options:
  name:
    description: Image reference to create, C(repository:tag).
    type: str
    required: true
  suite:
    description: Release to bootstrap.
    type: str
    default: bookworm
  variant:
    description: debootstrap variant.
    type: str
    default: minbase
  include:
    description: Extra packages to install into the root filesystem.
    type: list
    elements: str
    default: []
  components:
    description: Archive components.
    type: list
    elements: str
    default: [main]
  mirror:
    description:
      - Archive URI. Default is the Debian archive of the host's own APT configuration.
    type: str
  changes:
    description: Dockerfile instructions applied at import (C(CMD), C(ENV), C(LABEL), ...).
    type: list
    elements: str
    default: []
  labels:
    description: Labels to set on the image.
    type: dict
    default: {}
  force:
    description: Rebuild even when an image with the same recipe exists.
    type: bool
    default: false
  workdir:
    description: Folder under which the temporary root filesystem is made.
    type: path
    default: /var/tmp
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Compares the recipe with the existing image's and reports whether a build is due; nothing is built.
  diff_mode:
    support: none
    description: No diff; RV(recipe) returns the recipe the image is built from.
  idempotent:
    support: full
    description: An image whose recipe label matches the wanted recipe is kept unless O(force=true).
"""

EXAMPLES = r"""
- name: Build the lab's base image
  mec.migration.rootfs_image:
    name: mec-lab/base:bookworm
    include: [ca-certificates]
    changes: ['CMD ["/bin/bash"]']
    labels:
      mec.migration.lab: "1"
"""

RETURN = r"""
image_id:
  description: Id of the image.
  returned: success and not check mode
  type: str
recipe:
  description: Hash of the recipe that the image carries as label C(mec.migration.recipe).
  returned: always
  type: str
mirror:
  description: The archive used.
  returned: always
  type: str
size:
  description: Image size in bytes.
  returned: success and not check mode
  type: int
durations:
  description: Seconds spent in C(debootstrap) and in the import.
  returned: changed
  type: dict
"""

import hashlib
import json
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mec.migration.plugins.module_utils.apt_sources import debian_archive
from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, NotFound, fail, get_client, hostname, run_tool)
from ansible_collections.mec.migration.plugins.module_utils.timing import Stopwatch

RECIPE_LABEL = "mec.migration.recipe"
RECIPE_VERSION = 1


def recipe_hash(params, mirror):
    recipe = dict(version=RECIPE_VERSION, suite=params["suite"], variant=params["variant"],
                  include=sorted(params["include"]), components=params["components"], mirror=mirror,
                  changes=params["changes"], labels=params["labels"])
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def current_recipe(client, name):
    try:
        image = client.images.get(name)
    except NotFound:
        return None, None
    return (image.labels or {}).get(RECIPE_LABEL), image


def build(module, client, mirror, recipe):
    params = module.params
    watch = Stopwatch()
    tmp = tempfile.mkdtemp(prefix="mec-rootfs-", dir=params["workdir"])
    try:
        root = tmp + "/root"
        argv = ["debootstrap", "--variant=" + params["variant"], "--components=" + ",".join(params["components"])]
        if params["include"]:
            argv.append("--include=" + ",".join(params["include"]))
        argv += [params["suite"], root, mirror]
        with watch.step("debootstrap"):
            run_tool(module, argv, "debootstrap of %s from %s" % (params["suite"], mirror))
            # Leave no package lists or caches in the image.
            shutil.rmtree(root + "/var/cache/apt/archives", ignore_errors=True)
        tarball = tmp + "/rootfs.tar"
        with watch.step("import"):
            run_tool(module, ["tar", "--numeric-owner", "-C", root, "-cf", tarball, "."], "tar of the root filesystem")
            labels = dict(params["labels"])
            labels[RECIPE_LABEL] = recipe
            changes = list(params["changes"]) + ["LABEL %s=%s" % (k, json.dumps(str(v)))
                                                 for k, v in sorted(labels.items())]
            repository, _, tag = params["name"].rpartition(":")
            if not repository or "/" in tag:
                repository, tag = params["name"], "latest"
            client.api.import_image_from_file(tarball, repository=repository, tag=tag, changes=changes)
        return watch.durations
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            suite=dict(type="str", default="bookworm"),
            variant=dict(type="str", default="minbase"),
            include=dict(type="list", elements="str", default=[]),
            components=dict(type="list", elements="str", default=["main"]),
            mirror=dict(type="str"),
            changes=dict(type="list", elements="str", default=[]),
            labels=dict(type="dict", default={}),
            force=dict(type="bool", default=False),
            workdir=dict(type="path", default="/var/tmp"),
            **DOCKER_COMMON_ARGS
        ),
        supports_check_mode=True,
    )
    mirror = module.params["mirror"] or debian_archive()
    if not mirror:
        module.fail_json(msg="Host %s has no Debian archive in its APT configuration (/etc/apt/sources.list*); "
                             "set the option mirror to the archive to bootstrap from." % hostname())
    module.get_bin_path("debootstrap", required=True)
    recipe = recipe_hash(module.params, mirror)
    client = get_client(module)
    have, image = current_recipe(client, module.params["name"])
    result = dict(changed=False, recipe=recipe, mirror=mirror)
    if have == recipe and not module.params["force"]:
        result.update(image_id=image.id, size=image.attrs.get("Size"))
        module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    try:
        result["durations"] = build(module, client, mirror, recipe)
        image = client.images.get(module.params["name"])
    except Exception as exc:
        fail(module, "Building image %s on host %s failed: %s" % (module.params["name"], hostname(), exc), exc=exc)
    result.update(image_id=image.id, size=image.attrs.get("Size"))
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
