"""plugins/strategy/mitogen_linear.py: what it changes in Mitogen's connection process (the import scans compile each
source once; Mitogen's own modules are sent unminified) finds the same imports, compiles less, and is undone."""

import builtins
import os

import ansible
import pytest

mitogen_linear = pytest.importorskip("ansible_collections.mec.migration.plugins.strategy.mitogen_linear")
if mitogen_linear.MITOGEN_ERROR is not None:
    pytest.skip("Mitogen cannot be loaded: %s" % mitogen_linear.MITOGEN_ERROR, allow_module_level=True)

import ansible_mitogen.module_finder as module_finder  # noqa: E402
import mitogen.master  # noqa: E402
import mitogen.minify  # noqa: E402

MODULES = os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "modules")
SEARCH_PATH = [os.path.join(os.path.dirname(ansible.__file__), "module_utils")]
# modules of one m2 run; they share most of their module_utils (ansible-core's basic.py and what it imports)
NAMES = ["container_info", "migration_preflight", "container_commit", "image_save"]


def scan_all():
    scan = module_finder._scan_importlib_find_spec
    return {name: scan("ansible.modules." + name, os.path.join(MODULES, name + ".py"), SEARCH_PATH) for name in NAMES}


@pytest.fixture
def compiles(monkeypatch):
    """Counts the real compilations (the builtin), whoever calls it."""
    counted = []
    real = builtins.compile

    def counting(source, filename, mode, *args, **kwargs):
        counted.append(filename)
        return real(source, filename, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "compile", counting)
    return counted


def test_the_import_scans_find_the_same_modules_and_compile_each_source_once(compiles):
    plain = scan_all()
    plain_compiles = len(compiles)
    del compiles[:]

    undo = mitogen_linear._lighter_connection_process()
    try:
        lighter = scan_all()
        again = scan_all()
    finally:
        undo()

    assert lighter == plain == again
    assert all(len(found) > 10 for found in plain.values()), plain  # basic.py's closure at least
    distinct = len(set(compiles))
    assert len(compiles) == distinct, "a source was compiled twice"
    assert distinct < plain_compiles / 2, (distinct, plain_compiles)  # the shared module_utils once for all four


def test_mitogens_modules_are_sent_unminified_and_undo_restores_both():
    source = b"def f():\n    '''doc'''\n    return 1  # one\n"
    stripped = mitogen.minify.minimize_source(source)
    assert "# one" not in stripped and "doc" not in stripped

    undo = mitogen_linear._lighter_connection_process()
    try:
        sent = mitogen.minify.minimize_source(source)
        assert sent == source.decode() and isinstance(sent, str)
        assert module_finder.compile is not builtins.compile and mitogen.master.compile is module_finder.compile
    finally:
        undo()

    assert mitogen.minify.minimize_source(source) == stripped
    assert not hasattr(module_finder, "compile") and not hasattr(mitogen.master, "compile")
