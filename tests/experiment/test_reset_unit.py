"""The experiment's reset decides from the two hosts' reports whether a run starts like the others: every
difference is named (pure tests of ``reset.problems``), and the host script's parsers."""

from __future__ import annotations

import copy
import json

import pytest
from mec_experiment import reset, reset_host

T0 = 1_800_000_000.0
IMG = {"a1": "sha256:" + "1" * 64, "a2": "sha256:" + "2" * 64, "a3": "sha256:" + "3" * 64}


def clean(app="a2"):
    """Reports of a source and a target as a run starts, just after ``app`` was reset."""
    containers = {n: {"running": True, "status": "running", "image": IMG[n], "spec": "spec-" + n,
                      "started": T0 + 1 if n == app else T0 - 3600} for n in ("a1", "a2", "a3")}
    containers["a3-loader"] = None
    src = {"role": "source", "app": app, "t0": T0, "errors": [], "containers": containers,
           "specs": {n: "spec-" + n for n in IMG}, "images": dict(IMG),
           "a2_volume_created": T0 if app == "a2" else T0 - 3600, "migration_images": [], "locks": []}
    tgt = {"role": "target", "app": app, "t0": T0, "errors": [], "containers": {n: None for n in
                                                                                ("a1", "a2", "a3", "a3-loader")},
           "a2_volume_created": False, "migration_images": [], "locks": []}
    for report in (src, tgt):
        report["gateway"] = {"running": True, "status": "running"}
    return src, tgt


def test_a_clean_start_has_no_problem():
    for app in ("a1", "a2", "a3"):
        assert reset.problems(app, *clean(app)) == []


@pytest.mark.parametrize("change, expected", [
    (lambda s, t: s["containers"].update(a1=None), "a1 is not running on the source (no container)"),
    (lambda s, t: s["containers"]["a3"].update(running=False, status="exited"),
     "a3 is not running on the source (exited)"),
    (lambda s, t: s["containers"]["a1"].update(image="sha256:" + "9" * 64),
     "a1 on the source runs image sha256:999999999999, not the role's sha256:111111111111"),
    (lambda s, t: s["containers"]["a2"].update(spec="other"),
     "a2 on the source was not started with the role's options (spec label other, role spec-a2)"),
    (lambda s, t: s["containers"]["a2"].update(started=T0 - 60), "a2 on the source was not started anew by this reset"),
    (lambda s, t: s.update(a2_volume_created=T0 - 600),
     "A2's volume on the source was not made anew (created 600 s before"),
    (lambda s, t: s.update(a2_volume_created=False), "A2's volume is missing on the source"),
    (lambda s, t: t["containers"].update(a2={"status": "created"}), "container a2 is on the target (created)"),
    (lambda s, t: t.update(a2_volume_created=T0), "A2's volume is on the target"),
    (lambda s, t: t.update(migration_images=["mec-migration/a2:r1"]),
     "migration images left on the target: mec-migration/a2:r1"),
    (lambda s, t: s.update(locks=["a2.lock"]), "migration lock held on the source: a2.lock (an unfinished run"),
    (lambda s, t: s["errors"].append("A3's loader failed (rc 1): boom"), "source: A3's loader failed (rc 1): boom"),
    (lambda s, t: s["images"].update(a3=None), "the role's image of a3 is missing on the source"),
    (lambda s, t: t["gateway"].update(running=False, status="exited"),
     "the MEC gateway is not running on the target (exited)"),
    (lambda s, t: s.update(gateway=None), "the MEC gateway is not running on the source (no container)"),
])
def test_each_difference_is_named(change, expected):
    src, tgt = clean("a2")
    change(src, tgt)
    found = reset.problems("a2", src, tgt)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_an_old_app_that_is_not_the_reset_one_may_have_run_long():
    src, tgt = clean("a1")
    assert src["containers"]["a2"]["started"] < T0 and reset.problems("a1", src, tgt) == []
    stale = copy.deepcopy(src)
    stale["containers"]["a1"]["started"] = T0 - 5
    assert reset.problems("a1", stale, tgt) == ["a1 on the source was not started anew by this reset"]


def test_unknown_method_is_refused():
    with pytest.raises(reset.ResetError, match="unknown reset method 'sometimes'"):
        reset.reset("inv", {}, "a2", "sometimes")
    assert reset.reset("inv", {}, "a2", "never") == {"method": "never", "seconds": 0.0, "playbook_seconds": None}


def test_host_script_reads_docker_times_and_the_role_run_configuration(tmp_path):
    assert reset_host.epoch("2026-11-27T15:04:34.123456789Z") == pytest.approx(1795791874.123456)
    assert reset_host.epoch("2026-11-27T15:04:34Z") == 1795791874.0
    assert reset_host.epoch("0001-01-01T00:00:00Z") is None and reset_host.epoch("") is None
    argv = ["docker", "run", "--detach", "--name", "a2", "--label", "mec.migration.role=mec_apps",
            "--label", "mec.migration.spec=abc123", "--network", "mec-apps", "mec-apps/a2:latest"]
    (tmp_path / "run-a2.json").write_text(json.dumps({"name": "a2", "image": "mec-apps/a2:latest", "argv": argv}))
    assert reset_host.run_config(str(tmp_path), "a2") == {"argv": argv, "image": "mec-apps/a2:latest", "spec": "abc123"}
    (tmp_path / "run-a1.json").write_text(json.dumps({"argv": ["rm", "-rf", "/"]}))
    assert reset_host.run_config(str(tmp_path), "a1") is None
    assert reset_host.run_config(str(tmp_path), "a3") is None
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "a3.lock").write_text("{}")
    (tmp_path / "locks" / "other.lock").write_text("{}")
    assert reset_host.held_locks({"state_root": str(tmp_path), "apps": ["a1", "a2", "a3"]}) == ["a3.lock"]


class FakeEngine:
    """Containers by name -> (running, image id); records the engine calls reset_host makes (``cli``: docker or
    podman, whose run configurations, image names and volume times it writes as that engine does)."""

    def __init__(self, monkeypatch, tmp_path, containers, volume=True, cli="docker"):
        self.containers, self.volume, self.calls, self.cli = dict(containers), volume, [], cli
        for name in ("a1", "a2", "a3", "a3-loader"):
            if name == "a3-loader":
                argv = [cli, "run", "--rm", "mec-apps/a3-loader:latest"]
            else:
                argv = [cli, "run", "--detach", "--name", name, "--label", "mec.migration.spec=s-" + name,
                        "mec-apps/%s:latest" % name]
            (tmp_path / ("run-%s.json" % name)).write_text(json.dumps({"argv": argv}))
        monkeypatch.setattr(reset_host, "engine", self.engine)
        monkeypatch.setattr(reset_host, "ENGINE", cli)
        monkeypatch.setattr(reset_host.subprocess, "run", self.run)

    def engine(self, *args, timeout=120):
        self.calls.append(list(args))
        out, rc = "", 0
        if args[:2] == ("container", "inspect"):
            c = self.containers.get(args[2])
            rc = 0 if c else 1
            out = json.dumps([{"State": {"Running": c[0], "Status": "running" if c[0] else "exited", "StartedAt": ""},
                               "Image": c[1], "Config": {"Labels": {}}}]) if c else ""
        elif args[:2] == ("image", "inspect"):
            out = "id-" + args[-1].split("/")[1].split(":")[0]
        elif args[:2] == ("image", "ls"):
            out = "mec-migration/a2:r1\nmec-migration/other:r2\nmec-apps/a2:latest\n"
            if self.cli == "podman":  # Podman names local images localhost/...
                out = "".join("localhost/" + line + "\n" for line in out.split())
        elif args[:2] == ("volume", "inspect"):
            created = "2026-11-27T15:00:00Z" if self.cli == "docker" else "2026-11-27T15:00:00.123456789Z"
            rc, out = (0, json.dumps([{"Name": args[-1], "CreatedAt": created}])) if self.volume else (1, "")
        elif args[0] == "rm":
            self.containers.pop(args[-1], None)
        elif args[:2] == ("volume", "rm"):
            self.volume = False
        return reset_host.subprocess.CompletedProcess(args, rc, out, "")

    def run(self, argv, **kw):
        self.calls.append(argv[1:])
        if "--name" in argv:
            name = argv[argv.index("--name") + 1]
            self.containers[name] = (True, "id-" + name)
        return reset_host.subprocess.CompletedProcess(argv, 0, "", "")


def test_on_podman_the_host_script_uses_podman_and_its_image_names(monkeypatch, tmp_path):
    engine = FakeEngine(monkeypatch, tmp_path, {"a1": (True, "id-a1"), "a3": (True, "id-migration-a3")}, cli="podman")
    # Podman's volume time, read from its JSON (nanoseconds)
    assert reset_host.volume_created("a2-data") == pytest.approx(1795791600.123456)
    report = {"errors": []}
    reset_host.act({"role": "source", "app": "a2", "apps": ["a1", "a2", "a3"], "apps_dir": str(tmp_path),
                    "a2_volume": "a2-data"}, report)
    assert report == {"errors": [], "restarted": ["a2", "a3"], "removed_images": ["localhost/mec-migration/a2:r1"]}
    assert ["rmi", "--force", "localhost/mec-migration/a2:r1"] in engine.calls
    assert [c[0] for c in engine.calls if c[0] in ("run", "podman")] == ["run", "run", "run"]  # a2, a3, the loader
    # a run configuration of the other engine is not this host's: not run, the reset says so
    (tmp_path / "run-a1.json").write_text(json.dumps({"argv": ["docker", "run", "mec-apps/a1:latest"]}))
    assert reset_host.run_config(str(tmp_path), "a1") is None
    report = {"errors": []}
    assert reset_host._start(str(tmp_path), "a1", report["errors"]) is False
    assert report["errors"] == ["no podman run configuration %s/run-a1.json (apply playbooks/apps.yml once)"
                                % tmp_path]


def started(engine):
    return [c[c.index("--name") + 1] if "--name" in c else c[-1] for c in engine.calls if c[0] == "run"]


def test_source_starts_the_run_app_and_every_app_out_of_place_anew(monkeypatch, tmp_path):
    # a1 in place; a2 moved to the target by the previous run; a3 back from a migration image
    engine = FakeEngine(monkeypatch, tmp_path, {"a1": (True, "id-a1"), "a3": (True, "id-migration-a3")})
    report = {"errors": []}
    reset_host.act({"role": "source", "app": "a1", "apps": ["a1", "a2", "a3"], "apps_dir": str(tmp_path),
                    "a2_volume": "a2-data"}, report)
    assert report == {"errors": [], "restarted": ["a1", "a2", "a3"], "removed_images": ["mec-migration/a2:r1"]}
    assert started(engine) == ["a1", "a2", "a3", "mec-apps/a3-loader:latest"]
    assert ["rm", "--force", "a3"] in engine.calls and ["volume", "rm", "--force", "a2-data"] in engine.calls
    assert ["rmi", "--force", "mec-migration/a2:r1"] in engine.calls  # never another app's migration image


def test_source_leaves_apps_in_place_alone_and_target_keeps_no_app(monkeypatch, tmp_path):
    engine = FakeEngine(monkeypatch, tmp_path, {n: (True, "id-" + n) for n in ("a1", "a2", "a3")})
    report = {"errors": []}
    reset_host.act({"role": "source", "app": "a1", "apps": ["a1", "a2", "a3"], "apps_dir": str(tmp_path),
                    "a2_volume": "a2-data"}, report)
    assert report["restarted"] == ["a1"] and started(engine) == ["a1"] and engine.volume is True
    target = FakeEngine(monkeypatch, tmp_path, {"a3": (True, "id-x"), "a3-loader": (False, "id-y")})
    report = {"errors": []}
    reset_host.act({"role": "target", "app": "a1", "apps": ["a1", "a2", "a3"], "apps_dir": str(tmp_path),
                    "a2_volume": "a2-data"}, report)
    assert report["removed"] == ["a3", "a3-loader"] and started(target) == [] and target.volume is False
    assert target.containers == {}
