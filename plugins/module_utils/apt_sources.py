# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Read a host's own APT configuration, so that no archive host name is ever written into the code.

``debian_archive()`` answers the URI of the Debian archive that the host already uses (from
``/etc/apt/sources.list``, ``sources.list.d/*.list`` one-line entries and ``*.sources`` deb822
stanzas), and ``host_codename()`` the release the host runs.
"""

from __future__ import annotations

import glob
import os

APT_DIR = "/etc/apt"


def _one_line_entries(text):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] not in ("deb", "deb-src"):
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            yield {"uri": words[0], "suites": [words[1]], "components": words[2:]}


def _deb822_entries(text):
    for stanza in text.split("\n\n"):
        fields = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield {"uri": uri, "suites": fields.get("suites", "").split(),
                   "components": fields.get("components", "").split()}


def apt_entries(apt_dir=APT_DIR):
    """Every source entry the host's APT configuration declares."""
    entries = []
    main = os.path.join(apt_dir, "sources.list")
    paths = ([main] if os.path.exists(main) else []) + sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*")))
    for path in paths:
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            continue
        parser = _deb822_entries if path.endswith(".sources") else _one_line_entries
        entries.extend(parser(text))
    return entries


def host_codename(os_release="/etc/os-release"):
    """The host's release codename (``bookworm``), or None."""
    try:
        with open(os_release) as handle:
            for line in handle:
                if line.startswith("VERSION_CODENAME="):
                    return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        pass
    return None


def debian_archive(apt_dir=APT_DIR, codename=None):
    """The URI of the distribution archive the host uses: an entry for its own release with a
    ``main`` component that is not the security archive. None when there is none."""
    codename = codename or host_codename()
    candidates = []
    for entry in apt_entries(apt_dir):
        if "main" not in entry["components"]:
            continue
        if "security" in entry["uri"] or any(s.endswith("-security") for s in entry["suites"]):
            continue
        score = 1 if codename and codename in entry["suites"] else 0
        candidates.append((score, entry["uri"].rstrip("/")))
    if not candidates:
        return None
    candidates.sort(key=lambda item: -item[0])
    return candidates[0][1]
