#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Fetch the upstream tarball of a Debian source package from another suite of the host's own archive."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: debian_source_download
short_description: Download a source package's upstream release from a newer Debian suite, checksum verified
description:
  - Downloads the upstream tarball (C(<package>_<version>.orig.tar.*)) of a Debian source package with
    C(apt-get source --download-only), from a suite that the host does not run (for example C(trixie) on a
    C(bookworm) host), without touching the host's APT configuration. A private C(deb-src) list is made
    for the call, whose archive address is taken from the host's own APT configuration.
  - The tarball's SHA-256 must match O(sha256); a tarball already in O(dest) with that checksum is not
    fetched again.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
requirements:
  - apt-get
options:
  package:
    description: Source package name.
    type: str
    required: true
  version:
    description: Version of the source package, with its Debian revision, e.g. C(4.1.1-1).
    type: str
    required: true
  suite:
    description: The suite whose source index lists the package.
    type: str
    required: true
  sha256:
    description: Expected SHA-256 of the upstream tarball.
    type: str
    required: true
  dest:
    description: Folder to put the tarball in.
    type: path
    required: true
  mirror:
    description: Archive URI; default is the Debian archive of the host's own APT configuration.
    type: str
attributes:
  check_mode:
    support: full
    description: Reports whether a download is needed (no verified tarball in O(dest)); nothing is downloaded.
  diff_mode:
    support: none
    description: No diff; RV(path) names the verified tarball.
  idempotent:
    support: full
    description: A tarball in O(dest) whose SHA-256 matches O(sha256) is kept; nothing is downloaded again.
"""

EXAMPLES = r"""
- name: Get CRIU 4.1.1 from trixie's sources
  mec.migration.debian_source_download:
    package: criu
    version: 4.1.1-1
    suite: trixie
    sha256: f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
    dest: /var/tmp/criu-build
"""

RETURN = r"""
path:
  description: Path of the verified upstream tarball.
  returned: success and not check mode
  type: str
mirror:
  description: The archive used.
  returned: always
  type: str
"""

import glob
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mec.migration.plugins.module_utils.apt_sources import debian_archive
from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname, run_tool
from ansible_collections.mec.migration.plugins.module_utils.fsutil import sha256_of


def upstream(version):
    """The upstream part of a Debian version: ``1:4.1.1-1`` -> ``4.1.1``."""
    version = version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


def verified(dest, package, version, sha256):
    for path in sorted(glob.glob(os.path.join(dest, "%s_%s.orig.tar.*" % (package, version)))):
        if not path.endswith(".asc") and sha256_of(path) == sha256:
            return path
    return None


def download(module, mirror):
    p = module.params
    tmp = tempfile.mkdtemp(prefix="mec-apt-src-")
    try:
        lists = os.path.join(tmp, "lists")
        os.makedirs(os.path.join(lists, "partial"))
        sources = os.path.join(tmp, "sources.list")
        with open(sources, "w") as handle:
            handle.write("deb-src %s %s main\n" % (mirror, p["suite"]))
        # The index only finds the file; the tarball's own SHA-256 is what is trusted (checked below),
        # so an index past its Valid-Until date (a development suite on a snapshot mirror) still serves.
        apt_opts = ["-o", "Dir::Etc::SourceList=" + sources, "-o", "Dir::Etc::SourceParts=/dev/null",
                    "-o", "Dir::State::Lists=" + lists, "-o", "APT::Get::List-Cleanup=0",
                    "-o", "Acquire::Check-Valid-Until=false", "-o", "APT::Sandbox::User=root"]
        run_tool(module, ["apt-get", "-q"] + apt_opts + ["update"], "apt-get update of %s's sources" % p["suite"])
        work = os.path.join(tmp, "download")
        os.makedirs(work)
        # The .dsc and the Debian delta may be missing from the archive while the upstream
        # tarball is there: only the tarball matters, and its checksum is checked below.
        rc, out, err = module.run_command(
            [module.get_bin_path("apt-get", required=True), "-q"] + apt_opts
            + ["source", "--download-only", "%s=%s" % (p["package"], p["version"])],
            cwd=work, environ_update=dict(LANG="C", LC_ALL="C"))
        got = verified(work, p["package"], upstream(p["version"]), p["sha256"])
        if not got:
            found = [os.path.basename(x) for x in glob.glob(os.path.join(work, "*"))]
            module.fail_json(msg="No %s %s upstream tarball with SHA-256 %s could be fetched on %s from %s %s "
                                 "(files: %s; apt-get rc=%s: %s). Check the version and checksum pinned in the "
                                 "criu role's defaults, or the host's access to the archive." % (
                                     p["package"], p["version"], p["sha256"], hostname(), mirror, p["suite"],
                                     ", ".join(found) or "none", rc, (err or out).strip()[-800:]))
        os.makedirs(p["dest"], exist_ok=True)
        target = os.path.join(p["dest"], os.path.basename(got))
        shutil.move(got, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            package=dict(type="str", required=True),
            version=dict(type="str", required=True),
            suite=dict(type="str", required=True),
            sha256=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            mirror=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    mirror = p["mirror"] or debian_archive()
    if not mirror:
        module.fail_json(msg="Host %s has no Debian archive in its APT configuration; set mirror." % hostname())
    have = verified(p["dest"], p["package"], upstream(p["version"]), p["sha256"]) if os.path.isdir(p["dest"]) else None
    if have:
        module.exit_json(changed=False, path=have, mirror=mirror)
    if module.check_mode:
        module.exit_json(changed=True, mirror=mirror)
    module.exit_json(changed=True, path=download(module, mirror), mirror=mirror)


def main():
    run_module()


if __name__ == "__main__":
    main()
