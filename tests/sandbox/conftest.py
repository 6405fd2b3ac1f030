"""pytest wiring for tests/sandbox: markers, import path of the mec_sandbox package, fixtures."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.normpath(os.path.join(HERE, "..", "..", "apps"))
if APPS not in sys.path:
    sys.path.insert(0, APPS)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# fixtures, importable once APPS is on the path
from sandbox_helpers import fresh_sandbox, receiver, sandbox  # noqa: E402,F401


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a running Docker engine")
    config.addinivalue_line("markers", "lab: needs the local lab (inventories/local/hosts.yml)")
