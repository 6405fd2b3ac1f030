"""The reset before each run of the matrix: every run starts alike, and a run that would not is stopped.

A run starts when, on the source, a1, a2 and a3 run from the ``mec_apps`` role's images, the migrated app
freshly started with the role's options (A2 on a new volume, counter from zero; A3 with its zone keys
loaded), and on neither host a container or volume of the apps is on the target, a migration image
(``mec-migration/<app>:*``) is left or an app's migration lock is held.

Methods (``--reset`` / ``experiment_reset``):

- ``app`` (default): only the migrated apps are touched (the run's app and the one the previous run left on
  the target), by ``reset_host.py`` on both hosts at once over SSH: their containers (and A2's volume)
  removed from the target, the migration images removed, the apps started again on the source with the
  role's own ``docker run`` or ``podman run`` (``/opt/mec-apps/run-<app>.json``, written by the role, with the
  host's engine), A3's loader run.
  ``playbooks/apps.yml -e apps_reset=true`` runs only when that cannot work (no run configuration yet, a
  gateway down, a failed start), then the app is reset again. A few seconds per run.
- ``full``: the same and always ``playbooks/apps.yml -e apps_reset=true`` (30-60 s per run).
- ``never``: nothing is changed or checked.

Either way the state is checked afterwards (``problems``, then A2 and A3 asked on the source); any
difference fails the run's reset stage with every difference named.
"""

from __future__ import annotations

import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import probe as probe_mod
from .lab import ROOT, ansible_cause, ansible_playbook, cli, ssh

APPS = ("a1", "a2", "a3")
LOADER = "a3-loader"
HOST_SCRIPT = Path(__file__).with_name("reset_host.py")
METHODS = ("app", "full", "never")
# older names of the methods
ALIASES = {"needed": "app", "always": "full"}


class ResetError(RuntimeError):
    """The apps could not be put back as every run starts; the message names each difference."""


def host_reset(host, role, app, act=True, apps_dir="/opt/mec-apps", a2_volume="a2-data",
               state_root="/var/lib/mec-migration", timeout=180):
    """Run reset_host.py on one host; its report (dict)."""
    args = {"role": role, "app": app, "apps": list(APPS), "apps_dir": apps_dir, "a2_volume": a2_volume,
            "state_root": state_root, "engine": cli(host), "act": act}
    proc = ssh(host, "python3 - %s" % shlex.quote(json.dumps(args)), timeout=timeout,
               input=HOST_SCRIPT.read_text(encoding="utf-8"))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise ResetError("reset on %s (%s) failed (rc %s): %s" % (host["name"], role, proc.returncode,
                                                                  (proc.stderr or proc.stdout).strip()[-400:]))
    return json.loads(lines[-1])


def problems(app, src, tgt, fresh=True):
    """Every way the two hosts' reports differ from how a run starts ([] when they do not)."""
    out = ["%s: %s" % (r["role"], e) for r in (src, tgt) for e in r.get("errors") or []]
    for name in APPS:
        c = (src.get("containers") or {}).get(name)
        want = (src.get("images") or {}).get(name)
        if not c or not c.get("running"):
            out.append("%s is not running on the source (%s)" % (name, (c or {}).get("status") or "no container"))
            continue
        if not want:
            out.append("the role's image of %s is missing on the source (no run configuration or image)" % name)
        elif c.get("image") != want:
            out.append("%s on the source runs image %s, not the role's %s"
                       % (name, str(c.get("image"))[:19], want[:19]))
        if name == app:
            if c.get("spec") != (src.get("specs") or {}).get(name):
                out.append("%s on the source was not started with the role's options (spec label %s, role %s)"
                           % (name, c.get("spec"), (src.get("specs") or {}).get(name)))
            if fresh and (c.get("started") or 0) < src["t0"] - 1:
                out.append("%s on the source was not started anew by this reset" % name)
    created = src.get("a2_volume_created")
    if created is False or created is None:
        out.append("A2's volume is missing on the source")
    elif app == "a2" and fresh and created < int(src["t0"]) - 1:
        out.append("A2's volume on the source was not made anew (created %.0f s before the reset)"
                   % (src["t0"] - created))
    for name, c in (tgt.get("containers") or {}).items():
        if c is not None:
            out.append("container %s is on the target (%s)" % (name, c.get("status")))
    if tgt.get("a2_volume_created") not in (False, None):
        out.append("A2's volume is on the target")
    for r in (src, tgt):
        gateway = r.get("gateway")
        if not gateway or not gateway.get("running"):
            out.append("the MEC gateway is not running on the %s (%s)" % (
                r["role"], (gateway or {}).get("status") or "no container"))
        if r.get("migration_images"):
            out.append("migration images left on the %s: %s" % (r["role"], " ".join(r["migration_images"])))
        if r.get("locks"):
            out.append("migration lock held on the %s: %s (an unfinished run: playbooks/recover.yml)"
                       % (r["role"], " ".join(r["locks"])))
    return out


def held_locks(hosts, state_root="/var/lib/mec-migration"):
    """{role: [a1.lock, ...]} of the apps' migration locks on the two hosts (empty when none is held)."""
    command = "ls -1 %s/locks 2>/dev/null; true" % state_root
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = {role: pool.submit(ssh, hosts[role], command, 60) for role in ("source", "target")}
        out = {}
        for role, fut in procs.items():
            proc = fut.result()
            if proc.returncode != 0:
                raise ResetError("cannot read the migration locks on %s: %s"
                                 % (hosts[role]["name"], proc.stderr.strip()))
            names = sorted(n for n in proc.stdout.split() if n in {a + ".lock" for a in APPS})
            if names:
                out[role] = names
    return out


def _both(hosts, app, act, **kw):
    with ThreadPoolExecutor(max_workers=2) as pool:
        fut_t = pool.submit(host_reset, hosts["target"], "target", app, act, **kw)
        fut_s = pool.submit(host_reset, hosts["source"], "source", app, act, **kw)
        return fut_s.result(), fut_t.result()


def _apps_playbook(inventory, apps_extra, timeout):
    proc = ansible_playbook(inventory, ROOT / "playbooks" / "apps.yml",
                            [{"apps_reset": True, "apps_local_sandbox": False}] + list(apps_extra), timeout)
    if proc.returncode != 0:
        raise ResetError("playbooks/apps.yml -e apps_reset=true failed: " + ansible_cause(proc.stdout))


def _timed_playbook(inventory, apps_extra, timeout):
    t0 = time.monotonic()
    _apps_playbook(inventory, apps_extra, timeout)
    return round(time.monotonic() - t0, 3)


def serving(app, hosts, wait=10.0):
    """A2 answers /state and A3 holds zone keys on the source (waits up to ``wait`` s); [] or the differences."""
    address = hosts["source"]["address"]
    deadline, out = time.monotonic() + wait, []
    while True:
        out = []
        ok, state = probe_mod.http_state(address, 3000, timeout=1)
        if not ok:
            out.append("A2 does not answer /state on the source: %s" % state)
        elif app == "a2" and (int(state.get("counter") or 0) > 2 or state.get("inMigration")):
            out.append("A2's counter on the source did not start anew: %s" % state)
        ok, keys = probe_mod.MemcachedGetter(address, 11211, ["zone%02d" % i for i in range(1, 10)], timeout=1).get()
        if not ok or not keys:
            out.append("A3 on the source holds no zone keys (%s)" % (keys if not ok else "none"))
        if not out or time.monotonic() >= deadline:
            return out
        time.sleep(0.2)


def reset(inventory, hosts, app, method="app", apps_extra=(), timeout=600, apps_dir="/opt/mec-apps"):
    """Put ``app`` back on the source as every run starts; {method, seconds, playbook_seconds (None: not run),
    host_seconds}. Raises ResetError."""
    method = ALIASES.get(method, method)
    if method not in METHODS:
        raise ResetError("unknown reset method %r (valid: %s)" % (method, ", ".join(METHODS)))
    t0 = time.monotonic()
    if method == "never":
        return {"method": method, "seconds": 0.0, "playbook_seconds": None}
    kw = {"apps_dir": apps_dir}
    held = held_locks(hosts)
    if held:
        # no playbook frees a lock: an unfinished run is recover.yml's to finish or undo; nothing is touched
        raise ResetError("the run would not start like the others: " + "; ".join(
            "migration lock held on the %s: %s (an unfinished run: playbooks/recover.yml)" % (role, " ".join(names))
            for role, names in held.items()))
    playbook = None
    if method == "full":
        playbook = _timed_playbook(inventory, apps_extra, timeout)
    src, tgt = _both(hosts, app, True, **kw)
    found = problems(app, src, tgt)
    if src.get("locks") or tgt.get("locks"):
        # no playbook frees a lock: an unfinished run is recover.yml's to finish or undo
        raise ResetError("the run would not start like the others: " + "; ".join(found))
    repaired = None
    if found and playbook is None:
        repaired = found
        # the role puts back whatever is out of place (and writes the run configurations), then the app is
        # started anew once more, so that it is fresh whatever the playbook left running
        playbook = _timed_playbook(inventory, apps_extra, timeout)
        src, tgt = _both(hosts, app, True, **kw)
        found = problems(app, src, tgt)
    found += serving(app, hosts) if not found else []
    if found:
        raise ResetError("the run would not start like the others: " + "; ".join(found))
    return {"method": method, "seconds": round(time.monotonic() - t0, 3), "playbook_seconds": playbook,
            "playbook_because": repaired, "restarted": src.get("restarted"), "removed_from_target": tgt.get("removed"),
            "host_seconds": {"source": src.get("seconds"), "target": tgt.get("seconds")},
            "engines": {"source": src.get("engine"), "target": tgt.get("engine")}}
