#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: image_save
short_description: Save an image into a docker load archive, leaving out the layers the target already holds
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
description:
  - Writes the image (configuration, tags and layers) into an archive in C(docker save)'s format for
    M(mec.migration.image_load).
  - With O(skip_chain_ids) (what M(mec.migration.image_layers_info) returned on the target) the archive still lists
    every layer but carries only the layers whose chain ID the target lacks; C(docker load) takes the others from
    the target's layer store. A layer counts as present only with the same parents (chain ID), so a different
    image under the same name, or the same layer on other parents, is sent.
  - The image keeps its ID on the target (same configuration bytes, same diff IDs).
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the archive would be written; nothing is saved.
  diff_mode:
    support: none
    description: No diff; RV(path), RV(size) and the layer counts describe the archive.
  idempotent:
    support: full
    description: An existing archive is kept unless O(force=true).
options:
  image:
    description: Image reference.
    type: str
    required: true
  dest:
    description: Path of the archive to write (written beside as C(<dest>.part), then renamed).
    type: path
    required: true
  force:
    description: Save again even if O(dest) exists.
    type: bool
    default: false
  skip_chain_ids:
    description:
      - Chain IDs (V(sha256:) and 64 hex digits) of the layer stacks the target holds; the image's layers with
        these chain IDs are left out of the archive.
      - Empty or not given, every layer is written (a full archive, as C(docker save) makes).
    type: list
    elements: str
    default: []
  method:
    description:
      - How the layers are written.
      - V(layerdb) rebuilds each layer tar that is sent byte for byte from the engine's own layer store (overlay2's
        diff directory and the tar-split record the engine keeps for every layer, which C(docker save) also
        replays); each tar's sha256 must be its diff ID. It needs a local engine with the overlay2 driver and no
        user-namespace remapping. Nothing of the skipped layers is read.
      - V(save) streams C(docker save) through the API and drops the tars of the skipped layers (C(docker save)
        still reads every layer).
      - V(auto) uses V(layerdb) and falls back to V(save) when the store is not usable here (RV(fallback_reason)
        says why).
    type: str
    choices: [auto, layerdb, save]
    default: auto
seealso:
  - module: mec.migration.image_layers_info
  - module: mec.migration.image_load
"""

EXAMPLES = r"""
- name: Read which layers the target holds
  mec.migration.image_layers_info:
  delegate_to: target-host
  register: target_layers

- name: Save the committed image without the layers the target holds
  mec.migration.image_save:
    image: mec-migration/v2x-app:run1
    dest: /var/lib/mec-migration/work/run1/image.tar
    skip_chain_ids: "{{ target_layers.chain_ids }}"
  delegate_to: source-host
"""

RETURN = r"""
path:
  description: The archive.
  returned: always
  type: str
  sample: /var/lib/mec-migration/work/run1/image.tar
size:
  description: Bytes of the archive (as RV(bytes_written)).
  returned: always
  type: int
  sample: 30720
duration:
  description: Seconds the save took.
  returned: always
  type: float
  sample: 0.031
bytes_written:
  description: Bytes of the archive.
  returned: when the archive was written
  type: int
  sample: 30720
bytes_skipped:
  description:
    - Bytes of the layers left out. With RV(method=layerdb) the layers' files' bytes as the engine's layer store
      records them (their tars are a few per cent larger, one 512-byte header per file); with RV(method=save) the
      exact bytes of the layer tars dropped.
  returned: when the archive was written
  type: int
  sample: 176008655
layers_sent:
  description: Layers whose tar the archive carries.
  returned: when the archive was written
  type: int
  sample: 1
layers_skipped:
  description: Layers the archive lists without their tar (the target holds them).
  returned: when the archive was written
  type: int
  sample: 1
layers:
  description: Every layer of the image, base first, with C(chain_id), C(diff_id), C(send) and C(size) (bytes as
    for RV(bytes_skipped); null when unknown).
  returned: when the archive was written
  type: list
  elements: dict
  sample: [{chain_id: "sha256:00de...", diff_id: "sha256:00de...", send: false, size: 176008655}]
method:
  description: The method that wrote the archive (V(layerdb) or V(save)).
  returned: when the archive was written
  type: str
  sample: layerdb
fallback_reason:
  description: Why O(method=auto) did not use V(layerdb); null when it did.
  returned: when the archive was written
  type: str
  sample: null
image_id:
  description: ID of the saved image (the loaded image has the same ID).
  returned: when the archive was written
  type: str
  sample: sha256:343efa5160a06709c7624ef9eb1afc7a5eb1f6a298f0637d6258ced132fd28f8
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import (
    check_chain_ids, find_image, write_image_archive)
from ansible_collections.mec.migration.plugins.module_utils.module_glue import (
    MigrationError, run_guarded, write_artifact)


def _require_image(client, ref):
    if find_image(client, ref) is None:
        raise MigrationError("Image %s does not exist." % ref)


def main():
    module = AnsibleModule(argument_spec=dict(image=dict(type="str", required=True),
                                              dest=dict(type="path", required=True),
                                              force=dict(type="bool", default=False),
                                              skip_chain_ids=dict(type="list", elements="str", default=[]),
                                              method=dict(type="str", choices=["auto", "layerdb", "save"],
                                                          default="auto"),
                                              **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    skip = run_guarded(module, check_chain_ids, p["skip_chain_ids"])
    client = get_client(module)
    run_guarded(module, _require_image, client, p["image"])
    write_artifact(module, p["dest"], p["force"], write_image_archive, client, p["image"], p["dest"],
                   skip_chain_ids=skip, method=p["method"])


if __name__ == "__main__":
    main()
