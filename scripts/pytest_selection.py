"""pytest plugin of scripts/test.sh: the zones lab is a lab, and which labs the selected tests need.

Loaded by scripts/test.sh for the collection and for the run (``-p pytest_selection``, scripts/ on PYTHONPATH):

- Tests marked ``zones_lab`` (the separate four-host lab) or ``podman_lab`` (the Podman lab) also get the marker
  ``lab``, before ``-m`` selects, so that ``-m "not lab"`` leaves out every lab's tests.
- With ``MEC_SELECTION_OUT=FILE`` and ``--collect-only``, it writes what the selected tests need, one word a
  line: ``local_lab`` (a test marked ``lab`` that is not a zones-lab or Podman-lab test), ``zones_lab``,
  ``podman_lab``, ``docker``. Nothing runs.
"""

import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        separate_lab = item.get_closest_marker("zones_lab") or item.get_closest_marker("podman_lab")
        if separate_lab is not None and item.get_closest_marker("lab") is None:
            item.add_marker(pytest.mark.lab)


def needs(items):
    """What the selected tests need: local_lab, zones_lab, podman_lab, docker."""
    out = set()
    for item in items:
        if item.get_closest_marker("zones_lab") is not None:
            out.add("zones_lab")
        elif item.get_closest_marker("podman_lab") is not None:
            out.add("podman_lab")
        elif item.get_closest_marker("lab") is not None:
            out.add("local_lab")
        if item.get_closest_marker("docker") is not None:
            out.add("docker")
    return sorted(out)


def pytest_collection_finish(session):
    out = os.environ.get("MEC_SELECTION_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write("".join(word + "\n" for word in needs(session.items)))
