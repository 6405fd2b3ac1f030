#!/usr/bin/env python3
"""Benchmark: handover -> callback latency (p50/p99) with a loopback receiver.

Starts the sandbox in real time (speed 1) with many moving UEs, subscribes zonalTraffic on every zone
to a receiver in this process, and for every zonalPresenceNotification measures arrival time minus
the handover's instant (the notification's timestamp: at speed 1, simulated time t is wall time
start + t, and a handover happens at the simulation step where the UE's access point changes).
Optionally loads queries/users with wrk at the same time. Prints the figures; asserts nothing.

    python tests/benchmarks/sandbox_notify_latency.py [--duration 20] [--ues 200] [--with-load]
"""

import argparse
import asyncio
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_file import start, summarize, write_results
from sandbox_throughput import HEADERS, free_port, start_sandbox


async def run(args):
    from aiohttp import ClientSession, web

    arrivals = []

    async def receive(request):
        now = time.time()
        body = await request.json()
        note = body["zonalPresenceNotification"]
        ts = note["timestamp"]["seconds"] + note["timestamp"]["nanoSeconds"] / 1e9
        arrivals.append(now - ts)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/cb", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    rport = free_port()
    await web.TCPSite(runner, "127.0.0.1", rport).start()

    port = free_port()
    proc = start_sandbox(port, args.ues, ["--tick", str(args.tick)])
    load = None
    try:
        async with ClientSession(headers=HEADERS) as s:
            for zone in ("zone01", "zone02", "zone03", "zone04"):
                async with s.post(f"http://127.0.0.1:{port}/location/v2/subscriptions/zonalTraffic", json={
                        "zonalTrafficSubscription": {"callbackReference": {"notifyURL": f"http://127.0.0.1:{rport}/cb"},
                                                     "zoneId": zone}}) as r:
                    assert r.status == 201, await r.text()
        if args.with_load and shutil.which("wrk"):
            load = await asyncio.create_subprocess_exec(
                "wrk", "-t1", "-c16", f"-d{args.duration:.0f}s",
                *[a for k, v in HEADERS.items() for a in ("-H", f"{k}: {v}")],
                f"http://127.0.0.1:{port}/location/v2/queries/users",
                stdout=asyncio.subprocess.PIPE)
        await asyncio.sleep(args.duration)
    finally:
        if load:
            out = (await asyncio.wait_for(load.communicate(), 30))[0].decode()
            rps = [line for line in out.splitlines() if "Requests/sec" in line]
            print(f"concurrent load on queries/users: {rps[0].split(':')[1].strip() if rps else '?'} requests/s")
        proc.terminate()
        proc.wait(10)
        await runner.cleanup()
    return sorted(arrivals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--ues", type=int, default=200)
    ap.add_argument("--tick", type=float, default=0.01)
    ap.add_argument("--with-load", action="store_true", help="run wrk on queries/users at the same time")
    ap.add_argument("--name", default="", help="results file benchmarks/results/<name>.json (default "
                                               "sandbox-notify-latency, -with-load with --with-load)")
    args = ap.parse_args()
    start()
    lat = asyncio.run(run(args))
    print(f"sandbox_notify_latency: {args.ues} UEs, real time, tick {args.tick} s, {args.duration:.0f} s, "
          f"{os.cpu_count()} CPUs{', with load' if args.with_load else ''}")
    if not lat:
        print("no notification received")
        return
    ms = [x * 1000 for x in lat]
    print(f"notifications: {len(ms)}  latency p50 {ms[len(ms) // 2]:.1f} ms  p99 {ms[int(len(ms) * 0.99)]:.1f} ms  "
          f"max {ms[-1]:.1f} ms  min {ms[0]:.1f} ms")
    print("target: p99 <= 50 ms")
    name = args.name or "sandbox-notify-latency" + ("-with-load" if args.with_load else "")
    print("results:", write_results(name, [round(x, 3) for x in ms], {
        "latency_ms": summarize(ms), "p99_ms": round(ms[int(len(ms) * 0.99)], 3), "notifications": len(ms)},
        extra={"ues": args.ues, "tick_s": args.tick, "duration_s": args.duration, "with_load": args.with_load,
               "runs_are": "per notification, ms from the handover's simulated instant to the receiver"}))


if __name__ == "__main__":
    main()
