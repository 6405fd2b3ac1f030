"""pytest wiring for tests/apps: markers, and the fixtures defined in apps_helpers.py."""

from apps_helpers import dead_url, memcached, start_app, upstream  # noqa: F401 (fixtures)


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a running Docker engine")
    config.addinivalue_line("markers", "lab: needs the local lab (inventories/local/hosts.yml)")
