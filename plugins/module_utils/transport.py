# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Host-to-host transport of a migration: SSH options (with the control sockets in a checked root-only folder),
scp/rsync copies, remote commands, the relocation stream's connection (authenticated and encrypted)."""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import os
import queue
import re
import secrets
import select
import socket
import struct
import threading
import time

from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C, hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import PrivateDirError, dir_size, private_dir
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError as _exc:  # the stream refuses to start without it (require_stream_crypto)
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = False, str(_exc)
else:
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = True, None

# Root's SSH ControlMaster sockets: a folder only root can reach, checked (owner, mode, no link) on every use.
SSH_CONTROL_DIR = "/run/mec-migration/ssh"


DEFAULT_SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    # Every hop checks the peer's host key against the known_hosts of the user the module runs as
    # (root: /root/.ssh/known_hosts), where the ssh_peers role records each peer under its ansible_host.
    "-o", "StrictHostKeyChecking=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    # One master connection per run: pre-relocation opens it, relocation reuses it.
    "-o", "ControlMaster=auto",
    # %C: a hash of the connection's user, host and port (a short path, far below the socket path limit).
    "-o", "ControlPath=%s/%%C" % SSH_CONTROL_DIR,
    "-o", "ControlPersist=300",
]


def control_dirs(opts):
    """The folders of the ``ControlPath`` options in an ssh argument list (``none`` has none)."""
    folders = []
    for opt in opts:
        m = re.match(r"^(?:-o)?\s*(\w+)\s*(?:=|\s)\s*(.*?)\s*$", opt)  # Key=Value or Key Value, as ssh reads it
        if not m or m.group(1).lower() != "controlpath" or m.group(2).lower() == "none":
            continue
        value = m.group(2)
        folder = os.path.dirname(value)
        if "%" in folder or not os.path.isabs(folder):
            raise MigrationError("ssh option ControlPath=%s: the socket's folder must be a fixed absolute path "
                                 "(%% tokens only in the socket's name), so that it can be checked." % value)
        folders.append(folder)
    return folders


def ssh_base(module, ssh_options=None):
    """The ssh options of a hop; the folder of every ControlPath among them is made (0700) and checked (a real
    directory owned by this user, no group or other access) on every call: a folder that fails stops the run."""
    opts = list(DEFAULT_SSH_OPTIONS if ssh_options is None else ssh_options)
    for folder in control_dirs(opts):
        try:
            private_dir(folder)
        except PrivateDirError as exc:
            raise MigrationError("The SSH control socket folder is not safe on host %s, so no ssh connection was "
                                 "made: %s" % (hostname(), exc)) from exc
    return opts


def run_checked(module, argv, what):
    binary = module.get_bin_path(argv[0], required=True)
    rc, out, err = module.run_command([binary] + list(argv[1:]), environ_update=LANG_C)
    if rc != 0:
        raise MigrationError("%s failed on host %s (rc=%s): %s" % (what, hostname(), rc, (err or out).strip()),
                             rc=rc, stdout=out, stderr=err)
    return out


RSYNC_STATS = {
    "files_transferred": r"Number of regular files transferred: ([\d,]+)",
    "total_file_size": r"Total file size: ([\d,]+) bytes",
    "transferred_file_size": r"Total transferred file size: ([\d,]+) bytes",
    "literal_data": r"Literal data: ([\d,]+) bytes",
    "matched_data": r"Matched data: ([\d,]+) bytes",
    "bytes_sent": r"Total bytes sent: ([\d,]+)",
    "bytes_received": r"Total bytes received: ([\d,]+)",
}


def parse_rsync_stats(text):
    """The figures of ``rsync --stats`` as integers."""
    stats = {}
    for key, pattern in RSYNC_STATS.items():
        m = re.search(pattern, text)
        if m:
            stats[key] = int(m.group(1).replace(",", ""))
    return stats


def transfer(module, method, src, dest_host, dest_path, user="root", ssh_options=None, delete=True):
    """Copy ``src`` to ``user@dest_host:dest_path`` with scp or rsync (over ssh), host to host."""
    opts = ssh_base(module, ssh_options)
    remote = "%s@%s:%s" % (user, dest_host, dest_path)
    t0 = time.monotonic()
    stats = {}
    if method == "scp":
        run_checked(module, ["scp", "-q", "-r"] + opts + [src, remote], "scp of %s to %s" % (src, dest_host))
        size = dir_size(src) if os.path.isdir(src) else os.path.getsize(src)
        stats = dict(bytes_sent=size)
    elif method == "rsync":
        ssh_bin = module.get_bin_path("ssh", required=True)
        rsh = " ".join([ssh_bin] + opts)
        argv = ["rsync", "-a", "--stats", "-e", rsh]
        if delete:
            argv.append("--delete")
        out = run_checked(module, argv + [src, remote], "rsync of %s to %s" % (src, dest_host))
        stats = parse_rsync_stats(out)
    else:
        raise MigrationError("Unknown transfer method %s (valid: scp, rsync)." % method)
    return dict(method=method, duration=round(time.monotonic() - t0, 6), stats=stats,
                transferred_bytes=stats.get("bytes_sent", 0))


def ssh_command(module, dest_host, argv, user="root", ssh_options=None, what=None):
    """Run ``argv`` on ``dest_host`` over ssh (list argv; each word quoted for the remote shell)."""
    import shlex
    opts = ssh_base(module, ssh_options)
    return run_checked(module, ["ssh"] + opts + ["%s@%s" % (user, dest_host), " ".join(shlex.quote(a) for a in argv)],
                       what or "ssh %s %s" % (dest_host, argv[0]))


def wait_remote_ready(module, host, path, deadline, user="root", ssh_options=None):
    """Poll (over the run's shared ssh connection) until ``path`` exists on ``host``."""
    import shlex
    ssh_bin = module.get_bin_path("ssh", required=True)
    argv = [ssh_bin] + ssh_base(module, ssh_options) + ["%s@%s" % (user, host), "test -e %s" % shlex.quote(path)]
    while True:
        rc, _out, err = module.run_command(argv, environ_update=LANG_C)
        if rc == 0:
            return
        if rc == 255 or time.monotonic() > deadline:
            raise MigrationError("The target %s did not get ready for the relocation (%s): %s" % (
                host, path, (err or "timed out").strip()))
        time.sleep(0.02)

# ---------------------------------------------------------------------------------------------------------------
# The relocation's stream (transfer=stream): one TCP connection, mutually authenticated, every frame encrypted
# and authenticated with AES-256-GCM (the `cryptography` library; Debian: python3-cryptography).
#
# Handshake (the receiver drops at once any peer whose IP address is not the source's):
#   S -> R  MAGIC "MECSTRM2" (8) | protection (1) | nonce_s (32)
#   R -> S  nonce_r (32) | HMAC-SHA256(secret, "receiver" | protection | run_id | nonce_s | nonce_r)
#   S -> R  HMAC-SHA256(secret, "sender" | protection | run_id | nonce_s | nonce_r)
#   R -> S  READY frame (sealed like any frame, receiver -> sender direction)
# ``protection`` says on the wire what protects the frames; the only value is 1: AES-256-GCM, every frame
# encrypted and authenticated. Both proofs cover it, so a changed byte fails the handshake. A receiver refuses
# any other value and the old "MECSTRM1" (integrity only, in clear).
#
# Keys: one per direction, HKDF-SHA256 of the run's secret (32 random bytes the playbook makes per run and hands
# to both hosts over their SSH connections) with both nonces as salt and the direction, protection and run id as
# info: fresh keys for every connection, even within one run.
#
# Frames: type (1) | sequence (8) | length (4) | AES-256-GCM(key, nonce = 0^4 | sequence, plaintext = payload,
# associated data = type | sequence | length) (length + 16 bytes). The opener uses the sequence number it expects
# (not the one on the wire) for the nonce and the associated data, so a replayed, reordered or dropped frame fails
# to open, as does any changed byte. The sender's frames are DATA (everything the relocation sends: the checkpoint's
# delta, the volumes' tar) then one END (payload: the byte count); the receiver's are READY then one ACK (status
# byte + message). A frame is opened (verified and decrypted) before any of its bytes are handed on; a stream that
# ends before its END frame fails (truncation). In clear on the wire: the handshake's nonces and proofs, and each
# frame's type, number and length (so the sizes of what travels, not its content).
#
# The receiver serves handshakes concurrently (a thread per pending connection, at most STREAM_MAX_PENDING, each
# with one overall deadline): a silent or slow peer never delays the real sender; the first peer that
# authenticates wins, the others are closed.


STREAM_MAGIC = b"MECSTRM2"
STREAM_MAGIC_V1 = b"MECSTRM1"             # the former stream: HMAC frames, payload in clear (refused)
STREAM_PROTECTION_AES256GCM = 1
STREAM_PROTECTIONS = {STREAM_PROTECTION_AES256GCM: "aes-256-gcm"}
STREAM_NONCE_SIZE = 32
STREAM_SECRET_SIZE = 32
STREAM_MAC_SIZE = 32                      # the handshake's HMAC-SHA256 proofs
STREAM_TAG_SIZE = 16                      # each frame's GCM tag
STREAM_HELLO_SIZE = len(STREAM_MAGIC) + 1 + STREAM_NONCE_SIZE
STREAM_FRAME_SIZE = 1024 * 1024          # payload bytes per DATA frame (tarfile's stream writes are this size)
STREAM_MAX_PAYLOAD = STREAM_FRAME_SIZE    # the receiver refuses longer frames before reading them
STREAM_HANDSHAKE_TIMEOUT = 10.0           # seconds a connected peer has for the whole handshake
STREAM_MAX_PENDING = 8                    # handshakes the receiver serves at once; more connections are closed
STREAM_REJECTED_KEPT = 32                 # dropped peers the receiver lists (the latest; it counts them all)
_FRAME_HEADER = struct.Struct(">BQI")
_FRAME_DATA, _FRAME_END, _FRAME_READY, _FRAME_ACK = 1, 2, 3, 4
_FRAME_NAMES = {_FRAME_DATA: "DATA", _FRAME_END: "END", _FRAME_READY: "READY", _FRAME_ACK: "ACK"}

TRANSFERS = ("stream", "ssh")
TRANSFER_ALIASES = {"nc": "stream"}


class StreamError(MigrationError):
    """The stream failed: a peer was not authenticated, a frame did not verify, the stream was cut."""


class _ReceiverNotAuthentic(StreamError):
    """The peer the sender reached answered the challenge wrongly: no retry."""


def require_stream_crypto():
    """Raise MigrationError (what is missing, on which host, what to install) unless ``cryptography``'s AEAD
    is importable; the stream cannot run without it."""
    if not HAS_CRYPTOGRAPHY:
        raise MigrationError(
            "The relocation stream (transfer=stream) encrypts with Python's cryptography library, which is missing "
            "on host %s (%s). Install it (Debian/Ubuntu: apt-get install python3-cryptography; the "
            "mec.migration.docker_engine role installs it), or use transfer=ssh." % (hostname(),
                                                                                     CRYPTOGRAPHY_IMPORT_ERROR))


def normalize_transfer(value):
    """``(name, deprecation message or None)`` for a ``transfer`` option value; unknown values raise.

    ``nc`` is the old name of ``stream`` (which was never netcat, and is now authenticated and encrypted).
    """
    if value in TRANSFERS:
        return value, None
    if value in TRANSFER_ALIASES:
        new = TRANSFER_ALIASES[value]
        return new, ("transfer=%s is deprecated: it is called %s now (an authenticated, encrypted TCP stream); "
                     "%s is still accepted as an alias." % (value, new, value))
    raise MigrationError("Unknown transfer %r (valid: %s; deprecated alias: %s)." % (
        value, ", ".join(TRANSFERS), ", ".join(sorted(TRANSFER_ALIASES))))


def new_stream_secret():
    """A fresh per-run secret as 64 hex digits (32 random bytes)."""
    return secrets.token_hex(STREAM_SECRET_SIZE)


def decode_stream_secret(value):
    """The run's secret (64 hex digits, as the playbook hands it over) as 32 bytes."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        try:
            raw = bytes.fromhex((value or "").strip())
        except ValueError:
            raw = b""
    if len(raw) != STREAM_SECRET_SIZE:
        raise MigrationError("The stream secret must be %d random bytes written as %d hex digits (the playbook "
                             "makes one per run)." % (STREAM_SECRET_SIZE, 2 * STREAM_SECRET_SIZE))
    return raw


def peer_ip(text):
    """``text`` (an IPv4 or IPv6 address, with or without a ``%scope``) as an ip_address; an IPv4-mapped IPv6
    address (``::ffff:192.0.2.1``, what a dual-stack socket reports for an IPv4 peer) as its IPv4 address."""
    addr = ipaddress.ip_address(str(text).split("%", 1)[0])
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def expected_peer_ips(value):
    """The addresses a peer named ``value`` may come from: the address itself, or what a host name resolves to
    (resolved once, when the receiver is made)."""
    try:
        return frozenset([peer_ip(value)])
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(value, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise MigrationError("The stream's source address %r is neither an IP address nor a name host %s resolves: "
                             "%s" % (value, hostname(), exc)) from exc
    return frozenset(peer_ip(info[4][0]) for info in infos)


def _ctx(label, protection, run_id):
    rid = run_id.encode("utf-8")
    return b"mec.migration stream v2|" + label + b"|" + bytes([protection]) + struct.pack(">H", len(rid)) + rid


def _proof(secret, label, protection, run_id, nonce_s, nonce_r):
    return hmac.new(secret, _ctx(label, protection, run_id) + nonce_s + nonce_r, hashlib.sha256).digest()


def _keys(secret, protection, run_id, nonce_s, nonce_r):
    """(sender -> receiver key, receiver -> sender key) of one connection."""
    return tuple(HKDF(algorithm=SHA256(), length=32, salt=nonce_s + nonce_r,
                      info=_ctx(label, protection, run_id)).derive(secret)
                 for label in (b"key sender->receiver", b"key receiver->sender"))


def _recv_exact(sock, n, what, deadline=None):
    """``n`` bytes from ``sock``; with ``deadline`` (time.monotonic()) all of them by then, however the peer
    drips them (the socket's timeout is set to what is left before every read)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StreamError("Timed out waiting for %s (%d of %d bytes by the deadline)." % (what, got, n))
            sock.settimeout(remaining)
        try:
            k = sock.recv_into(view[got:], n - got)
        except socket.timeout:
            raise StreamError("Timed out waiting for %s (%d of %d bytes%s)." % (
                what, got, n, "" if deadline is None else " by the deadline")) from None
        except OSError as exc:
            raise StreamError("The connection failed while reading %s: %s" % (what, exc)) from exc
        if k == 0:
            raise StreamError("The stream ended early (%d of %d bytes of %s)." % (got, n, what))
        got += k
    return buf


def _nonce(seq):
    return b"\0\0\0\0" + struct.pack(">Q", seq)


class _Channel:
    """One direction's frame sealer or opener: its own AES-256-GCM key and sequence numbers.

    AES-GCM through ``cryptography``'s Cipher interface (``modes.GCM``) with ``update_into`` a buffer made for the
    frame: the same algorithm as its ``AESGCM`` class, which on Debian 12's cryptography 38 copies and allocates
    so much that it encrypts 1 MiB frames at a tenth of the speed. A frame's plain text is handed on only after
    ``finalize()`` verified its tag."""

    def __init__(self, key):
        self._key = key
        self.seq = 0

    def seal(self, ftype, payload):
        n = len(payload)
        frame = bytearray(_FRAME_HEADER.size + n + STREAM_TAG_SIZE + 15)  # update_into wants a block - 1 spare
        _FRAME_HEADER.pack_into(frame, 0, ftype, self.seq, n)
        enc = Cipher(algorithms.AES(self._key), modes.GCM(_nonce(self.seq))).encryptor()
        enc.authenticate_additional_data(bytes(frame[:_FRAME_HEADER.size]))
        end = _FRAME_HEADER.size + (enc.update_into(payload, memoryview(frame)[_FRAME_HEADER.size:]) if n else 0)
        enc.finalize()
        frame[end:end + STREAM_TAG_SIZE] = enc.tag
        del frame[end + STREAM_TAG_SIZE:]
        self.seq += 1
        return frame

    def open(self, sock, what, max_payload=STREAM_MAX_PAYLOAD, deadline=None):
        """Read one frame; return ``(type, payload)`` only once it opened (verified, decrypted) under the
        sequence number this direction expects."""
        header = _recv_exact(sock, _FRAME_HEADER.size, what, deadline)
        ftype, seq, length = _FRAME_HEADER.unpack(header)
        if length > max_payload:
            raise StreamError("Refused a frame of %d bytes in %s (at most %d): not a valid stream." % (
                length, what, max_payload))
        sealed = _recv_exact(sock, length + STREAM_TAG_SIZE, what, deadline)
        view = memoryview(sealed)
        payload = bytearray(length + 15)
        dec = Cipher(algorithms.AES(self._key),
                     modes.GCM(_nonce(self.seq), bytes(view[length:]), min_tag_length=STREAM_TAG_SIZE)).decryptor()
        dec.authenticate_additional_data(_FRAME_HEADER.pack(ftype, self.seq, length))
        got = dec.update_into(view[:length], payload) if length else 0
        try:
            dec.finalize()
        except InvalidTag:
            if seq != self.seq:
                raise StreamError("Frame %d of %s came with number %d (replayed, reordered or dropped frames): "
                                  "nothing of it was used." % (self.seq, what, seq)) from None
            raise StreamError("Frame %d of %s failed its integrity check (changed or forged data): nothing of it "
                              "was used." % (self.seq, what)) from None
        if seq != self.seq:  # the tag covers the expected number; the one on the wire was changed
            raise StreamError("Frame %d of %s carries number %d." % (self.seq, what, seq))
        del payload[got:]
        self.seq += 1
        return ftype, payload


class StreamSender:
    """The source's end: ``connect(deadline)`` (retries, handshake), then a file-like ``write()``;
    ``close()`` sends the authenticated end frame and waits for the receiver's authenticated answer.

    ``write_volumes_tar(sender, volumes, stream=True)`` writes into it directly.
    """

    protection = STREAM_PROTECTIONS[STREAM_PROTECTION_AES256GCM]

    def __init__(self, secret, run_id, address, port, source_address=None, frame_size=STREAM_FRAME_SIZE):
        require_stream_crypto()
        self._secret = decode_stream_secret(secret)
        self.run_id = run_id
        self.address = address
        self.port = port
        self.source_address = source_address
        self.frame_size = max(1, min(frame_size, STREAM_MAX_PAYLOAD))  # the receiver refuses longer frames
        self.sock = None
        self.bytes_sent = 0
        self.handshake_attempts = 0
        self._tx = self._rx = None
        self._buf = bytearray()
        self._closed = False
        self._queue = self._worker = self._error = None

    # -- connection
    def connect(self, deadline):
        """Connect and authenticate, retrying (refused, reset, dropped) until ``deadline`` (time.monotonic()).

        Fails at once when the peer answers with a proof that does not verify (wrong secret or run, or not
        our receiver)."""
        last = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StreamError("Could not open the authenticated volume stream to the target's receiver at "
                                  "%s:%s before the deadline: %s" % (self.address, self.port, last))
            sock = None
            try:
                sock = socket.create_connection((self.address, self.port), timeout=min(5.0, remaining),
                                                source_address=((self.source_address, 0) if self.source_address
                                                                else None))
                self.handshake_attempts += 1
                self._handshake(sock, min(time.monotonic() + STREAM_HANDSHAKE_TIMEOUT, deadline))
            except _ReceiverNotAuthentic:
                if sock is not None:
                    sock.close()
                raise
            except (OSError, StreamError) as exc:
                if sock is not None:
                    sock.close()
                last = exc
                time.sleep(0.005 if isinstance(exc, ConnectionRefusedError) else 0.05)
                continue
            # blocking operations (writes, the final answer) stay bounded by the relocation's deadline
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            self.sock = sock
            return self

    def _handshake(self, sock, deadline):
        protection = STREAM_PROTECTION_AES256GCM
        nonce_s = secrets.token_bytes(STREAM_NONCE_SIZE)
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.sendall(STREAM_MAGIC + bytes([protection]) + nonce_s)
        answer = _recv_exact(sock, STREAM_NONCE_SIZE + STREAM_MAC_SIZE, "the receiver's challenge answer", deadline)
        nonce_r, proof = bytes(answer[:STREAM_NONCE_SIZE]), bytes(answer[STREAM_NONCE_SIZE:])
        if not hmac.compare_digest(proof, _proof(self._secret, b"receiver", protection, self.run_id, nonce_s,
                                                 nonce_r)):
            raise _ReceiverNotAuthentic(
                "The receiver at %s:%s did not prove that it knows this run's secret (run %s): wrong secret or "
                "run id, or not our receiver. Nothing was sent." % (self.address, self.port, self.run_id))
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.sendall(_proof(self._secret, b"sender", protection, self.run_id, nonce_s, nonce_r))
        k_tx, k_rx = _keys(self._secret, protection, self.run_id, nonce_s, nonce_r)
        self._tx, self._rx = _Channel(k_tx), _Channel(k_rx)
        ftype, _payload = self._rx.open(sock, "the receiver's READY", deadline=deadline)
        if ftype != _FRAME_READY:
            raise StreamError("The receiver answered %s instead of READY." % _FRAME_NAMES.get(ftype, ftype))

    # -- file-like writing
    def writable(self):
        return True

    def write(self, data):
        if self.sock is None or self._closed:
            raise StreamError("The volume stream is not open.")
        n = len(data)
        if not self._buf and n == self.frame_size:
            self._send(_FRAME_DATA, data)
            return n
        self._buf += data
        while len(self._buf) >= self.frame_size:
            chunk = bytes(self._buf[:self.frame_size])
            del self._buf[:self.frame_size]
            self._send(_FRAME_DATA, chunk)
        return n

    def flush(self):
        if self._buf and self.sock is not None and not self._closed:
            chunk = bytes(self._buf)
            self._buf.clear()
            self._send(_FRAME_DATA, chunk)

    def _send(self, ftype, payload):
        """Queue a frame for the sending thread, which seals (HMAC) and sends it while the caller makes the
        next one (hashlib and the socket release the GIL)."""
        if self._worker is None:
            self._queue = queue.Queue(maxsize=4)
            self._worker = threading.Thread(target=self._send_frames, name="stream-send", daemon=True)
            self._worker.start()
        while True:
            if self._error is not None:
                self._raise_cut(self._error)
            try:
                self._queue.put((ftype, payload), timeout=0.2)
                break
            except queue.Full:
                continue
        if ftype == _FRAME_DATA:
            self.bytes_sent += len(payload)

    def _send_frames(self):
        while True:
            ftype, payload = self._queue.get()
            if ftype is None:  # aborted
                return
            try:
                self.sock.sendall(self._tx.seal(ftype, payload))
            except (OSError, AttributeError) as exc:  # AttributeError: aborted (sock is None)
                self._error = exc
                return
            if ftype == _FRAME_END:
                return

    def _raise_cut(self, exc):
        """The stream broke while sending: report the receiver's refusal if it sent one, else the cut."""
        try:
            self.sock.settimeout(2)
            ftype, payload = self._rx.open(self.sock, "the receiver's answer", max_payload=65536)
        except Exception:
            raise StreamError("The volume stream to %s:%s was cut: %s" % (self.address, self.port, exc)) from exc
        if ftype == _FRAME_ACK and payload and payload[0] == 0:
            raise StreamError("The target refused the volume stream: %s"
                              % bytes(payload[1:]).decode("utf-8", "replace"))
        raise StreamError("The volume stream to %s:%s was cut: %s" % (self.address, self.port, exc))

    def close(self, deadline=None):
        """Send the rest and the END frame, then wait (until ``deadline``) for the receiver's answer.

        Returns the receiver's message; raises StreamError if it refused the stream or did not answer."""
        if self._closed:
            return None
        try:
            self.flush()
            self._send(_FRAME_END, struct.pack(">Q", self.bytes_sent))
            self._worker.join(None if deadline is None else max(0.1, deadline - time.monotonic()))
            if self._error is not None:
                self._raise_cut(self._error)
            if self._worker.is_alive():
                raise StreamError("The volume stream to %s:%s did not drain before the deadline." % (
                    self.address, self.port))
            self.sock.settimeout(None if deadline is None else max(0.1, deadline - time.monotonic()))
            ftype, payload = self._rx.open(self.sock, "the receiver's acknowledgement", max_payload=65536)
            if ftype != _FRAME_ACK or not payload:
                raise StreamError("The receiver answered %s instead of an acknowledgement."
                                  % _FRAME_NAMES.get(ftype, ftype))
            ok, message = payload[0] == 1, bytes(payload[1:]).decode("utf-8", "replace")
            if not ok:
                raise StreamError("The target refused the volume stream: %s" % message)
            return message
        finally:
            self.abort()

    def abort(self):
        """Close the connection without an end frame (the receiver sees a truncated stream and fails)."""
        self._closed = True
        if self._worker is not None and self._worker.is_alive():
            try:
                self._queue.put_nowait((None, None))
            except queue.Full:
                pass  # the worker is blocked sending: closing the socket ends it
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


class StreamReader:
    """The verified bytes of one authenticated stream; ``read(n)`` serves ``tarfile.open(mode="r|")``.

    Returns b"" only after the authenticated END frame (whose byte count must match); a stream that ends
    before it raises StreamError."""

    def __init__(self, sock, channel, peer, prefetch=True):
        self._sock = sock
        self._rx = channel
        self.peer = peer
        self._buf = b""
        self._pos = 0
        self.eof = False
        self.bytes_received = 0
        # A thread receives and verifies the next frames while the caller extracts the current one (hashlib
        # and the socket release the GIL); only verified frames enter the queue.
        self._prefetch = prefetch
        self._queue = None
        self._stop = threading.Event()

    def readable(self):
        return True

    def _receive_frames(self):
        what = "the volume stream from %s" % self.peer[0]
        while not self._stop.is_set():
            try:
                item = self._rx.open(self._sock, what)
            except BaseException as exc:  # handed to the reading thread, which raises it
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException) or item[0] != _FRAME_DATA:
                return

    def _open_next(self):
        if not self._prefetch:
            return self._rx.open(self._sock, "the volume stream from %s" % self.peer[0])
        if self._queue is None:
            self._queue = queue.Queue(maxsize=4)
            threading.Thread(target=self._receive_frames, name="stream-prefetch", daemon=True).start()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self):
        """Stop the prefetching thread (the receiver's close() does it)."""
        self._stop.set()

    def _next_frame(self):
        ftype, payload = self._open_next()
        if ftype == _FRAME_DATA:
            self._buf, self._pos = bytes(payload), 0
            self.bytes_received += len(payload)
        elif ftype == _FRAME_END:
            (count,) = struct.unpack(">Q", bytes(payload)) if len(payload) == 8 else (-1,)
            if count != self.bytes_received:
                raise StreamError("The volume stream's end frame counts %d bytes, %d arrived." % (
                    count, self.bytes_received))
            self.eof = True
        else:
            raise StreamError("Unexpected %s frame in the volume stream." % _FRAME_NAMES.get(ftype, ftype))

    def wait_for_data(self):
        """Block until the first frame (after the source stopped the app) has arrived and verified."""
        while not self.eof and self._pos >= len(self._buf):
            self._next_frame()

    def read(self, n=-1):
        if n is None or n < 0:
            parts = [self._buf[self._pos:]]
            self._buf, self._pos = b"", 0
            while not self.eof:
                self._next_frame()
                parts.append(self._buf)
                self._buf, self._pos = b"", 0
            return b"".join(parts)
        while self._pos >= len(self._buf):
            if self.eof or n == 0:
                return b""
            self._next_frame()
        if self._pos == 0 and n >= len(self._buf):
            out, self._buf = self._buf, b""
            return out
        out = self._buf[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


class StreamReceiver:
    """The target's end: binds ``bind_address:port`` only, accepts peers from ``expected_peer`` only, and
    hands out the stream of the first peer that passes the mutual challenge-response.

    ``listen()`` (or the context manager) binds; ``accept_authenticated(deadline)`` returns a StreamReader;
    after reading, ``acknowledge(ok, message)`` answers the sender (authenticated). Handshakes run concurrently
    (at most ``max_pending``, each with one overall deadline of ``handshake_timeout`` seconds). Peers that were
    dropped are listed in ``rejected`` as ``(address, reason)`` (the latest STREAM_REJECTED_KEPT) and counted in
    ``rejected_count``: those refused, and those whose handshake had not ended when the wait did."""

    protection = STREAM_PROTECTIONS[STREAM_PROTECTION_AES256GCM]

    def __init__(self, secret, run_id, bind_address, port, expected_peer, handshake_timeout=STREAM_HANDSHAKE_TIMEOUT,
                 max_pending=STREAM_MAX_PENDING):
        require_stream_crypto()
        try:
            unspecified = peer_ip(bind_address).is_unspecified if bind_address else True
        except ValueError:
            unspecified = False  # a host name: bind() resolves it to one address
        if unspecified:
            raise MigrationError("The stream receiver binds one address (the target's address facing the source), "
                                 "not %r." % (bind_address,))
        self._secret = decode_stream_secret(secret)
        self.run_id = run_id
        self.bind_address = bind_address
        self.port = port
        self.expected_peer = expected_peer
        self.expected_ips = expected_peer_ips(expected_peer)
        self.handshake_timeout = handshake_timeout
        self.max_pending = max(1, max_pending)
        self._rejected = collections.deque(maxlen=STREAM_REJECTED_KEPT)
        self.rejected_count = 0
        self.server = None
        self.conn = None
        self.reader = None
        self._tx = None

    @property
    def rejected(self):
        """The latest dropped peers, oldest first, as ``(address, reason)``."""
        return list(self._rejected)

    def listen(self):
        family = socket.AF_INET6 if ":" in self.bind_address else socket.AF_INET
        srv = socket.socket(family, socket.SOCK_STREAM)
        try:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((self.bind_address, self.port))
            srv.listen(max(16, 2 * self.max_pending))
            srv.setblocking(False)
        except OSError as exc:
            srv.close()
            raise MigrationError("The volume receiver cannot listen on %s:%s on host %s: %s" % (
                self.bind_address, self.port, hostname(), exc)) from exc
        self.server = srv
        return srv.getsockname()[:2]

    def is_expected(self, address):
        """Whether ``address`` (as accept() reports it) is the source's, compared as addresses."""
        try:
            return peer_ip(address) in self.expected_ips
        except ValueError:
            return False

    def accept_authenticated(self, deadline):
        """The reader of the first peer from ``expected_peer`` that proves it knows the secret; other peers are
        closed and the wait goes on until ``deadline`` (time.monotonic()). Each peer's handshake runs in its own
        thread with its own overall deadline, so a silent or slow peer holds one slot, never the wait."""
        if self.server is None:
            self.listen()
        done = queue.Queue()
        wake_r, wake_w = socket.socketpair()
        state = dict(lock=threading.Lock(), over=False, wake=wake_w)
        pending = {}  # connection -> peer, while its handshake runs
        try:
            while True:
                while True:  # handshakes that ended: the first authenticated one wins
                    try:
                        conn, peer, outcome = done.get_nowait()
                    except queue.Empty:
                        break
                    pending.pop(conn, None)
                    if isinstance(outcome, Exception):
                        self._note(peer, str(outcome))
                        continue
                    rx, tx = outcome
                    try:
                        conn.settimeout(max(0.1, deadline - time.monotonic()))
                        conn.sendall(tx.seal(_FRAME_READY, b""))
                    except OSError as exc:
                        self._drop(conn, peer, "the connection failed after the handshake: %s" % exc)
                        continue
                    self.conn, self._tx = conn, tx
                    self.reader = StreamReader(conn, rx, peer)
                    return self.reader
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StreamError("No authenticated volume stream from %s arrived on %s:%s of host %s in time "
                                      "(did the source fail?)%s" % (self.expected_peer, self.bind_address, self.port,
                                                                    hostname(), self._rejected_note()))
                readable, _w, _x = select.select([self.server, wake_r], [], [], remaining)
                if wake_r in readable:
                    wake_r.recv(4096)
                if self.server not in readable:
                    continue
                try:
                    conn, peer = self.server.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                if not self.is_expected(peer[0]):
                    self._drop(conn, peer, "not the source address %s" % self.expected_peer)
                    continue
                if len(pending) >= self.max_pending:
                    self._drop(conn, peer, "%d handshakes pending already" % len(pending))
                    continue
                conn.setblocking(True)
                pending[conn] = peer
                threading.Thread(target=self._serve_handshake, name="stream-handshake", daemon=True,
                                 args=(conn, peer, time.monotonic() + self.handshake_timeout, done, state)).start()
        finally:
            with state["lock"]:
                state["over"] = True
            while True:  # ended but not collected: refused (noted), or authenticated too late; closed
                try:
                    conn, peer, outcome = done.get_nowait()
                except queue.Empty:
                    break
                pending.pop(conn, None)
                self._note(peer, str(outcome) if isinstance(outcome, Exception)
                           else "authenticated after the wait had ended")
                conn.close()
            for conn, peer in pending.items():  # their threads see the connection end and close it
                self._note(peer, "its handshake had not ended when the wait did")
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            wake_r.close()
            wake_w.close()

    def _serve_handshake(self, conn, peer, hs_deadline, done, state):
        """A handshake thread: the outcome (channels, or the exception) goes to ``done``; the connection is the
        caller's from then on, unless the wait is over (then it is closed here)."""
        try:
            outcome = self._handshake(conn, hs_deadline)
        except (OSError, StreamError) as exc:
            outcome = exc if isinstance(exc, StreamError) else StreamError(str(exc))
        with state["lock"]:
            if state["over"]:
                conn.close()
                return
            if isinstance(outcome, Exception):
                conn.close()
            done.put((conn, peer, outcome))
            try:
                state["wake"].send(b"\0")
            except OSError:
                pass

    def _note(self, peer, reason):
        self._rejected.append((peer[0], reason))
        self.rejected_count += 1

    def _drop(self, conn, peer, reason):
        self._note(peer, reason)
        try:
            conn.close()
        except OSError:
            pass

    def _rejected_note(self):
        if not self.rejected_count:
            return "."
        return "; dropped peers (%d): %s." % (self.rejected_count,
                                              "; ".join("%s (%s)" % r for r in self.rejected[-5:]))

    def _handshake(self, conn, deadline):
        """Serve one peer's handshake by ``deadline``; return its (rx, tx) channels or raise StreamError."""
        hello = bytes(_recv_exact(conn, STREAM_HELLO_SIZE, "the sender's hello", deadline))
        magic = hello[:len(STREAM_MAGIC)]
        if magic == STREAM_MAGIC_V1:
            raise StreamError("an unencrypted version 1 stream (the source runs an older mec.migration): refused")
        if magic != STREAM_MAGIC:
            raise StreamError("not a mec.migration stream")
        protection = hello[len(STREAM_MAGIC)]
        if protection not in STREAM_PROTECTIONS:
            raise StreamError("asked for stream protection %d; this receiver takes only %s" % (
                protection, ", ".join("%d (%s)" % p for p in sorted(STREAM_PROTECTIONS.items()))))
        nonce_s = hello[len(STREAM_MAGIC) + 1:]
        nonce_r = secrets.token_bytes(STREAM_NONCE_SIZE)
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        conn.sendall(nonce_r + _proof(self._secret, b"receiver", protection, self.run_id, nonce_s, nonce_r))
        proof = bytes(_recv_exact(conn, STREAM_MAC_SIZE, "the sender's challenge answer", deadline))
        if not hmac.compare_digest(proof, _proof(self._secret, b"sender", protection, self.run_id, nonce_s, nonce_r)):
            raise StreamError("failed the challenge (wrong secret or run id)")
        k_rx, k_tx = _keys(self._secret, protection, self.run_id, nonce_s, nonce_r)
        return _Channel(k_rx), _Channel(k_tx)

    def acknowledge(self, ok, message=""):
        """Answer the authenticated sender. ``ok=True`` is only sent after the verified END frame (otherwise
        StreamError, and the sender is told no). A failed answer (the sender may be gone) is not an error
        when ``ok`` is false."""
        if self.conn is None:
            raise StreamError("No authenticated sender to acknowledge.")
        if ok and not (self.reader is not None and self.reader.eof):
            self._send_ack(False, "the receiver acknowledged before the end of the stream")
            raise StreamError("Refusing to acknowledge a volume stream whose end frame has not been verified.")
        try:
            self._send_ack(ok, message)
        except OSError as exc:
            raise StreamError("Could not confirm the volume stream to the source: %s" % exc) from exc

    def _send_ack(self, ok, message):
        payload = (b"\x01" if ok else b"\x00") + (message or "").encode("utf-8", "replace")[:4096]
        try:
            self.conn.sendall(self._tx.seal(_FRAME_ACK, payload))
        except OSError:
            if ok:
                raise  # a refusal that does not arrive is no worse: the sender fails without an answer

    def close(self):
        if self.reader is not None:
            self.reader.stop()
        for sock in (self.conn, self.server):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self.conn = self.server = None

    def __enter__(self):
        self.listen()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
