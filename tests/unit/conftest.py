# Unit tests of the mec.migration modules (the collection is importable through tests/conftest.py).


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a running Docker engine on this machine")
