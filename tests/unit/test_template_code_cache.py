"""plugins/strategy/mitogen_linear.py's _template_code_shared_by_workers: ansible-core's Templar renders templates and
conditionals to the same values with it, a worker forked later compiles none of what an earlier one compiled, a
setting that changes the generated code (escape_backslashes, a #jinja2: override) never takes another setting's
code, and undo restores ansible-core's methods and removes the run's folder."""

import os

import jinja2
import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible._internal._templating._jinja_bits import AnsibleEnvironment

from ansible_collections.mec.migration.plugins.strategy import mitogen_linear

VARIABLES = dict(a=3, items=[1, 2, 3], name="x", d={"k": "v"})
TEMPLATES = ["{{ a + 1 }}", "{{ items | map('string') | join(',') }}",
             "{% if a > 2 %}big{% else %}small{% endif %}-{{ name }}", "{{ d.k | upper }}",
             "#jinja2:variable_start_string:'[%', variable_end_string:'%]'\n[% a %]-{{ a }}"]
CONDITIONALS = ["a > 2", "items | length == 3", "name == 'y'", "d.k is defined and a is number"]
EXPECTED = [4, "1,2,3", "big-x", "V", "3-{{ a }}", True, True, False, True]


def render_all():
    templar = Templar(loader=DataLoader(), variables=VARIABLES)
    return ([templar.template(trust_as_template(s)) for s in TEMPLATES]
            + [templar.evaluate_conditional(trust_as_template(c)) for c in CONDITIONALS])


@pytest.fixture
def generated(monkeypatch):
    """Counts Jinja's code generations (templates and conditional expressions alike), in this process."""
    counted = []
    real = jinja2.Environment._generate

    def counting(self, source, *args, **kwargs):
        counted.append(source)
        return real(self, source, *args, **kwargs)
    monkeypatch.setattr(jinja2.Environment, "_generate", counting)
    return counted


@pytest.fixture
def shared():
    undo = mitogen_linear._template_code_shared_by_workers()
    yield
    undo()


def in_a_forked_worker(generated):
    """render_all() in a forked process, as ansible-core's workers are: (its values == EXPECTED, its generations)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.close(read)
        try:
            del generated[:]
            same = render_all() == EXPECTED
            os.write(write, ("%d %d" % (same, len(generated))).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        answer = fh.read()
    os.waitpid(pid, 0)
    same, count = answer.split()
    return same == "1", int(count)


def test_the_values_are_ansible_cores_and_a_later_worker_compiles_nothing(generated, shared):
    assert in_a_forked_worker(generated) == (True, len(TEMPLATES) + len(CONDITIONALS))  # the first compiles each
    assert in_a_forked_worker(generated) == (True, 0)  # a later one loads every code the first kept
    del generated[:]
    assert render_all() == EXPECTED
    assert generated == []  # the play's own process too


def test_without_it_every_worker_compiles_again(generated):
    assert in_a_forked_worker(generated) == (True, len(TEMPLATES) + len(CONDITIONALS))
    assert in_a_forked_worker(generated) == (True, len(TEMPLATES) + len(CONDITIONALS))


@pytest.mark.parametrize("first", [True, False])
def test_a_setting_that_changes_the_code_never_takes_another_settings_code(shared, first):
    templar = Templar(loader=DataLoader(), variables={})
    source = trust_as_template("{{ 'a\\\\tb' }}")
    expected = {True: "a\\\\tb", False: "a\\tb"}  # what ansible-core renders with each escape_backslashes
    assert templar.template(source, escape_backslashes=first) == expected[first]
    assert templar.template(source, escape_backslashes=not first) == expected[not first]
    assert templar.template(source, escape_backslashes=first) == expected[first]


def test_undo_restores_ansible_cores_methods_and_removes_the_folder(monkeypatch):
    before = (AnsibleEnvironment.__dict__.get("compile"), AnsibleEnvironment.__dict__["compile_expression"])
    made = []
    real_mkdtemp = mitogen_linear.tempfile.mkdtemp
    monkeypatch.setattr(mitogen_linear.tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1])
    undo = mitogen_linear._template_code_shared_by_workers()
    folder, = made
    assert os.path.basename(folder).startswith("mec-migration-jinja-")
    assert os.stat(folder).st_mode & 0o077 == 0 and os.stat(folder).st_uid == os.geteuid()
    render_all()
    assert len(os.listdir(folder)) == len(TEMPLATES) + len(CONDITIONALS)
    undo()
    assert (AnsibleEnvironment.__dict__.get("compile"), AnsibleEnvironment.__dict__["compile_expression"]) == before
    assert not os.path.exists(folder)
    assert render_all() == EXPECTED
