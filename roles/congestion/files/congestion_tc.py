#!/usr/bin/env python3
"""Helper of the congestion role, run on a MEC host with ansible.builtin.script (python3, stdlib only).

  congestion_tc.py show [--interface IF] [--address ADDR]
      the backhaul interface (given, else the default route's, else the one carrying ADDR) and its
      shaping as JSON: root qdisc line, the HTB class 1:99 rate, the netem child; changes nothing.
  congestion_tc.py receive --port P --timeout S
      accept one TCP stream, count its bytes, print JSON {bytes, seconds} timed from the first byte
      to EOF (the receiving end's view).
  congestion_tc.py send --host H --port P --bytes N
      send N zero bytes, print JSON {bytes, seconds} timed from connect to close.
"""
import argparse
import json
import re
import socket
import subprocess
import sys
import time

ENV = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc=%s): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def _dev_of(line):
    m = re.search(r"\bdev (\S+)", line)
    return m.group(1) if m else None


def find_interface(address):
    """The default route's interface, else the one that carries ``address``."""
    for line in _run(["ip", "-o", "-4", "route", "show", "default"]).splitlines():
        dev = _dev_of(line)
        if dev:
            return dev
    if address:
        for line in _run(["ip", "-o", "-4", "addr", "show"]).splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[3].split("/")[0] == address:
                return fields[1]
    raise SystemExit("no default route and no interface carries %r: set congestion_interface" % address)


def show(interface):
    qdiscs = [line.strip() for line in _run(["tc", "qdisc", "show", "dev", interface]).splitlines() if line.strip()]
    root = next((q for q in qdiscs if re.match(r"qdisc \S+ \S+ root\b", q)), "")
    netem = next((q for q in qdiscs if re.match(r"qdisc netem 99: parent 1:99\b", q)), "")
    rate = ""
    if root.startswith("qdisc htb 1: "):
        cls = _run(["tc", "class", "show", "dev", interface, "classid", "1:99"])
        m = re.search(r"\brate (\S+)", cls)
        rate = m.group(1).lower() if m else ""
    delay = loss = ""
    if netem:
        m = re.search(r"\bdelay (\S+)", netem)
        delay = m.group(1) if m else ""
        m = re.search(r"\bloss (\S+)", netem)
        loss = m.group(1) if m else ""
    ours = root.startswith("qdisc htb 1: ") and "default 0x99" in root
    return {"interface": interface, "qdiscs": qdiscs, "root": root, "ours": ours, "rate": rate,
            "netem_delay": delay, "netem_loss": loss,
            "signature": "htb rate=%s delay=%s loss=%s" % (rate, delay, loss) if ours else "other: " + root}


def restore_argv(interface, root_line):
    """tc argv that puts a saved root qdisc line back (None: the kernel's default, nothing to add)."""
    m = re.match(r"qdisc (\S+) (\S+) root(?: refcnt \d+)?\s*(.*)$", root_line.strip())
    if not m or m.group(2) == "0:":
        return None
    kind, handle, options = m.group(1), m.group(2), m.group(3)
    options = re.sub(r"\blimit (\d+)p\b", r"limit \1", options)
    return ["tc", "qdisc", "add", "dev", interface, "root", "handle", handle, kind] + options.split()


def receive(port, timeout):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(timeout)
    conn, peer = srv.accept()
    conn.settimeout(timeout)
    total, first = 0, None
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        if first is None:
            first = time.monotonic()
        total += len(chunk)
    end = time.monotonic()
    conn.close()
    srv.close()
    return {"bytes": total, "seconds": round(end - (first or end), 6), "peer": peer[0]}


def send(host, port, count, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    block = b"\0" * (1 << 20)
    start = time.monotonic()
    left = count
    while left > 0:
        n = min(left, len(block))
        sock.sendall(block[:n])
        left -= n
    sock.shutdown(socket.SHUT_WR)
    sock.recv(1)  # the receiver closes after EOF
    end = time.monotonic()
    sock.close()
    return {"bytes": count, "seconds": round(end - start, 6)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("show")
    p.add_argument("--interface", default="")
    p.add_argument("--address", default="")
    p = sub.add_parser("restore-argv")
    p.add_argument("--interface", required=True)
    p.add_argument("--root", required=True)
    p = sub.add_parser("receive")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("send")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args(argv)
    if args.cmd == "show":
        out = show(args.interface or find_interface(args.address))
    elif args.cmd == "restore-argv":
        out = {"argv": restore_argv(args.interface, args.root)}
    elif args.cmd == "receive":
        out = receive(args.port, args.timeout)
    else:
        out = send(args.host, args.port, args.bytes, args.timeout)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
