"""The ssh_peers role's trust between the lab's hosts: each host's key is accepted on the other only from that
host's address and with `restrict` (no forwarding, pty or rc). The source reaches the target (scp, rsync, remote
commands work); the same key from any other address (here the controller) is refused, and the peer cannot open
a forwarding channel. About 3 s on the lab; read-only (nothing on the hosts changes)."""
import os
import subprocess

import pytest

from labtools import KEY, SSH_OPTS

pytestmark = pytest.mark.lab


def _peer_key_entries(host, peer):
    pub = peer.out(["cat", "/root/.ssh/id_ed25519.pub"]).split()
    lines = host.out(["cat", "/root/.ssh/authorized_keys"]).splitlines()
    return pub, [line for line in lines if (" %s %s" % (pub[0], pub[1])) in " " + line]


def test_each_peer_key_is_restricted_to_the_peers_address(lab):
    src, dst = lab
    for host, peer in ((dst, src), (src, dst)):
        pub, entries = _peer_key_entries(host, peer)
        assert entries == ['from="%s",restrict %s' % (peer.address, " ".join(pub))], entries


def test_the_source_reaches_the_target_with_its_key(lab):
    src, dst = lab
    out = src.out(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "root@" + dst.address,
                   "echo", "reached"])
    assert out == "reached"


def test_the_source_cannot_forward_through_the_target(lab):
    src, dst = lab
    res = src.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-W", "127.0.0.1:22",
                   "root@" + dst.address], check=False, timeout=30)
    assert res.returncode != 0 and "prohibited" in res.stderr, res.stderr


def test_the_source_key_from_another_address_is_refused(lab, tmp_path):
    src, dst = lab
    key = tmp_path / "source_key"
    key.write_text(src.out(["cat", "/root/.ssh/id_ed25519"]) + "\n")
    os.chmod(key, 0o600)
    # the same key as the source uses, from the controller's address on the lab network
    res = subprocess.run(["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes"] + SSH_OPTS
                         + ["root@" + dst.address, "true"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 255 and "Permission denied" in res.stderr, res.stderr
    # the controller's own lab key still works: the refusal is the key's from= option, not the network
    ok = subprocess.run(["ssh", "-i", KEY] + SSH_OPTS + ["root@" + dst.address, "true"], capture_output=True,
                        text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert ok.returncode == 0, ok.stderr
