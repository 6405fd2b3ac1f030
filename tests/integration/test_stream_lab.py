"""The authenticated, encrypted volume stream between the lab's hosts, with their own /usr/bin/python3 (and
Debian's python3-cryptography, which the docker_engine role installs): the target binds its lab address only,
drops a foreign peer (this machine) that connects first, and receives the source's volume; the files arrive
intact. The target's link is captured on this machine (the host side of its veth, a port of the lab network's
bridge) while the stream runs: the bytes from the source hold the stream's hello (what protects it) and none of
the volume's plain text.

transport.py, volumes.py, fsutil.py and module_glue.py are copied to both hosts through `docker exec`, with a
docker_client.py holding only ``hostname()`` (the real one imports ansible.module_utils, which AnsiballZ
ships in a real run). Cost: about 5 s."""
import json
import os
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest

from labutil import lab_hosts

pytestmark = pytest.mark.lab

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UTILS = os.path.join(ROOT, "plugins", "module_utils")
PORT = 47791
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: a receive buffer past rmem_max (root)

RECEIVER = r'''
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.mec.migration.plugins.module_utils.transport import StreamReceiver
from ansible_collections.mec.migration.plugins.module_utils.volumes import extract_volumes_tar
lib, secret, run_id, bind, port, expected, dest = sys.argv[1:8]
with StreamReceiver(secret, run_id, bind, int(port), expected) as recv:
    listening = subprocess.run(["ss", "-Hltn", "sport = :%s" % port], capture_output=True, text=True).stdout
    open(dest + ".listening", "w").write(listening)
    reader = recv.accept_authenticated(time.monotonic() + 60)
    members = extract_volumes_tar(reader, {"data": dest}, stream=True)
    reader.read()
    recv.acknowledge(True, "OK")
    print(json.dumps({"members": members, "rejected": recv.rejected, "listening": listening}))
'''

SENDER = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.mec.migration.plugins.module_utils.transport import StreamSender
from ansible_collections.mec.migration.plugins.module_utils.volumes import write_volumes_tar
lib, secret, run_id, address, port, src = sys.argv[1:7]
sender = StreamSender(secret, run_id, address, int(port)).connect(time.monotonic() + 60)
write_volumes_tar(sender, {"data": src}, stream=True)
print(json.dumps({"answer": sender.close(time.monotonic() + 60), "bytes": sender.bytes_sent}))
'''

STUB_DOCKER_CLIENT = b'''import socket

LANG_C = dict(LANG="C", LC_ALL="C", LC_MESSAGES="C")


def hostname():
    return socket.gethostname()
'''


class LinkCapture(threading.Thread):
    """The TCP payload ``source`` sent to ``port`` on a link of this machine, as the wire carried it (AF_PACKET,
    root): segments kept by sequence number, so the stream can be put back together in order whatever the
    capture's timing."""

    def __init__(self, link, source, port):
        super().__init__(daemon=True)
        self.source = socket.inet_aton(source)
        self.first = None
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 * 1024 * 1024)
        self.sock.bind((link, 0))
        self.sock.settimeout(0.2)
        self.port = port
        self.segments = {}
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                frame = self.sock.recv(1 << 18)
            except socket.timeout:
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:  # IPv4, TCP
                continue
            ihl = (frame[14] & 0x0F) * 4
            total = struct.unpack(">H", frame[16:18])[0]
            tcp = 14 + ihl
            dport, seq = struct.unpack(">HI", frame[tcp + 2:tcp + 8])
            payload = frame[tcp + (frame[tcp + 12] >> 4) * 4:14 + total] if total else frame[tcp + 20:]
            if dport == self.port and frame[26:30] == self.source and payload:
                self.first = seq if self.first is None else self.first
                self.segments[seq] = max(payload, self.segments.get(seq, b""), key=len)

    def stop(self):
        self.stopping.set()
        self.join(5)
        self.sock.close()

    def stream(self):
        """The captured bytes in sequence order (from the first captured segment; gaps left out)."""
        out, nxt = bytearray(), None
        for seq in sorted(self.segments, key=lambda s: (s - self.first) % (1 << 32)):
            data = self.segments[seq]
            if nxt is not None and seq != nxt:
                skip = (nxt - seq) % (1 << 32)
                data = data[skip:] if skip < len(data) else b""
            out += data
            nxt = (seq + len(self.segments[seq])) % (1 << 32)
        return bytes(out)


def host_link(container, address):
    """The interface on this machine at the other end of ``container``'s link that holds ``address`` (the
    host side of its veth pair, a port of the lab network's bridge): every frame to and from that host."""
    (iface,) = [line.split()[1] for line in docker_exec(container, ["ip", "-o", "-4", "addr", "show"]).decode()
                .splitlines() if " %s/" % address in line]
    peer_index = int(docker_exec(container, ["cat", "/sys/class/net/%s/iflink" % iface]))
    return socket.if_indextoname(peer_index)


def docker_exec(host, argv, stdin=None, timeout=120):
    proc = subprocess.run(["docker", "exec", "-i", host] + argv, input=stdin, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout


def install(host, work):
    lib = work + "/lib"
    pkg = lib + "/ansible_collections/mec/migration/plugins/module_utils"
    files = {"%s/receiver.py" % work: RECEIVER.encode(), "%s/sender.py" % work: SENDER.encode(),
             pkg + "/docker_client.py": STUB_DOCKER_CLIENT}
    sub = lib
    for part in ("ansible_collections", "mec", "migration", "plugins", "module_utils"):
        sub += "/" + part
        files[sub + "/__init__.py"] = b""
    for name in ("transport.py", "volumes.py", "fsutil.py", "module_glue.py"):
        with open(os.path.join(UTILS, name), "rb") as fh:
            files["%s/%s" % (pkg, name)] = fh.read()
    for path, data in files.items():
        docker_exec(host, ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "put", path], stdin=data)
    return lib


def test_stream_between_lab_hosts_drops_a_foreign_peer_and_delivers_the_volume_encrypted(lab):
    hosts = lab_hosts()
    source, source_address = hosts["source"]
    target, target_address = hosts["target"]
    work = "/var/lib/mec-migration/test-stream-%s" % uuid.uuid4().hex[:10]
    secret, run_id = os.urandom(32).hex(), "lab-stream-test"
    marker = "MEC-PLAINTEXT-MARKER-%s" % uuid.uuid4().hex
    capture = LinkCapture(host_link(target, target_address), source_address, PORT)
    try:
        for host in (source, target):
            docker_exec(host, ["sh", "-c", 'mkdir -p -m 0700 /var/lib/mec-migration && mkdir -m 0700 "$1"', "mk",
                               work])
        src_lib, dst_lib = install(source, work), install(target, work)
        docker_exec(source, ["sh", "-c", "mkdir -p %s/src/sub && head -c 1000000 /dev/urandom > %s/src/sub/blob && "
                             "echo 41 > %s/src/count && ln -s sub/blob %s/src/link" % ((work,) * 4)])
        # a text file of the volume: its lines must not cross the wire in clear
        docker_exec(source, ["sh", "-c", 'for i in $(seq 4000); do echo "$2 line $i"; done > "$1/src/notes.txt"',
                             "notes", work, marker])
        docker_exec(target, ["mkdir", "-p", work + "/dest"])
        receiver = subprocess.Popen(["docker", "exec", target, "/usr/bin/python3", work + "/receiver.py", dst_lib,
                                     secret, run_id, target_address, str(PORT), source_address, work + "/dest"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while True:  # the receiver listens
                probe = subprocess.run(["docker", "exec", target, "test", "-s", work + "/dest.listening"])
                if probe.returncode == 0:
                    break
                assert receiver.poll() is None, receiver.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "the receiver did not listen within 30 s"
                time.sleep(0.1)
            # this machine (not the source) connects first and offers a hello: it is dropped unanswered
            foreign = socket.create_connection((target_address, PORT), timeout=10)
            foreign.sendall(b"MECSTRM1" + b"\0" * 32)
            try:
                assert foreign.recv(100) == b""
            except ConnectionResetError:
                pass
            foreign.close()
            capture.start()
            sent = json.loads(docker_exec(source, ["/usr/bin/python3", work + "/sender.py", src_lib, secret, run_id,
                                                   target_address, str(PORT), work + "/src"], timeout=120))
            out, err = receiver.communicate(timeout=120)
        finally:
            capture.stop()
            if receiver.poll() is None:
                receiver.kill()
        assert receiver.returncode == 0, err.decode()[-3000:]
        received = json.loads(out)
        assert sent["answer"] == "OK" and received["members"] == 5
        # on the wire: the source's hello says what protects the stream, then only ciphertext
        wire = capture.stream()
        assert wire.startswith(b"MECSTRM2\x01"), wire[:64]
        assert len(wire) >= sent["bytes"], (len(wire), sent["bytes"])  # the capture saw the whole stream
        assert marker.encode() not in wire and b"MEC-PLAINTEXT-MARKER" not in wire
        assert [peer for peer, _reason in received["rejected"]] != [] and \
            all(peer != source_address for peer, _reason in received["rejected"])
        assert "%s:%d" % (target_address, PORT) in received["listening"]
        assert "0.0.0.0:%d" % PORT not in received["listening"] and "*:%d" % PORT not in received["listening"]
        sums = [docker_exec(host, ["sh", "-c", "cd %s/%s && sha256sum sub/blob count link notes.txt && readlink link"
                                   % (work, sub)]) for host, sub in ((source, "src"), (target, "dest"))]
        assert sums[0] == sums[1]
    finally:
        for host in (source, target):
            subprocess.run(["docker", "exec", host, "rm", "-rf", work], capture_output=True, timeout=60)
