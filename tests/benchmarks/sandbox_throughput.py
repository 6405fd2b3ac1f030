#!/usr/bin/env python3
"""Benchmark: requests/s of location/v2/queries/users with 100 UEs, on loopback.

Starts the sandbox (one process, real-time clock, 100 UEs moving) and loads it for a few seconds with
wrk when installed (apt-get install wrk), else with an aiohttp client. Prints the figures; asserts
nothing (speed targets are read, not tested).

    python tests/benchmarks/sandbox_throughput.py [--duration 5] [--connections 32] [--ues 100]
"""

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
APPS = os.path.join(ROOT, "apps")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sandbox(port, ues, extra=()):
    proc = subprocess.Popen([sys.executable, "-m", "mec_sandbox", "--host", "127.0.0.1", "--port", str(port),
                             "--ue-count", str(ues), "--speed", "1", *extra],
                            env=dict(os.environ, PYTHONPATH=APPS), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise SystemExit(f"sandbox failed to start: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("sandbox did not open its port")


async def python_load(url, duration, connections):
    import aiohttp
    done = 0
    errors = 0
    latencies = []
    stop = time.monotonic() + duration

    async def worker(session):
        nonlocal done, errors
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            async with session.get(url) as r:
                await r.read()
                if r.status == 200:
                    done += 1
                else:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.monotonic() - t0
    latencies.sort()
    return done / elapsed, errors, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--ues", type=int, default=100)
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    args = ap.parse_args()
    port = free_port()
    proc = start_sandbox(port, args.ues)
    url = f"http://127.0.0.1:{port}/location/v2/queries/users"
    try:
        import json
        import urllib.request
        body = urllib.request.urlopen(url, timeout=5).read()
        n_users = len(json.loads(body)["userList"]["user"])
        client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
        print(f"sandbox_throughput: GET {url.split(str(port))[1]} with {n_users} UEs ({len(body)} bytes/response), "
              f"{os.cpu_count()} CPUs, client {client}, {args.connections} connections, {args.duration:.0f} s")
        if client == "wrk":
            out = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration:.0f}s", "--latency", url],
                                 capture_output=True, text=True, check=False, timeout=args.duration + 30).stdout
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
            p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
            non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
            print(f"requests/s: {rps:.0f}  latency p50 {p50}  p99 {p99}  errors {non2xx.group(1) if non2xx else 0}")
        else:
            rps, errors, p50, p99 = asyncio.run(python_load(url, args.duration, args.connections))
            print(f"requests/s: {rps:.0f}  latency p50 {p50:.1f}ms  p99 {p99:.1f}ms  errors {errors}")
        print("target: >= 2000 requests/s")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
