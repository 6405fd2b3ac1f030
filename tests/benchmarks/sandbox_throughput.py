#!/usr/bin/env python3
"""Benchmark: requests/s of the sandbox for each kind of query and for a weighted mix, on loopback.

Starts the sandbox (one process, real-time clock, 100 UEs moving, three AMS registrations), then
loads it with wrk (apt-get install wrk) or, without wrk, an aiohttp client: each kind of query
alone, then the mix. Within a kind the requests rotate over zones, UEs, ... so that the answers are
not all one cached body. Prints the figures; asserts nothing (speed targets are read, not tested).

    python tests/benchmarks/sandbox_throughput.py [--duration 5] [--connections 32] [--ues 100]

The mix and its weights (what the seed's apps ask, plus the other APIs):

    kind                weight  request
    users_zone            30    location/v2/queries/users?zoneId=<zone>              (A2)
    rab_info              20    rni/v2/queries/rab_info                              (A1)
    zones                 10    location/v2/queries/zones                            (A3)
    users_address         10    location/v2/queries/users?address=<ue>
    access_points         10    location/v2/queries/zones/<zone>/accessPoints
    ams_adjacent          10    amsi/v1/queries/adjacent_app_instances?filter=(neq,appInstanceId,<app>)
    ams_registrations      5    amsi/v1/app_mobility_services
    users_all              5    location/v2/queries/users (every UE, about 36 kB)
"""

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from results_file import start, summarize, write_results

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
APPS = os.path.join(ROOT, "apps")
ZONES = ["zone01", "zone02", "zone03", "zone04"]
APPS_REGISTERED = ["app-1", "app-2", "app-3"]
# Authorization of every request: a bearer token of the client mec-control, set by start_sandbox for a sandbox
# that needs one (apps/mec_sandbox/auth.py; an older sandbox given with --apps takes none).
HEADERS: dict = {}
WEIGHTS = {"users_zone": 30, "rab_info": 20, "zones": 10, "users_address": 10, "access_points": 10,
           "ams_adjacent": 10, "ams_registrations": 5, "users_all": 5}


def paths_of(kind: str, ues: list[str]) -> list[str]:
    """The request paths of one kind, rotated through by the load generator."""
    if kind == "users_zone":
        return [f"/location/v2/queries/users?zoneId={z}" for z in ZONES]
    if kind == "rab_info":
        return ["/rni/v2/queries/rab_info"]
    if kind == "zones":
        return ["/location/v2/queries/zones"]
    if kind == "users_address":
        return [f"/location/v2/queries/users?address={u}" for u in ues]
    if kind == "access_points":
        return [f"/location/v2/queries/zones/{z}/accessPoints" for z in ZONES]
    if kind == "ams_adjacent":
        return [f"/amsi/v1/queries/adjacent_app_instances?filter=(neq,appInstanceId,{a})" for a in APPS_REGISTERED]
    if kind == "ams_registrations":
        return ["/amsi/v1/app_mobility_services"]
    if kind == "users_all":
        return ["/location/v2/queries/users"]
    raise ValueError(kind)


def mix_paths(ues: list[str]) -> list[str]:
    """100 requests in the mix's proportions, each kind cycling through its own paths, shuffled once."""
    out = []
    for kind, weight in WEIGHTS.items():
        paths = paths_of(kind, ues)
        out.extend(paths[i % len(paths)] for i in range(weight))
    random.Random(7).shuffle(out)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _credentials(apps_dir):
    """(--auth-file arguments, token client factory) for a sandbox with OAuth; ([], None) for an older one."""
    if not os.path.exists(os.path.join(apps_dir, "mec_sandbox", "auth.py")):
        return [], None
    if apps_dir not in sys.path:
        sys.path.insert(0, apps_dir)
    from mec_sandbox.credentials import TokenClient, generate
    folder = os.path.join(tempfile.mkdtemp(prefix="sbx-bench-"), "creds")
    generate(folder)
    return (["--auth-file", os.path.join(folder, "sandbox-auth.json")],
            lambda root: TokenClient.from_file(root, os.path.join(folder, "credentials.json"), "mec-control"))


def start_sandbox(port, ues, extra=(), apps_dir=APPS, log=None, profile=None):
    """The sandbox as a child process; its log goes to a file or nowhere (a pipe nobody reads would block it).
    Sets HEADERS to a bearer token's when the sandbox needs one."""
    prefix = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
    auth_args, tokens = _credentials(apps_dir)
    proc = subprocess.Popen(prefix + ["-m", "mec_sandbox", "--host", "127.0.0.1", "--port", str(port),
                                      "--ue-count", str(ues), "--speed", "1", *auth_args, *extra],
                            env=dict(os.environ, PYTHONPATH=apps_dir), stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                HEADERS.clear()
                if tokens:
                    HEADERS.update(tokens(f"http://127.0.0.1:{port}").headers())
                return proc
        if proc.poll() is not None:
            if log:
                log.seek(0)
            raise SystemExit(f"sandbox failed to start: {log.read().decode(errors='replace') if log else ''}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("sandbox did not open its port")


def register_apps(root):
    for app in APPS_REGISTERED:
        req = urllib.request.Request(f"{root}/amsi/v1/app_mobility_services", method="POST",
                                     data=json.dumps({"serviceConsumerId": {"appInstanceId": app}}).encode(),
                                     headers={"Content-Type": "application/json", **HEADERS})
        urllib.request.urlopen(req, timeout=5).read()


WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i - 1) %% #paths + 1])
end
"""


def run_wrk(root, paths, duration, connections):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
        script = f.name
    try:
        auth = [arg for k, v in HEADERS.items() for arg in ("-H", f"{k}: {v}")]
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", "-s", script,
                              *auth, root + "/"], capture_output=True, text=True, check=False,
                             timeout=duration + 30).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p50, p99, int(non2xx.group(1)) if non2xx else 0


async def python_load(root, paths, duration, connections):
    import aiohttp
    done = errors = 0
    latencies = []
    stop = time.monotonic() + duration
    counter = iter(range(10 ** 12))

    async def worker(session):
        nonlocal done, errors
        while time.monotonic() < stop:
            path = paths[next(counter) % len(paths)]
            t0 = time.perf_counter()
            async with session.get(root + path) as r:
                await r.read()
                if r.status == 200:
                    done += 1
                else:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), headers=HEADERS) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.monotonic() - t0
    latencies.sort()
    return (done / elapsed, f"{latencies[len(latencies) // 2] * 1000:.2f}ms",
            f"{latencies[int(len(latencies) * 0.99)] * 1000:.2f}ms", errors)


def _ms(text: str) -> float:
    """'2.06ms', '850.00us', '1.02s' (wrk's and python_load's latencies) -> milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)


def build_costs(apps_dir, n_ues, ues, rounds=200):
    """Microseconds to build each kind's answer from scratch (empty per-step cache and index), in process:
    the work a cache miss costs, once per simulation step and distinct query."""
    sys.path.insert(0, apps_dir)
    from aiohttp.test_utils import make_mocked_request

    from mec_sandbox.__main__ import make_sandbox, parse_args
    from mec_sandbox.server import build_app

    sb = make_sandbox(parse_args(["--ue-count", str(n_ues), "--speed", "0"]))
    if os.path.exists(os.path.join(apps_dir, "mec_sandbox", "auth.py")):  # the handlers are timed, not the check
        from mec_sandbox.auth import Authority
        app = build_app(sb, Authority.from_config({"signing_key": "00" * 32, "clients": {
            "bench": {"secret_sha256": "0" * 64, "scopes": ["read"]}}}))
    else:
        app = build_app(sb)

    async def one(path):
        req = make_mocked_request("GET", path, headers={"Host": "bench:80"}, app=app)
        match = await app.router.resolve(req)
        match.add_app(app)
        req._match_info = match
        sb._cache, sb._index = {}, None
        t0 = time.perf_counter()
        resp = await match.handler(req)
        assert resp.status == 200, (path, resp.status, resp.body)
        return time.perf_counter() - t0

    async def run():
        for app_id in APPS_REGISTERED:  # registrations as in the load test
            app["apis"]["ams"].registrations[app_id] = {"serviceConsumerId": {"appInstanceId": app_id},
                                                        "appMobilityServiceId": app_id}
        out = {}
        for kind in WEIGHTS:
            paths = paths_of(kind, ues)
            times = sorted([await one(paths[i % len(paths)]) for i in range(rounds)])
            out[kind] = times[len(times) // 2] * 1e6
        return out
    return asyncio.run(run())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per kind (the mix gets twice that)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--ues", type=int, default=100)
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--kinds", default=",".join(WEIGHTS), help="kinds to measure alone (comma-separated); "
                                                               "'none' measures only the mix")
    ap.add_argument("--apps", default=APPS, help="folder holding the mec_sandbox package (to compare versions)")
    ap.add_argument("--build-costs", action="store_true",
                    help="also time, in process, how long each kind's answer takes to build on a cache miss")
    ap.add_argument("--profile", metavar="FILE", help="run the sandbox under cProfile and write its stats here")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the mix (default 3; median, min, max)")
    ap.add_argument("--name", default="sandbox-throughput",
                    help="results file benchmarks/results/<name>.json (default sandbox-throughput)")
    args = ap.parse_args()
    start()
    runs = []
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = start_sandbox(port, args.ues, apps_dir=args.apps, log=log, profile=args.profile)
    root = f"http://127.0.0.1:{port}"
    try:
        register_apps(root)
        request = urllib.request.Request(root + "/location/v2/queries/users", headers=HEADERS)
        users = json.load(urllib.request.urlopen(request, timeout=5))["userList"]["user"]
        ues = [u["address"] for u in users]
        client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = float("nan")
        print(f"sandbox_throughput: {len(ues)} UEs moving in real time, {os.cpu_count()} CPUs, load average "
              f"{load:.2f} at start, client {client}, {args.connections} connections, {args.duration:.0f} s per kind")

        def measure(paths, duration):
            if client == "wrk":
                return run_wrk(root, paths, duration, args.connections)
            return asyncio.run(python_load(root, paths, duration, args.connections))

        kinds = [] if args.kinds == "none" else [k.strip() for k in args.kinds.split(",") if k.strip()]
        print(f"{'kind':<20}{'weight':>7}{'requests/s':>12}{'p50':>10}{'p99':>10}{'non-2xx':>9}")
        for kind in kinds:
            rps, p50, p99, errors = measure(paths_of(kind, ues), args.duration)
            print(f"{kind:<20}{WEIGHTS[kind]:>7}{rps:>12.0f}{p50:>10}{p99:>10}{errors:>9}")
            runs.append({"kind": kind, "requests_per_s": round(rps, 1), "p50_ms": _ms(p50), "p99_ms": _ms(p99),
                         "non_2xx": errors, "seconds": args.duration})
        for _ in range(args.repeat):
            rps, p50, p99, errors = measure(mix_paths(ues), args.duration * 2)
            print(f"{'mix':<20}{sum(WEIGHTS.values()):>7}{rps:>12.0f}{p50:>10}{p99:>10}{errors:>9}")
            runs.append({"kind": "mix", "requests_per_s": round(rps, 1), "p50_ms": _ms(p50), "p99_ms": _ms(p99),
                         "non_2xx": errors, "seconds": args.duration * 2})
        print("  of which " + ", ".join(f"{k} {rps * w / sum(WEIGHTS.values()):.0f}" for k, w in WEIGHTS.items()))
        costs = {}
        if args.build_costs:
            costs = build_costs(args.apps, args.ues, ues)
            print("building an answer from scratch (cache miss, once per step and distinct query), median us: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in costs.items()))
        summary = {r["kind"]: {"requests_per_s": r["requests_per_s"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                               "non_2xx": r["non_2xx"]} for r in runs if r["kind"] != "mix"}
        mix = [r for r in runs if r["kind"] == "mix"]
        summary["mix"] = {key: summarize([r[key] for r in mix]) for key in ("requests_per_s", "p50_ms", "p99_ms")}
        summary["mix"]["non_2xx"] = sum(r["non_2xx"] for r in mix)
        summary["build_us"] = {k: round(v, 1) for k, v in costs.items()}
        print("results:", write_results(args.name, runs, summary, extra={
            "ues": len(ues), "client": client, "connections": args.connections, "duration_s": args.duration,
            "apps": os.path.relpath(args.apps, ROOT), "authenticated": bool(HEADERS), "weights": WEIGHTS}))
        try:
            print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        except OSError:
            pass
        print("target: >= 2000 requests/s for the mix")
        log.seek(0)
        errors = [line for line in log.read().decode(errors="replace").splitlines() if "ERROR" in line]
        if errors:
            print(f"the sandbox logged {len(errors)} error(s), e.g. {errors[0]}")
    finally:
        proc.send_signal(signal.SIGINT)  # a clean stop, so that a profile gets written
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


if __name__ == "__main__":
    main()
