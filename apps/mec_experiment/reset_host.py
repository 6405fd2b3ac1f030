"""Runs on a MEC host, sent by the experiment's reset over SSH (``python3 - ARGS_JSON`` with this file on
stdin; the hosts' Python 3.11 standard library only). Puts one app back as the next run needs it and
reports the host's state as one JSON line; the controller decides whether the run may start
(``mec_experiment.reset.problems``).

ARGS_JSON: ``{"role": "source" | "target", "app": "a2", "apps": ["a1", "a2", "a3"], "apps_dir":
"/opt/mec-apps", "a2_volume": "a2-data", "state_root": "/var/lib/mec-migration", "engine": "docker" | "podman",
"act": true}``; ``engine`` is the host's (its inventory's ``migration_engine``), whose CLI every step uses.

- both hosts: remove the apps' migration images (``mec-migration/<app>:*``, the committed/imported images
  of earlier runs);
- target: remove every app container there (the previous run's app, A3's loader) and A2's volume;
- source: remove the run's app (and A2's volume: a fresh counter) and any app that does not run there (the
  previous run's, moved to the target), start them again with the ``docker run`` (or ``podman run``) the
  ``mec_apps`` role used
  (``<apps_dir>/run-<app>.json``: same image, options and spec label, so that a later ``apps.yml`` leaves
  them alone); a3: then its loader (``run-a3-loader.json``).

With ``"act": false`` it only reports.
"""

import json
import os
import subprocess
import sys
import time
from datetime import datetime

LOADER = "a3-loader"
GATEWAY = "mec-gateway"  # the mec_gateway role's container, on both hosts
ENGINES = ("docker", "podman")
ENGINE = "docker"  # the host's engine CLI (main sets it from ARGS_JSON)


def engine(*args, timeout=120):
    return subprocess.run([ENGINE] + list(args), capture_output=True, text=True, timeout=timeout)


def migration_images(apps):
    """The apps' migration images by the names the engine lists (Podman's with its ``localhost/``)."""
    out = engine("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    repos = {"mec-migration/" + a for a in apps}
    return sorted(i for i in out if i.split(":", 1)[0].replace("localhost/", "", 1) in repos)


def epoch(text):
    """Docker's RFC 3339 time (nanoseconds, 'Z') as epoch seconds; None when unset or unreadable."""
    if not text or text.startswith("0001-"):
        return None
    text = text.strip().replace("Z", "+00:00")
    head, _, zone = text.partition("+")
    if "." in head:
        base, frac = head.split(".", 1)
        head = base + "." + frac[:6]
    try:
        return datetime.fromisoformat(head + ("+" + zone if zone else "+00:00")).timestamp()
    except ValueError:
        return None


def container(name):
    proc = engine("container", "inspect", name)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)[0]
    return {"running": bool(data["State"].get("Running")), "status": data["State"].get("Status"),
            "image": data.get("Image"), "spec": (data["Config"].get("Labels") or {}).get("mec.migration.spec"),
            "started": epoch(data["State"].get("StartedAt"))}


def volume_created(name):
    """When the volume was made (epoch seconds; None when unreadable), False when there is none. Read from the JSON
    (Podman's --format prints Go's own time layout, not RFC 3339)."""
    proc = engine("volume", "inspect", name)
    if proc.returncode != 0:
        return False
    try:
        return epoch(json.loads(proc.stdout)[0].get("CreatedAt"))
    except (ValueError, IndexError, AttributeError, TypeError):
        return None


def run_config(apps_dir, name):
    try:
        with open(os.path.join(apps_dir, "run-%s.json" % name), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    argv = data.get("argv") if isinstance(data, dict) else None
    if not (isinstance(argv, list) and argv[:2] == [ENGINE, "run"] and all(isinstance(a, str) for a in argv)):
        return None
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("mec.migration.spec=")), None)
    return {"argv": argv, "image": data.get("image") or argv[-1], "spec": spec}


def held_locks(args):
    """The apps' migration locks present on this host (``<state_root>/locks/<app>.lock``)."""
    locks = os.path.join(args["state_root"], "locks")
    names = os.listdir(locks) if os.path.isdir(locks) else []
    return sorted(f for f in names if f in {a + ".lock" for a in args["apps"]})


def _remove(names, a2_volume, errors):
    for name in names:
        if container(name) is not None:
            proc = engine("rm", "--force", name)
            if proc.returncode != 0:
                errors.append("%s rm %s: %s" % (ENGINE, name, proc.stderr.strip()[-300:]))
    if a2_volume and volume_created(a2_volume) is not False:
        proc = engine("volume", "rm", "--force", a2_volume)
        if proc.returncode != 0:
            errors.append("%s volume rm %s: %s" % (ENGINE, a2_volume, proc.stderr.strip()[-300:]))


def _start(apps_dir, name, errors):
    """The engine's run of the role's run configuration; True when it started."""
    config = run_config(apps_dir, name)
    if config is None:
        errors.append("no %s run configuration %s/run-%s.json (apply playbooks/apps.yml once)"
                      % (ENGINE, apps_dir, name))
        return False
    proc = subprocess.run(config["argv"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        errors.append("%s: %s" % (" ".join(config["argv"][:5]), (proc.stderr or proc.stdout).strip()[-300:]))
    return proc.returncode == 0


def _role_image(apps_dir, name):
    config = run_config(apps_dir, name)
    if config is None:
        return None
    proc = engine("image", "inspect", "--format", "{{.Id}}", config["image"])
    return proc.stdout.strip() if proc.returncode == 0 else None


def _in_place(apps_dir, name):
    """The app runs on this host from the role's image (not, e.g., from a migration image it was moved back with)."""
    c = container(name)
    return bool(c and c["running"] and c["image"] == _role_image(apps_dir, name))


def act(args, report):
    """Target: no app there (the previous run's app, a3's loader, A2's volume). Source: the run's app and any app
    that does not run there (the previous run's, moved to the target) started anew from the role's run
    configuration. Both: the apps' migration images removed (after the containers: an image in use would only
    lose its tag)."""
    app, role, errors = args["app"], args["role"], report["errors"]
    apps = list(args["apps"])
    if role == "source":
        restart = [n for n in apps if n == app or not _in_place(args["apps_dir"], n)]
    else:
        restart = [n for n in apps + [LOADER] if container(n) is not None]
    _remove(restart + ([LOADER] if "a3" in restart and LOADER not in restart else []),
            args["a2_volume"] if "a2" in restart or role == "target" else None, errors)
    images = migration_images(apps)
    if images:
        proc = engine("rmi", "--force", *images)
        if proc.returncode != 0:
            errors.append("%s rmi %s: %s" % (ENGINE, " ".join(images), proc.stderr.strip()[-300:]))
    report["removed_images"] = images
    report["restarted" if role == "source" else "removed"] = restart
    if role != "source":
        return
    for name in restart:
        if not _start(args["apps_dir"], name, errors):
            continue
        if name == "a3" and _start(args["apps_dir"], LOADER, errors) is False:
            errors[-1] = "A3's loader failed: " + errors[-1]


def main():
    global ENGINE
    args = json.loads(sys.argv[1])
    ENGINE = args.get("engine", "docker")
    if ENGINE not in ENGINES:
        sys.exit("unknown engine %r (docker or podman)" % (ENGINE,))
    report = {"role": args["role"], "app": args["app"], "engine": ENGINE, "t0": time.time(), "errors": []}
    if args.get("act", True) and not held_locks(args):
        act(args, report)  # never while a run holds an app's lock: it is recover.yml's to finish or undo
    report["containers"] = {n: container(n) for n in list(args["apps"]) + [LOADER]}
    report["gateway"] = container(GATEWAY)
    configs = {n: run_config(args["apps_dir"], n) for n in args["apps"]} if args["role"] == "source" else {}
    report["specs"] = {n: (c or {}).get("spec") for n, c in configs.items()}
    report["images"] = {name: _role_image(args["apps_dir"], name) for name, config in configs.items() if config}
    report["a2_volume_created"] = volume_created(args["a2_volume"])
    report["migration_images"] = migration_images(args["apps"])
    report["locks"] = held_locks(args)
    report["seconds"] = round(time.time() - report["t0"], 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
