"""One drive: the sandbox restarted (simulated time 0 = the drive's start), A2 fresh on the UE's start zone host,
the rulebook following the UE for the drive's time, the probe sampling, then the per-hop assembly and the report."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import yaml

from . import analysis, derive, report
from .lab import ROOT, DriveError, ZonesLab, ansible_env, deploy_a2, start_from_run_config
from .probe import Probe

RULEBOOK = "extensions/eda/rulebooks/follow_ue.yml"
APP, VOLUME, APP_PORT = "a2", "a2-data", 3000
SAMPLE_EVERY_S = 0.2
STEP_S = 0.05  # the sandbox's simulation step (its default), also used to replay the UE's exact timeline


def _free(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the sandbox binds (aiohttp): TIME_WAIT is no owner
        try:
            s.bind((address, port))
            return True
        except OSError:
            return False


# The drive's sandbox needs a bearer token (OAuth 2.0 client credentials): its credentials are kept here, so that
# the gateways deployed by an earlier drive (--skip-deploy) still hold a valid token for the same URL.
CREDENTIALS_DIR = Path("~/.cache/mec-migration/drive-sandbox").expanduser()


def _credentials():
    if str(ROOT / "apps") not in sys.path:
        sys.path.insert(0, str(ROOT / "apps"))
    from mec_sandbox import credentials
    return credentials


def _get(url: str, timeout: float = 2.0, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


class Drive:
    def __init__(self, mode: str, minutes: float, strategy: str, ue: str, sandbox_address: str, sandbox_port: int,
                 out_root: Path, rulebook_vars: dict, lab: ZonesLab, skip_deploy: bool = False):
        self.mode, self.minutes, self.strategy, self.ue = mode, minutes, strategy, ue
        self.duration = minutes * 60.0
        self.sandbox_address, self.sandbox_port = sandbox_address, sandbox_port
        self.sandbox_url = f"http://{sandbox_address}:{sandbox_port}/sandbox"
        self.rulebook_vars, self.lab, self.skip_deploy = rulebook_vars, lab, skip_deploy
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.out = Path(out_root) / f"{stamp}-{mode}"
        self.sandbox = self.rulebook = None
        creds = _credentials()
        try:
            creds.generate(str(CREDENTIALS_DIR))
            creds.gateway_token(str(CREDENTIALS_DIR), self.sandbox_url)
        except creds.CredentialsError as exc:
            raise DriveError(f"the drive's sandbox credentials in {CREDENTIALS_DIR}: {exc}") from None
        self.tokens = creds.TokenClient.from_file(self.sandbox_url, str(CREDENTIALS_DIR / creds.CLIENT_FILE),
                                                  "mec-control")

    # ------------------------------------------------------------------------------------------ set-up
    def _start_sandbox(self) -> float:
        if not _free(self.sandbox_address, self.sandbox_port):
            raise DriveError(f"{self.sandbox_address}:{self.sandbox_port} is taken (another sandbox or drive?): stop "
                             "it or give --sandbox-port")
        log = open(self.out / "sandbox.log", "w", encoding="utf-8")
        # callbacks go to the event source on loopback (the rulebook runs on this machine)
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", "mec_sandbox", "--host", self.sandbox_address, "--port", str(self.sandbox_port),
             "--base-path", "/sandbox", "--speed", "1", "--step", str(STEP_S), "--placement", "per-zone",
             "--auth-file", str(CREDENTIALS_DIR / "sandbox-auth.json")],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "apps")), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.sandbox.poll() is not None:
                raise DriveError(f"the sandbox exited at start ({self.sandbox.returncode}); see {log.name}")
            try:
                return float(_get(self.sandbox_url + "/sandbox-ctrl/v1/clock", 1, self.tokens.headers())["epoch"])
            except OSError:
                time.sleep(0.1)
        raise DriveError(f"the sandbox did not answer at {self.sandbox_url} within 30 s; see {log.name}")

    def _start_rulebook(self) -> None:
        varsfile = self.out / "follow.vars.yml"
        varsfile.write_text(yaml.safe_dump(dict({
            "follow_platform_url": self.sandbox_url, "follow_ue": self.ue, "follow_app": APP,
            "follow_strategy": self.strategy, "follow_listen_host": "127.0.0.1",
            "follow_state_dir": str(self.out / "state"), "follow_inventory_dir": str(self.lab.inv_dir),
            "follow_credentials_file": str(CREDENTIALS_DIR / "credentials.json"),
            "follow_results_dir": str(self.out / "follow"), "follow_playbook": "playbooks/follow.yml",
            "follow_mode": self.mode}, **self.rulebook_vars)))
        log = open(self.out / "rulebook.log", "w", encoding="utf-8")
        self.rulebook = subprocess.Popen(
            [str(Path(sys.executable).parent / "ansible-rulebook"), "-r", RULEBOOK, "-i", str(self.lab.inventory),
             "--vars", str(varsfile)], cwd=ROOT, env=ansible_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 90
        url = self.sandbox_url + "/location/v2/subscriptions/zonalTraffic"
        while time.monotonic() < deadline:
            if self.rulebook.poll() is not None:
                raise DriveError(f"ansible-rulebook exited at start ({self.rulebook.returncode}); see {log.name}")
            try:
                subs = _get(url, headers=self.tokens.headers())["notificationSubscriptionList"].get(
                    "zonalTrafficSubscription", [])
                if subs:
                    return
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise DriveError(f"the rulebook made no subscription on {self.sandbox_url} within 90 s; see {log.name}")

    # ------------------------------------------------------------------------------------------ tear-down
    def _playbooks_running(self) -> list[int]:
        """ansible-playbook processes among the rulebook's descendants (ansible-runner starts them in a session
        of their own, so the rulebook's process group does not hold them)."""
        parent, cmdline = {}, {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except (OSError, ValueError, IndexError):
                continue
        found = []
        for pid, cmd in cmdline.items():
            p, hops = pid, 0
            while p in parent and p != self.rulebook.pid and hops < 64:
                p, hops = parent[p], hops + 1
            if p == self.rulebook.pid and "ansible-playbook" in cmd:
                found.append(pid)
        return found

    def _stop(self, wait_playbooks_s: float = 300) -> dict:
        notes = {}
        if self.sandbox and self.sandbox.poll() is None:  # no more events
            self.sandbox.terminate()
            try:
                self.sandbox.wait(10)
            except subprocess.TimeoutExpired:
                self.sandbox.kill()
        if self.rulebook and self.rulebook.poll() is None:
            t = time.monotonic()
            idle_since = None  # queued events start their runs one after the other: wait for 5 s without any
            while time.monotonic() - t < wait_playbooks_s:
                if self._playbooks_running():
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= 5:
                    break
                time.sleep(0.5)
            notes["waited_for_last_run_s"] = round(time.monotonic() - t, 1)
            notes["run_interrupted"] = bool(self._playbooks_running())
            os.killpg(self.rulebook.pid, signal.SIGINT)
            try:
                self.rulebook.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.rulebook.pid, signal.SIGKILL)
                self.rulebook.wait(10)
        return notes

    # ------------------------------------------------------------------------------------------ the drive
    def run(self) -> dict:
        self.out.mkdir(parents=True)
        (self.out / "state").mkdir(mode=0o700)  # private: the event sources and follow.yml refuse it otherwise
        self.lab.check()
        start_zone, zone_changes, ap_changes = ue_timeline(self.ue, self.duration)
        start_host = self.lab.zone_host.get(start_zone)
        if start_host is None:
            raise DriveError(f"UE {self.ue} starts in {start_zone}, which no host of {self.lab.inventory} serves")
        print(f"[{self.mode}] A2 fresh on the zones lab (counter 0), gateways to {self.sandbox_url}", flush=True)
        removed = self.lab.remove_app(APP, VOLUME)
        if self.skip_deploy:
            start_from_run_config(self.lab, start_host, APP)
        else:
            deploy_a2(self.lab, self.sandbox_url, self.ue, self.out / "apps.log",
                      CREDENTIALS_DIR / "gateway-token.json")
        on = self.lab.running_on(APP)
        if on != [start_host]:
            raise DriveError(f"A2 runs on {on or 'no host'} after playbooks/apps.yml, but the UE starts in "
                             f"{start_zone} ({start_host}): A2 starts on the inventory's source host; make it "
                             f"{start_host}")
        samples, notes = [], {"removed_before": removed}
        stop = threading.Event()
        sampler = None
        try:
            epoch = self._start_sandbox()
            # the probe runs from the drive's start (A2 already serves); the rulebook starts beside it
            sampler = threading.Thread(target=self._sample, args=(epoch, samples, stop), name="drive-probe")
            sampler.start()
            self._start_rulebook()
            notes["rulebook_ready_s"] = round(time.time() - epoch, 2)
            (self.out / "drive.json").write_text(json.dumps({
                "mode": self.mode, "minutes": self.minutes, "strategy": self.strategy, "ue": self.ue,
                "epoch": epoch, "zone_host": self.lab.zone_host, "sandbox_url": self.sandbox_url,
                "rulebook_vars": self.rulebook_vars}, indent=1) + "\n")
            print(f"[{self.mode}] driving {self.minutes:g} min from "
                  f"{datetime.fromtimestamp(epoch, timezone.utc):%H:%M:%S} UTC; rulebook ready after "
                  f"{notes['rulebook_ready_s']} s", flush=True)
            sampler.join()
        finally:
            stop.set()
            if sampler is not None:
                sampler.join()
            notes.update(self._stop())
        (self.out / "notes.json").write_text(json.dumps(notes, indent=1) + "\n")
        return self._collect(epoch, samples, start_zone, zone_changes, ap_changes, notes)

    @classmethod
    def reanalyse(cls, folder: Path, lab: ZonesLab) -> dict:
        """Assemble a finished drive again from what it wrote (timeline.jsonl, follow/, drive.json, notes.json)."""
        meta = json.loads((folder / "drive.json").read_text())
        drive = cls(meta["mode"], meta["minutes"], meta["strategy"], meta["ue"], "127.0.0.1", 0, folder.parent,
                    meta.get("rulebook_vars", {}), lab)
        drive.out = folder
        lab.zone_host = meta["zone_host"]
        samples = [json.loads(x) for x in (folder / "timeline.jsonl").read_text().splitlines() if x.strip()]
        start_zone, zone_changes, ap_changes = ue_timeline(drive.ue, drive.duration)
        notes_file = folder / "notes.json"
        notes = json.loads(notes_file.read_text()) if notes_file.exists() else {}
        return drive._collect(meta["epoch"], samples, start_zone, zone_changes, ap_changes, notes)

    def _sample(self, epoch: float, samples: list, stop: threading.Event) -> None:
        """Every SAMPLE_EVERY_S until the drive's end (or ``stop``): appended to ``samples`` and timeline.jsonl."""
        probe = Probe(self.sandbox_url, self.ue, {n: h.address for n, h in self.lab.hosts.items()}, APP_PORT,
                      tokens=self.tokens)
        end, last_print = epoch + self.duration, 0.0
        try:
            with open(self.out / "timeline.jsonl", "w", encoding="utf-8") as fh:
                while time.time() < end and not stop.is_set():
                    tick = time.time()
                    s = probe.sample()
                    samples.append(s)
                    fh.write(json.dumps(s) + "\n")
                    fh.flush()
                    if tick - last_print >= 30:
                        last_print = tick
                        print(f"  t={tick - epoch:6.1f}s zone={s['zone']} serving={','.join(s['up']) or '-'} "
                              f"counter={list(s['counter'].values())}", flush=True)
                    time.sleep(max(0.0, SAMPLE_EVERY_S - (time.time() - tick)))
        finally:
            probe.close()

    def _collect(self, epoch, samples, start_zone, zone_changes, ap_changes, notes) -> dict:
        end = epoch + self.duration
        # when the sandbox reached each zone change (its clock may lag the wall clock after the machine was held),
        # and the platform's own time stamp of it (what the event carries)
        handovers = [{"at": analysis.wall_time_of(samples, t, epoch), "event_at": epoch + t, "from_zone": a,
                      "to_zone": b} for t, a, b in zone_changes]
        follow_lines = read_follow_lines(self.out / "follow")
        records = read_records(self.out / "follow")
        hops = analysis.assemble_hops(handovers, follow_lines, records, samples, self.lab.zone_host, end)
        local = analysis.served_locally(samples, self.lab.zone_host, epoch, end)
        # after the first handover: the app starts on the UE's first zone's host, which a drive's whole window
        # counts as served locally whatever the follower does until the UE first leaves that zone
        local["after_first_handover"] = (analysis.served_locally(samples, self.lab.zone_host, handovers[0]["at"], end)
                                         if handovers else None)
        last_counter = next((s["counter"] for s in reversed(samples) if s["counter"]), {})
        counter = max(last_counter.values()) if last_counter else None
        entered = analysis.zones_entered(start_zone, handovers)
        failed_runs = rulebook_failures(self.out / "rulebook.log")
        summary = build_summary(self, epoch, samples, hops, local, counter, entered, records, follow_lines,
                                failed_runs, notes)
        summary["derived"] = derived_placements(hops, zone_changes, ap_changes, start_zone, self.duration,
                                                self.lab.zone_host, local["ratio"], self.mode)
        summary["sampled_zone_check"] = check_sampled_zones(samples, handovers)
        (self.out / "hops.json").write_text(json.dumps(hops, indent=1) + "\n")
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        report.timeline_figure(self.out / "timeline.png", samples, hops, self.lab.zone_host, epoch, end,
                               f"{self.mode}, {self.strategy}: served locally {_pct(local['ratio'])}")
        return summary


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


# ---------------------------------------------------------------------------------------------- helpers
def ue_timeline(ue: str, duration: float):
    """The UE's exact zone and access-point changes over the drive, from the scenario the sandbox runs (the same
    deterministic simulation, same step): (start zone, [(t, from, to)] zones, [(t, poa, zone)] access points)."""
    sys.path.insert(0, str(ROOT / "apps"))
    from mec_sandbox.scenario import load_scenario
    from mec_sandbox.time_available import poa_timeline

    events = poa_timeline(load_scenario(None), duration, STEP_S).get(ue)
    if events is None:
        raise DriveError(f"UE {ue} is not a moving UE of the sandbox's scenario (the car is 10.100.0.1)")
    zones, prev = [], events[0][2]
    for t, _poa, zone in events[1:]:
        if zone != prev and t < duration:
            zones.append((t, prev, zone))
            prev = zone
    return events[0][2], zones, [(t, poa, zone) for t, poa, zone in events if t < duration]


def read_follow_lines(folder: Path) -> list[dict]:
    lines = []
    for p in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
        lines += [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
    return sorted(lines, key=lambda x: float(x.get("playbook_started_at") or 0))


def read_records(folder: Path) -> list[dict]:
    out = []
    for p in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(doc, dict) and str(doc.get("schema", "")).startswith("mec.migration/record"):
            out.append(doc)
    return out


def rulebook_failures(log: Path) -> int:
    """Rulebook runs that ended with a non-zero rc: ansible-rulebook logs each one's output once as an ERROR of
    its run_playbook action."""
    if not log.exists():
        return 0
    return log.read_text(encoding="utf-8", errors="replace").count("ansible_rulebook.action.run_playbook - ERROR")


def check_sampled_zones(samples, handovers) -> dict:
    """The probe's zone changes against the replayed ones: same sequence, and how far apart in time."""
    seen, prev = [], None
    for s in samples:
        if s["zone"] and s["zone"] != prev:
            if prev is not None:
                seen.append((s["t"], s["zone"]))
            prev = s["zone"]
    same = [z for _, z in seen] == [h["to_zone"] for h in handovers][:len(seen)]
    lags = [round(t - h["at"], 3) for (t, _), h in zip(seen, handovers)]
    return {"same_sequence": same, "sampled": len(seen), "replayed": len(handovers),
            "max_lag_s": max(lags, key=abs) if lags else None}


def build_summary(drive, epoch, samples, hops, local, counter, entered, records, follow_lines, failed_runs, notes):
    moved = [h for h in hops if h["outcome"] == "moved"]
    failed_records = [r for r in records if analysis.hop_failed(r)]
    given_up = [r for r in records if analysis.staging_given_up(r)]
    by_outcome = {}
    for h in hops:
        by_outcome[h["outcome"]] = by_outcome.get(h["outcome"], 0) + 1
    mig = [h["migration"] for h in hops if h["migration"]]
    return {
        "mode": drive.mode, "strategy": drive.strategy, "network": "n1", "ue": drive.ue, "app": APP,
        "minutes": drive.minutes, "started_at": epoch, "placement": "per-zone",
        "zone_host": drive.lab.zone_host, "samples": len(samples),
        "sample_interval_s": analysis.stats([b["t"] - a["t"] for a, b in zip(samples, samples[1:])]),
        "served_locally": local,
        "counter": {"a2": counter, "zones_entered": entered},
        "hops": {"handovers": len(hops), "by_outcome": by_outcome, "migrations": len(records),
                 "migrations_failed": len(failed_records), "stagings_given_up": len(given_up),
                 "rulebook_runs": len(follow_lines),
                 # a staging given up fails its run by design (follow.yml stops with the rolled-back migrate.yml)
                 "rulebook_runs_failed": failed_runs,
                 "rulebook_runs_failed_other": max(0, failed_runs - len(given_up)),
                 "failed": [{"run_id": r.get("run_id"), "error": r.get("error")} for r in failed_records]},
        "figures": {
            "event_delay_s": analysis.stats([h["event_delay_s"] for h in hops]),
            # the run that moved the app, for its hop's event (ahead: negative, it began before the handover)
            "event_to_playbook_s": analysis.stats([h["event_to_playbook_s"] for h in moved]),
            # every event's own run; those that found no run in progress (not queued): the rulebook's own delay
            "event_to_own_run_s": analysis.stats([_own_run_delay(h) for h in hops]),
            "event_to_own_run_not_queued_s": analysis.stats([_own_run_delay(h) for h in hops if not h["queued"]]),
            "event_to_serving_s": analysis.stats([h["event_to_serving_s"] for h in moved]),
            "handover_to_serving_s": analysis.stats([h["handover_to_serving_s"] for h in moved]),
            "handover_to_gate_open_s": analysis.stats([h["handover_to_gate_open_s"] for h in moved]),
            "ue_downtime_per_hop_s": analysis.stats([h["ue_downtime_s"] for h in moved if h["serving_at"]]),
            "record_downtime_s": analysis.stats([m["downtime_s"] for m in mig]),
            "migration_s": analysis.stats([(m["finished_at"] or 0) - (m["started_at"] or 0) for m in mig
                                           if m["finished_at"] and m["started_at"]]),
        },
        "breakdown_median_s": {k: analysis.stats([h["breakdown"][k] for h in moved if h["breakdown"]])["median"]
                               for k in ("follow_decide_s", "pre_relocation_s", "gate_wait_s",
                                         "pre_relocation_operations_s", "pre_relocation_ansible_s", "relocation_s",
                                         "running_to_answering_s")},
        "targets": {"served_locally_ge_95": local["ratio"] is not None and local["ratio"] >= 0.95,
                    "counter_equals_zones_entered": counter == entered,
                    "no_hop_failed": not failed_records and failed_runs <= len(given_up)},
        "notes": notes,
    }


def _own_run_delay(hop: dict):
    f = hop["follow"]
    if not f or hop["event_received_at"] is None or f.get("playbook_started_at") in (None, ""):
        return None
    return round(float(f["playbook_started_at"]) - hop["event_received_at"], 3)


def derived_placements(hops, zone_changes, ap_changes, start_zone, duration, zone_host, measured_ratio,
                       mode="reactive") -> dict:
    """DERIVED, not measured. Reactive: the follower model fitted on this drive's hops, checked on its per-zone
    stays, replayed per access point. Both modes: the ceiling per zone and per access point if every hop took
    this drive's median handover -> serving (ahead: what staging gives when the prediction is right and early)."""
    moved = [h for h in hops if h["outcome"] == "moved" and h["playbook_started_at"] and h["serving_at"]]
    if not moved:
        return {"note": "no hop moved the app: nothing to derive from"}

    def med(xs):
        return analysis.stats(xs)["median"] or 0.0

    per_zone = derive.host_timeline([(0.0, start_zone)] + [(t, b) for t, _a, b in zone_changes],
                                    lambda z: zone_host.get(z))
    per_ap = derive.host_timeline([(t, poa) for t, poa, _z in ap_changes], lambda p: p and f"mep-{p}")
    ap_stays = [b[0] - a[0] for a, b in zip(per_ap, per_ap[1:])]
    lag = med([h["handover_to_serving_s"] for h in moved])
    out = {"handover_to_serving_median_s": lag,
           "per_zone_ceiling": derive.ceiling(per_zone, lag, duration),
           "per_ap_ceiling": derive.ceiling(per_ap, lag, duration),
           "per_zone_measured_ratio": measured_ratio, "per_ap_stays_s": analysis.stats(ap_stays),
           "per_ap_host_changes": len(per_ap) - 1,
           "per_ap_stays_shorter_than_the_lag": sum(1 for d in ap_stays if d < lag)}
    if mode != "reactive":
        # a staged hop's staging: follow.yml deciding + migrate.yml up to the gate (the gate's wait left out)
        staging = med([(b["follow_decide_s"] or 0) + (b["pre_relocation_s"] or 0) - (b["gate_wait_s"] or 0)
                       for b in (h["breakdown"] for h in moved) if b and b["pre_relocation_s"] is not None])
        outage = med([h["ue_downtime_s"] for h in moved])
        out.update({"per_zone_staged": derive.staged_ahead_range(per_zone, staging, outage, duration),
                    "per_ap_staged": derive.staged_ahead_range(per_ap, staging, outage, duration),
                    "note": "the follower model replays the reactive rulebook only; ahead: the ceilings and the "
                            "staged-ahead model (perfect prediction, limited by this drive's staging time)"})
        return out
    runs = [h["follow"] for h in hops if h["follow"]]
    model = derive.FollowModel(
        event_delay_s=med([h["event_delay_s"] for h in hops]),
        to_playbook_s=med([_own_run_delay(h) for h in hops if not h["queued"]]),
        move_s=med([h["serving_at"] - h["playbook_started_at"] for h in moved]),
        downtime_s=med([h["ue_downtime_s"] for h in moved]),
        tail_s=med([float(h["follow"]["finished_at"]) - h["serving_at"] for h in moved if h["follow"]]),
        noop_s=med([float(f["finished_at"]) - float(f["playbook_started_at"]) for f in runs
                    if not analysis._truthy(f.get("moved"))]) or 3.0)
    out.update({"model": model.as_dict(), "per_zone_replayed": derive.replay(per_zone, model, duration),
                "per_ap_replayed": derive.replay(per_ap, model, duration)})
    return out
