"""The authenticated volume stream between the lab's hosts, with their own /usr/bin/python3: the target binds
its lab address only, drops a foreign peer (this machine) that connects first, and receives the source's
volume; the files arrive intact.

transport.py, volumes.py, fsutil.py and module_glue.py are copied to both hosts through `docker exec`, with a
docker_client.py holding only ``hostname()`` (the real one imports ansible.module_utils, which AnsiballZ
ships in a real run)."""
import json
import os
import socket
import subprocess
import time
import uuid

import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UTILS = os.path.join(ROOT, "plugins", "module_utils")
PORT = 47791

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


def test_stream_between_lab_hosts_drops_a_foreign_peer_and_delivers_the_volume(lab):
    source, source_address = lab["source"]
    target, target_address = lab["target"]
    work = "/var/tmp/mec-stream-%s" % uuid.uuid4().hex[:10]
    secret, run_id = os.urandom(32).hex(), "lab-stream-test"
    try:
        src_lib, dst_lib = install(source, work), install(target, work)
        docker_exec(source, ["sh", "-c", "mkdir -p %s/src/sub && head -c 3000000 /dev/urandom > %s/src/sub/blob && "
                             "echo 41 > %s/src/count && ln -s sub/blob %s/src/link" % ((work,) * 4)])
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
            sent = json.loads(docker_exec(source, ["/usr/bin/python3", work + "/sender.py", src_lib, secret, run_id,
                                                   target_address, str(PORT), work + "/src"], timeout=120))
            out, err = receiver.communicate(timeout=120)
        finally:
            if receiver.poll() is None:
                receiver.kill()
        assert receiver.returncode == 0, err.decode()[-3000:]
        received = json.loads(out)
        assert sent["answer"] == "OK" and received["members"] == 4
        assert [peer for peer, _reason in received["rejected"]] != [] and \
            all(peer != source_address for peer, _reason in received["rejected"])
        assert "%s:%d" % (target_address, PORT) in received["listening"]
        assert "0.0.0.0:%d" % PORT not in received["listening"] and "*:%d" % PORT not in received["listening"]
        sums = [docker_exec(host, ["sh", "-c", "cd %s/%s && sha256sum sub/blob count link && readlink link"
                                   % (work, sub)]) for host, sub in ((source, "src"), (target, "dest"))]
        assert sums[0] == sums[1]
    finally:
        for host in (source, target):
            subprocess.run(["docker", "exec", host, "rm", "-rf", work], capture_output=True, timeout=60)
