#!/usr/bin/env python3
"""The relocation's volume transfer on loopback, with and without the stream's authentication and encryption.

What is timed is the relocation's ``volume_transfer`` step as the source measures it: from the first byte of
the volume tar to the target's answer, the target extracting (safely) as the bytes arrive. The receiver runs
in its own process (as on its own host); the connection (and, authenticated, the handshake) is made before
the clock starts, as the relocation does it before the source stops the app.

  raw:  a TCP stream that is only a tar, EOF = done, "OK" back (the former transfer=nc)
  auth: transport.StreamSender / StreamReceiver (challenge-response, AES-256-GCM frames, end frame, answer)

Between the lab hosts, with the stream before encryption as a third mode: tests/benchmarks/stream_encryption.py.

    .venv/bin/python tests/benchmarks/stream_auth.py [--runs 7] [--sizes 160k,50M]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".build" / "collections"))

from ansible_collections.mec.migration.plugins.module_utils import transport  # noqa: E402
from ansible_collections.mec.migration.plugins.module_utils.volumes import (  # noqa: E402
    STREAM_CHUNK, extract_volumes_tar, write_volumes_tar)

RUN_ID = "benchmark"
ADDRESS = "127.0.0.1"


def make_volume(path, size):
    """A volume of about ``size`` bytes: many small files, and large ones for large sizes."""
    path.mkdir(parents=True)
    small = min(size, 160 * 1024)
    for i in range(20):
        sub = path / ("dir%02d" % (i % 4))
        sub.mkdir(exist_ok=True)
        (sub / ("file%02d" % i)).write_bytes(os.urandom(small // 20))
    rest = size - small
    big = 10 * 1024 * 1024
    i = 0
    while rest > 0:
        (path / ("big%02d" % i)).write_bytes(os.urandom(min(big, rest)))
        rest -= big
        i += 1


def receive(mode, port, dest, secret, ready):
    volumes = {"data": dest}
    if mode == "raw":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((ADDRESS, port))
        srv.listen(1)
        ready.set()
        conn, _ = srv.accept()
        with conn.makefile("rb", buffering=STREAM_CHUNK) as rf:
            extract_volumes_tar(rf, volumes, stream=True)
            rf.read()
        conn.sendall(b"OK\n")
        conn.close()
        srv.close()
    else:
        with transport.StreamReceiver(secret, RUN_ID, ADDRESS, port, ADDRESS) as recv:
            ready.set()
            reader = recv.accept_authenticated(time.monotonic() + 60)
            extract_volumes_tar(reader, volumes, stream=True)
            reader.read()
            recv.acknowledge(True, "OK")


def one_run(mode, src, dest):
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        port = s.getsockname()[1]
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    secret = transport.new_stream_secret()
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=receive, args=(mode, port, dest, secret, ready))
    proc.start()
    ready.wait(30)
    t0 = time.perf_counter()
    if mode == "raw":
        sock = socket.create_connection((ADDRESS, port))
    else:
        sender = transport.StreamSender(secret, RUN_ID, ADDRESS, port)
        sender.connect(time.monotonic() + 30)
    connect = time.perf_counter() - t0
    t0 = time.perf_counter()
    if mode == "raw":
        with sock.makefile("wb", buffering=STREAM_CHUNK) as wf:
            write_volumes_tar(wf, {"data": str(src)}, stream=True)
        sock.shutdown(socket.SHUT_WR)
        ack = sock.makefile("rb").readline().strip()
        sock.close()
    else:
        write_volumes_tar(sender, {"data": str(src)}, stream=True)
        ack = sender.close(time.monotonic() + 60).encode()
    transfer = time.perf_counter() - t0
    proc.join(30)
    assert ack == b"OK" and proc.exitcode == 0, (ack, proc.exitcode)
    return connect, transfer


def parse_size(text):
    units = {"k": 1024, "M": 1024 * 1024}
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sizes", default="160k,50M")
    args = parser.parse_args()
    multiprocessing.set_start_method("fork")
    work = Path(tempfile.mkdtemp(prefix="stream-auth-bench-"))
    try:
        print("volume transfer on loopback (tar written, sent, extracted safely, answered), %d runs, medians"
              % args.runs)
        print("frame size %d bytes; load average %s" % (transport.STREAM_FRAME_SIZE, os.getloadavg()))
        print("%-8s %-5s %12s %12s %12s %10s" % ("size", "mode", "transfer ms", "min ms", "connect ms", "MB/s"))
        for label in args.sizes.split(","):
            size = parse_size(label)
            src = work / ("src-" + label)
            make_volume(src, size)
            medians = {}
            runs = {"raw": [], "auth": []}
            for _ in range(args.runs):  # alternated, so that the machine's load hits both alike
                for mode in runs:
                    runs[mode].append(one_run(mode, src, str(work / "dest")))
            for mode, results in runs.items():
                conn = statistics.median(r[0] for r in results)
                times = [r[1] for r in results]
                med = statistics.median(times)
                medians[mode] = med
                print("%-8s %-5s %12.2f %12.2f %12.2f %10.1f" % (label, mode, med * 1e3, min(times) * 1e3, conn * 1e3,
                                                                 size / med / 1e6))
            print("%-8s auth / raw = %.2f" % (label, medians["auth"] / medians["raw"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
