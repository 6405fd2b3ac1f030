"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse as YAML (ansible-doc and the docs site read them;
a description with an unquoted ': ' breaks them silently), with the fields a module page needs."""
import glob
import importlib
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))
                 if not p.endswith("__init__.py"))


@pytest.mark.parametrize("name", MODULES)
def test_module_documentation_parses(name):
    mod = importlib.import_module("ansible_collections.mec.migration.plugins.modules." + name)
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["module"] == name
    assert doc["short_description"] and doc["description"] and doc["author"]
    assert set(doc["attributes"]) >= {"check_mode", "diff_mode", "idempotent"}
    for opt, spec in (doc.get("options") or {}).items():
        assert spec.get("description"), "%s: option %s has no description" % (name, opt)
    examples = yaml.safe_load(mod.EXAMPLES)
    assert isinstance(examples, list) and examples
    assert any("mec.migration." + name in task for task in examples), "%s: no example uses the module" % name
    ret = yaml.safe_load(mod.RETURN)
    assert ret is None or isinstance(ret, dict)
