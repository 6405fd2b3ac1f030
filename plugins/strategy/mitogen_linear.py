# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The linear strategy run by Mitogen for Ansible when the ``mitogen`` package is installed, shipped in the
collection so that it needs no ANSIBLE_STRATEGY_PLUGINS, no ansible.cfg and works from an installed collection
with any inventory; without ``mitogen`` it is ansible-core's linear strategy, with a warning that says so."""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: ansible-core's linear strategy, run by Mitogen for Ansible when it is installed
description:
  - Runs the play like ansible-core's C(linear) strategy (every host runs each task before the next task starts),
    with the C(mitogen) package's connection layer (Mitogen for Ansible, C(mitogen_linear)) when that package is
    installed on the controller, the same as Mitogen's own C(mitogen_linear) strategy but found by its FQCN
    C(mec.migration.mitogen_linear), so it needs no C(ANSIBLE_STRATEGY_PLUGINS) setting and no C(ansible.cfg).
  - Mitogen keeps one Python interpreter per host for the whole play and sends each module to it, instead of one
    SSH command and one new Python process (with the module's AnsiballZ payload) per task.
  - When C(mitogen) cannot be imported (not installed, or an Ansible release it does not support) the play runs
    with ansible-core's C(linear) strategy and a warning names the cause and what to install; nothing else changes.
  - The migration play (C(mec.migration.migrate), C(playbooks/migrate.yml)) uses it by default; C(-e
    migration_play_strategy=linear) turns Mitogen off for a run.
author: mec.migration developers (@mec-migration)
notes:
  - Install Mitogen on the controller with C(pip install mitogen) (C(scripts/bootstrap.sh) does, from
    C(requirements.txt)); the managed hosts need nothing but Python.
"""

# DOCUMENTATION first, the layout ansible-doc and ansible-test expect
import contextvars  # noqa: E402
import ctypes  # noqa: E402
import hashlib  # noqa: E402
import marshal  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from ansible.executor.process import worker  # noqa: E402
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

display = Display()

try:
    import ansible_mitogen.loaders  # noqa: F401 - checks that Mitogen supports this ansible-core release
    import ansible_mitogen.strategy
except Exception as e:  # ImportError, or Mitogen's AnsibleError for an ansible-core release it does not support
    MITOGEN_ERROR = "%s: %s" % (type(e).__name__, e)
    StrategyMixin = object
else:
    MITOGEN_ERROR = None
    StrategyMixin = ansible_mitogen.strategy.StrategyMixin


def _workers_die_with(parent):
    """Makes each worker forked from now on die with ``parent`` (this ansible-playbook process): ansible-core's
    workers start their own session (WorkerProcess._detach: os.setsid), so a kill of ansible-playbook's process
    group does not reach them, and a worker waiting on Mitogen's connection process for a task's result would wait
    forever once ansible-playbook was killed (SIGKILL: seen in the fault campaign's dead-controller runs). Linux
    prctl(PR_SET_PDEATHSIG); elsewhere nothing changes. Returns the function that undoes it."""
    original = getattr(worker.WorkerProcess, "_detach", None)
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None
    if original is None or prctl is None:  # an ansible-core without _detach (no own session), or not Linux
        return lambda: None

    def _detach(self):
        original(self)
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    worker.WorkerProcess._detach = _detach

    def undo():
        worker.WorkerProcess._detach = original
    return undo


def _lighter_connection_process():
    """Cuts CPU that Mitogen's connection process spends anew in every ansible-playbook run, before the play's first
    module can start on a host (measured on the lab: ~0.55 s of compiling and ~0.3 s of minifying per m2 run of A2,
    docs/overhead.md):

    - it compiles every module_utils file once *per module* to find what the module imports
      (``ansible_mitogen.module_finder``; an m2 run compiles 368 files for 54 distinct ones) and once more to find
      what a requested module imports (``mitogen.master``): each distinct source is now compiled once a process;
    - it strips comments and docstrings from its own modules before sending them to a host (``mitogen.minify``),
      which saves a few kilobytes on the wire: they are now sent as they are (Mitogen's child contexts already send
      ``mitogen.core`` unminified to their own children).

    Only the calls of these two Mitogen modules are replaced (their module-level name ``compile``, and
    ``minimize_source``); a code object is immutable and compiling the same source with the same arguments gives
    the same result, so the scans find the same imports. Returns the function that undoes it."""
    import mitogen.core
    import mitogen.master
    import mitogen.minify
    import ansible_mitogen.module_finder

    compiled = {}

    def compile_once(source, filename, mode, *args, **kwargs):
        key = (source, filename, mode, args, tuple(sorted(kwargs.items())))
        code = compiled.get(key)
        if code is None:
            code = compiled[key] = compile(source, filename, mode, *args, **kwargs)
        return code

    originals = [(ansible_mitogen.module_finder, "compile", getattr(ansible_mitogen.module_finder, "compile", None)),
                 (mitogen.master, "compile", getattr(mitogen.master, "compile", None)),
                 (mitogen.minify, "minimize_source", mitogen.minify.minimize_source)]
    ansible_mitogen.module_finder.compile = compile_once
    mitogen.master.compile = compile_once
    mitogen.minify.minimize_source = mitogen.core.to_text  # the same contract (text in, text out), nothing stripped

    def undo():
        for module, name, original in originals:
            if original is None:
                delattr(module, name)  # the builtin again
            else:
                setattr(module, name, original)
    return undo


# the expression whose parsed tree AnsibleEnvironment.compile_expression is about to compile (read once, see below)
_EXPRESSION = contextvars.ContextVar("mec_migration_jinja_expression", default=None)

# what else decides the Python code that Jinja generates from a source, beside its text: the environment's syntax and
# code generation settings (ansible-core's overrides, #jinja2: lines, are among them)
_ENV_SETTINGS = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
                 "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
                 "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized",
                 "autoescape", "is_async")


def _template_code_shared_by_workers():
    """Lets the play's worker processes share the Python code that Jinja compiles from templates, for this run.

    ansible-core forks a worker for each task on each host, and a worker compiles every template and conditional it
    renders from scratch (ansible-core 2.19 keeps no compiled template): an m2 run of A2 compiles ~630 of them, most
    of them the same role defaults and conditions again in the next task's worker (docs/overhead.md). Here each
    compilation's code object is kept in a folder of this run (``tempfile.mkdtemp``: mode 0700, this user's, removed
    when the play ends), under the SHA-256 of everything that decides it: the source, whether it is a template or a
    conditional expression, the environment's syntax and code generation settings, the filter and test lookups'
    class, ansible-core's compile-time settings (``escape_backslashes``, embedded templates), Jinja's, ansible-core's
    and Python's versions. A later worker loads it (``marshal``) instead of lexing, parsing, generating and
    compiling again. What Jinja decides at compile time from the plugins (whether a filter takes the context) cannot
    change within one run, which is why the folder does not outlive it. Template debugging (ansible-core's
    ``_debuggable_template_source``), failed compilations and Jinja's raw or deferred compilations take
    ansible-core's path unchanged. ansible-core's private templating API is checked first: where it differs, nothing
    is replaced.
    Returns the function that undoes it (and removes the folder)."""
    try:
        import jinja2
        import jinja2.environment
        from ansible.module_utils.ansible_release import __version__ as ansible_version
        from ansible._internal._templating import _jinja_bits
        env_class = _jinja_bits.AnsibleEnvironment
        compile_context = _jinja_bits._TemplateCompileContext
        template_config = _jinja_bits._TemplateConfig
    except (ImportError, AttributeError):
        return lambda: None
    original_compile = env_class.__dict__.get("compile")
    original_expression = env_class.__dict__.get("compile_expression")
    if original_expression is None or not callable(getattr(compile_context, "current", None)):
        return lambda: None
    inherited_compile = env_class.compile
    folder = tempfile.mkdtemp(prefix="mec-migration-jinja-")
    fixed = repr((jinja2.__version__, ansible_version, marshal.version, tuple(sys.version_info),
                  getattr(template_config, "allow_embedded_templates", None)))

    def key(env, kind, text, name, filename, defer_init):
        ctx = compile_context.current(optional=True)
        parts = (fixed, kind, type(env).__module__, type(env).__qualname__, env.code_generator_class.__qualname__,
                 type(env.filters).__qualname__, type(env.tests).__qualname__, bool(env.finalize),
                 tuple(sorted(type(e).__qualname__ for e in env.extensions.values())),
                 tuple(getattr(env, a, None) for a in _ENV_SETTINGS),
                 None if ctx is None else ctx.escape_backslashes, name, filename, defer_init, str(text))
        return os.path.join(folder, hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest())

    def load(path):
        try:
            with open(path, "rb") as fh:
                return marshal.loads(fh.read())
        except (OSError, EOFError, ValueError, TypeError):  # not there yet (or the folder is gone): compile
            return None

    def save(path, code):
        try:
            fd, tmp = tempfile.mkstemp(dir=folder)
            with os.fdopen(fd, "wb") as fh:
                fh.write(marshal.dumps(code))
            os.replace(tmp, path)  # whole or not at all: a reader in another worker never sees half a file
        except (OSError, ValueError):  # the folder is gone at the play's end, or the code cannot be kept: no sharing
            pass

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        text = source if isinstance(source, str) else _EXPRESSION.get()
        if text is not None and not isinstance(source, str):
            _EXPRESSION.set(None)  # only the expression's own tree, never a compilation nested in it
        if raw or defer_init or text is None or getattr(self, "_debuggable_template_source", False):
            return inherited_compile(self, source, name, filename, raw, defer_init)
        path = key(self, "template" if isinstance(source, str) else "expression", text, name, filename, defer_init)
        code = load(path)
        if code is None:
            code = inherited_compile(self, source, name, filename, raw, defer_init)
            save(path, code)
        return code

    def compile_expression(self, source, undefined_to_none=True):
        if getattr(self, "_debuggable_template_source", False) or not isinstance(source, str):
            return original_expression(self, source, undefined_to_none)
        code = load(key(self, "expression", source, None, None, False))
        if code is not None:  # what jinja2's compile_expression and from_string make of the same code
            template = self.template_class.from_code(self, code, self.make_globals(None), None)
            return jinja2.environment.TemplateExpression(template, undefined_to_none)
        token = _EXPRESSION.set(source)
        try:
            return original_expression(self, source, undefined_to_none)
        finally:
            _EXPRESSION.reset(token)

    env_class.compile = compile
    env_class.compile_expression = compile_expression

    def undo():
        if original_compile is None:
            del env_class.compile  # jinja2.Environment's again
        else:
            env_class.compile = original_compile
        env_class.compile_expression = original_expression
        shutil.rmtree(folder, ignore_errors=True)
    return undo


if MITOGEN_ERROR is None:
    class StrategyModule(StrategyMixin, LinearStrategyModule):
        """Mitogen's mitogen_linear: its StrategyMixin over ansible-core's linear strategy."""

        def run(self, iterator, play_context, result=0):
            display.vv("mec.migration.mitogen_linear: the play runs with Mitogen for Ansible")
            undo = _workers_die_with(os.getpid())
            undo_lighter = _lighter_connection_process()
            undo_templates = _template_code_shared_by_workers()
            try:
                return super().run(iterator, play_context)
            finally:
                undo_templates()
                undo_lighter()
                undo()
else:
    class StrategyModule(LinearStrategyModule):
        """Mitogen could not be imported: ansible-core's linear strategy, with a warning."""

        def run(self, iterator, play_context, result=0):
            display.warning(
                "mec.migration.mitogen_linear: Mitogen for Ansible could not be loaded (%s), so this play runs with "
                "ansible-core's linear strategy (slower: one SSH command and one Python start per task). Install it "
                "on the controller with `pip install mitogen` (scripts/bootstrap.sh does), or set "
                "-e migration_play_strategy=linear to run linear without this warning." % MITOGEN_ERROR)
            undo_templates = _template_code_shared_by_workers()
            try:
                return super().run(iterator, play_context)
            finally:
                undo_templates()
