#!/usr/bin/env python3
"""The relocation stream's cost of encryption, between the two lab hosts (source -> target), at the
relocation's real sizes: a volume (160 KiB), a checkpoint delta (2.4 MiB) and 50 MiB.

Three ways to send the same tar (the volume's files, written as the relocation writes them), each run timed on
the source from the first byte to the target's answer, the target extracting safely as the bytes arrive; the
connection (and for the stream its handshake) is made before the clock starts, as the relocation makes it before
the source stops the app:

  aead:  the stream as it is (transport.py: AES-256-GCM frames, protocol MECSTRM2)
  hmac:  the stream before encryption (transport.py of commit BEFORE_ENCRYPTION: HMAC-SHA256 frames, payload in
         clear), installed beside it on both hosts as transport_v1.py
  raw:   a plain TCP connection carrying only the tar, "OK" back (neither authenticated nor encrypted)

Every host runs its own /usr/bin/python3 with Debian's python3-cryptography. The modes alternate within each
round, so that the machine's load falls on all of them alike. Nothing else may use the lab while it runs.

    .venv/bin/python tests/benchmarks/stream_encryption.py [--runs 9]
        [--sizes 160k,2400k,50M] [--name stream_encryption]

Prints the figures and writes them to benchmarks/results/stream_encryption.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from labutil import lab_hosts  # noqa: E402
from results_file import start, summarize, write_results  # noqa: E402

ROOT = HERE.parents[1]
UTILS = ROOT / "plugins" / "module_utils"
BEFORE_ENCRYPTION = "30942b8"  # the last commit whose transport.py sent HMAC frames in clear
PORT = 47793
SIZES = {"160k": 160 * 1024, "2400k": 2400 * 1024, "50M": 50 * 1024 * 1024}
MODES = ("raw", "hmac", "aead")

COMMON = r'''
import json, os, shutil, socket, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.mec.migration.plugins.module_utils import transport, transport_v1
from ansible_collections.mec.migration.plugins.module_utils.volumes import (
    STREAM_CHUNK, extract_volumes_tar, write_volumes_tar)
lib, mode, secret, run_id, address, port, path = sys.argv[1:8]
port = int(port)
module = {"hmac": transport_v1, "aead": transport}.get(mode)
'''

RECEIVER = COMMON + r'''
expected = sys.argv[8]
shutil.rmtree(path, ignore_errors=True)
os.makedirs(path, mode=0o700)
volumes = {"data": path}
if mode == "raw":
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((address, port))
    srv.listen(1)
    open(path + ".listening", "w").close()
    conn, _ = srv.accept()
    with conn.makefile("rb", buffering=STREAM_CHUNK) as rf:
        members = extract_volumes_tar(rf, volumes, stream=True)
        rf.read()
    conn.sendall(b"OK\n")
    conn.close()
    srv.close()
else:
    with module.StreamReceiver(secret, run_id, address, port, expected) as recv:
        open(path + ".listening", "w").close()
        reader = recv.accept_authenticated(time.monotonic() + 120)
        members = extract_volumes_tar(reader, volumes, stream=True)
        reader.read()
        recv.acknowledge(True, "OK")
os.unlink(path + ".listening")
print(json.dumps({"members": members}))
'''

SENDER = COMMON + r'''
deadline = time.monotonic() + 60
t0 = time.perf_counter()
if mode == "raw":
    while True:
        try:
            sock = socket.create_connection((address, port), timeout=5)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
else:
    sender = module.StreamSender(secret, run_id, address, port).connect(deadline)
connect = time.perf_counter() - t0
t0 = time.perf_counter()
if mode == "raw":
    with sock.makefile("wb", buffering=STREAM_CHUNK) as wf:
        write_volumes_tar(wf, {"data": path}, stream=True)
    sock.shutdown(socket.SHUT_WR)
    answer = sock.makefile("rb").readline().strip().decode()
    sock.close()
    sent = None
else:
    write_volumes_tar(sender, {"data": path}, stream=True)
    answer = sender.close(time.monotonic() + 120)
    sent = sender.bytes_sent
transfer = time.perf_counter() - t0
print(json.dumps({"answer": answer, "connect_s": connect, "transfer_s": transfer, "stream_bytes": sent}))
'''

STUB_DOCKER_CLIENT = b'''import socket

LANG_C = dict(LANG="C", LC_ALL="C", LC_MESSAGES="C")


def hostname():
    return socket.gethostname()
'''


def docker_exec(host, argv, stdin=None, timeout=300):
    proc = subprocess.run(["docker", "exec", "-i", host] + argv, input=stdin, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError("%s on %s failed: %s" % (argv[:3], host, proc.stderr.decode()[-2000:]))
    return proc.stdout


def install(host, work):
    """The module_utils the stream needs (and the transport before encryption, as transport_v1) under
    ``work``/lib on ``host``."""
    lib = work + "/lib"
    pkg = lib + "/ansible_collections/mec/migration/plugins/module_utils"
    old = subprocess.run(["git", "-C", str(ROOT), "show", "%s:plugins/module_utils/transport.py" % BEFORE_ENCRYPTION],
                         capture_output=True, check=True).stdout
    files = {work + "/receiver.py": RECEIVER.encode(), work + "/sender.py": SENDER.encode(),
             pkg + "/docker_client.py": STUB_DOCKER_CLIENT, pkg + "/transport_v1.py": old}
    sub = lib
    for part in ("ansible_collections", "mec", "migration", "plugins", "module_utils"):
        sub += "/" + part
        files[sub + "/__init__.py"] = b""
    for name in ("transport.py", "volumes.py", "fsutil.py", "module_glue.py"):
        files["%s/%s" % (pkg, name)] = (UTILS / name).read_bytes()
    for path, data in files.items():
        docker_exec(host, ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "put", path], stdin=data)
    return lib


def make_volume(host, path, size):
    """A volume of ``size`` bytes on ``host``: 20 small files (up to 160 KiB in all), the rest in files of at
    most 10 MiB; random content (nothing compresses)."""
    small = min(size, 160 * 1024)
    script = ['mkdir -p "$1"', 'for i in $(seq 0 19); do mkdir -p "$1/dir$((i %% 4))"; '
              'head -c %d /dev/urandom > "$1/dir$((i %% 4))/file$i"; done' % (small // 20)]
    rest, i = size - small, 0
    while rest > 0:
        script.append('head -c %d /dev/urandom > "$1/big%02d"' % (min(rest, 10 << 20), i))
        rest -= 10 << 20
        i += 1
    docker_exec(host, ["sh", "-c", " && ".join(script), "mkvol", path])


def one_run(hosts, libs, work, mode, label):
    (source, source_address), (target, target_address) = hosts
    secret, run_id = os.urandom(32).hex(), "bench-" + uuid.uuid4().hex[:8]
    dest = "%s/dest" % work
    receiver = subprocess.Popen(["docker", "exec", target, "/usr/bin/python3", work + "/receiver.py", libs[1], mode,
                                 secret, run_id, target_address, str(PORT), dest, source_address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["docker", "exec", target, "test", "-e", dest + ".listening"]).returncode != 0:
            if receiver.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the receiver did not listen: %s" % receiver.stderr.read().decode()[-2000:])
            time.sleep(0.02)
        sent = json.loads(docker_exec(source, ["/usr/bin/python3", work + "/sender.py", libs[0], mode, secret, run_id,
                                               target_address, str(PORT), "%s/src-%s" % (work, label)]))
        out, err = receiver.communicate(timeout=120)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    if receiver.returncode != 0 or sent["answer"] != "OK":
        raise RuntimeError("run %s %s failed: %s %s" % (mode, label, sent, err.decode()[-2000:]))
    return dict(sent, members=json.loads(out)["members"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--name", default="stream_encryption", help="results file benchmarks/results/NAME.json")
    args = parser.parse_args()
    found = lab_hosts()
    hosts = (tuple(found["source"]), tuple(found["target"]))
    work = "/var/lib/mec-migration/bench-stream-%s" % uuid.uuid4().hex[:8]
    labels = args.sizes.split(",")
    try:
        libs = []
        for host, _address in hosts:
            docker_exec(host, ["sh", "-c", 'mkdir -p -m 0700 /var/lib/mec-migration && mkdir -m 0700 "$1"', "mk",
                               work])
            libs.append(install(host, work))
        for label in labels:
            make_volume(hosts[0][0], "%s/src-%s" % (work, label), SIZES[label])
        start()
        runs = []
        for label in labels:
            for rnd in range(args.runs):
                for mode in MODES:
                    res = one_run(hosts, libs, work, mode, label)
                    runs.append(dict(size=label, size_bytes=SIZES[label], mode=mode, round=rnd,
                                     transfer_s=round(res["transfer_s"], 6), connect_s=round(res["connect_s"], 6),
                                     stream_bytes=res["stream_bytes"], members=res["members"],
                                     loadavg_1m=round(os.getloadavg()[0], 2)))
        summary = {}
        print("stream between %s and %s, %d runs per mode and size; seconds from the first byte to the answer"
              % (hosts[0][1], hosts[1][1], args.runs))
        print("%-6s %-5s %10s %10s %10s %8s" % ("size", "mode", "median", "min", "max", "MB/s"))
        for label in labels:
            per = {}
            for mode in MODES:
                per[mode] = summarize([r["transfer_s"] for r in runs if r["size"] == label and r["mode"] == mode])
                s = per[mode]
                print("%-6s %-5s %10.4f %10.4f %10.4f %8.1f" % (label, mode, s["median"], s["min"], s["max"],
                                                                SIZES[label] / s["median"] / 1e6))
            per["ratio_aead_to_hmac"] = round(per["aead"]["median"] / per["hmac"]["median"], 3)
            per["ratio_aead_to_raw"] = round(per["aead"]["median"] / per["raw"]["median"], 3)
            paired = [a["transfer_s"] / h["transfer_s"] for a, h in zip(
                [r for r in runs if r["size"] == label and r["mode"] == "aead"],
                [r for r in runs if r["size"] == label and r["mode"] == "hmac"])]
            per["ratio_aead_to_hmac_paired"] = summarize([round(x, 3) for x in paired])
            summary[label] = per
            print("%-6s aead/hmac = %.2f (paired per round: median %.2f, min %.2f, max %.2f); aead/raw = %.2f" % (
                label, per["ratio_aead_to_hmac"], statistics.median(paired), min(paired), max(paired),
                per["ratio_aead_to_raw"]))
        path = write_results(args.name, runs, summary, extra=dict(
            source=hosts[0][1], target=hosts[1][1], sizes=SIZES, runs_per_mode=args.runs,
            before_encryption_commit=BEFORE_ENCRYPTION, frame_size=1024 * 1024,
            timed="source: first byte of the tar to the target's answer (target extracts as bytes arrive)"))
        print("load average %s; results: %s" % (os.getloadavg(), path))
    finally:
        for host, _address in hosts:
            subprocess.run(["docker", "exec", host, "rm", "-rf", work], capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
