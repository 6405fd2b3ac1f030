# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""What every migration module shares around its call: the expected-failure exception, the guard that
turns any failure into a clear ``fail_json`` (host named, traceback in ``exception``), and the shape of the
modules that write one file."""

from __future__ import annotations

import os
import tarfile

from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname


class MigrationError(Exception):
    """An expected failure with a message for the user and details for the result."""

    def __init__(self, msg, **details):
        super(MigrationError, self).__init__(msg)
        self.msg = msg
        self.details = details


def run_guarded(module, func, *args, **kwargs):
    """Call ``func``; turn expected and unexpected failures into a clear ``fail_json``.

    ``fail_extra`` (a dict, may be filled by ``func`` while it runs) is added to
    the failure's result, so partial figures survive a failure.
    """
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError, fail
    from ansible_collections.mec.migration.plugins.module_utils.engines import ENGINES, title
    extra = kwargs.pop("fail_extra", None)
    try:
        return func(*args, **kwargs)
    except MigrationError as exc:
        details = dict(extra or {})
        details.update(exc.details)
        details.setdefault("host", hostname())
        module.fail_json(msg=exc.msg, **details)
    except APIError as exc:
        engine = (getattr(module, "params", None) or {}).get("engine")
        fail(module, "The %s engine on host %s refused: %s" % (
            title(engine) if engine in ENGINES else "container", hostname(), getattr(exc, "explanation", None) or exc),
            exc=exc, host=hostname(), **(extra or {}))
    except (OSError, tarfile.TarError) as exc:
        fail(module, "%s on host %s: %s" % (type(exc).__name__, hostname(), exc), exc=exc, host=hostname(),
             **(extra or {}))
    except Exception as exc:
        fail(module, "Unexpected %s on host %s: %s" % (type(exc).__name__, hostname(), exc), exc=exc,
             host=hostname(), **(extra or {}))


def write_artifact(module, dest, force, func, *args, **kwargs):
    """The shape of the modules that write one file (export, save, volume archive): an existing ``dest`` is
    kept unless ``force`` (changed=false), check mode only reports, else ``func`` writes it. Exits."""
    if os.path.exists(dest) and not force:
        module.exit_json(changed=False, path=dest, size=os.path.getsize(dest), duration=0.0)
    if module.check_mode:
        module.exit_json(changed=True, path=dest, size=0, duration=0.0)
    module.exit_json(changed=True, **run_guarded(module, func, *args, **kwargs))
