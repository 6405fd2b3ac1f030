# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Host-to-host transport of a migration: SSH options, scp/rsync copies, remote commands, the relocation
stream's connection."""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import re
import secrets
import socket
import struct
import threading
import time

from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C, hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError


DEFAULT_SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    # Every hop checks the peer's host key against the known_hosts of the user the module runs as
    # (root: /root/.ssh/known_hosts), where the ssh_peers role records each peer under its ansible_host.
    "-o", "StrictHostKeyChecking=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    # One master connection per run: pre-relocation opens it, relocation reuses it.
    "-o", "ControlMaster=auto",
    "-o", "ControlPath=/var/tmp/mec-migration/ssh-%r@%h:%p",
    "-o", "ControlPersist=300",
]


def ssh_base(module, ssh_options=None):
    opts = list(DEFAULT_SSH_OPTIONS if ssh_options is None else ssh_options)
    if any(o.startswith("ControlPath=") for o in opts):
        os.makedirs("/var/tmp/mec-migration", mode=0o700, exist_ok=True)
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
# The relocation's volume stream (transfer=stream): an authenticated, integrity-checked TCP stream.
#
# Handshake (the receiver first drops any peer whose IP is not the expected source address):
#   S -> R  MAGIC (8) | nonce_s (32)
#   R -> S  nonce_r (32) | HMAC(secret, "receiver" | run_id | nonce_s | nonce_r)
#   S -> R  HMAC(secret, "sender" | run_id | nonce_s | nonce_r)
#   R -> S  READY frame (authenticated like any frame, receiver -> sender direction)
# Frames: type (1) | sequence (8) | length (4) | payload | HMAC-SHA256(key, type | sequence | length | payload),
# with one key per direction derived from the secret, the run id and both nonces. The sender's frames are DATA
# then one END (payload: the byte count); the receiver's are READY then one ACK (status byte + message). A frame
# is verified before any of its bytes are handed on; a wrong sequence number (reordering, replay), a changed
# byte, a stream that ends before END (truncation) all fail the MAC or the framing.


STREAM_MAGIC = b"MECSTRM1"
STREAM_NONCE_SIZE = 32
STREAM_SECRET_SIZE = 32
STREAM_MAC_SIZE = 32
STREAM_FRAME_SIZE = 1024 * 1024          # payload bytes per DATA frame (tarfile's stream writes are this size)
STREAM_MAX_PAYLOAD = STREAM_FRAME_SIZE    # the receiver refuses longer frames before reading them
STREAM_HANDSHAKE_TIMEOUT = 10.0           # seconds a connected peer has for the whole handshake
_FRAME_HEADER = struct.Struct(">BQI")
_FRAME_DATA, _FRAME_END, _FRAME_READY, _FRAME_ACK = 1, 2, 3, 4
_FRAME_NAMES = {_FRAME_DATA: "DATA", _FRAME_END: "END", _FRAME_READY: "READY", _FRAME_ACK: "ACK"}

TRANSFERS = ("stream", "ssh")
TRANSFER_ALIASES = {"nc": "stream"}


class StreamError(MigrationError):
    """The volume stream failed: a peer was not authenticated, a frame did not verify, the stream was cut."""


class _ReceiverNotAuthentic(StreamError):
    """The peer the sender reached answered the challenge wrongly: no retry."""


def normalize_transfer(value):
    """``(name, deprecation message or None)`` for a ``transfer`` option value; unknown values raise.

    ``nc`` is the old name of ``stream`` (which was never netcat, and is now authenticated).
    """
    if value in TRANSFERS:
        return value, None
    if value in TRANSFER_ALIASES:
        new = TRANSFER_ALIASES[value]
        return new, ("transfer=%s is deprecated: it is called %s now (an authenticated TCP stream); "
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


def _ctx(label, run_id, nonce_s, nonce_r):
    rid = run_id.encode("utf-8")
    return b"mec.migration stream v1|" + label + b"|" + struct.pack(">H", len(rid)) + rid + nonce_s + nonce_r


def _proof(secret, label, run_id, nonce_s, nonce_r):
    return hmac.new(secret, _ctx(label, run_id, nonce_s, nonce_r), hashlib.sha256).digest()


def _recv_exact(sock, n, what):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], n - got)
        except socket.timeout:
            raise StreamError("Timed out waiting for %s." % what) from None
        except OSError as exc:
            raise StreamError("The connection failed while reading %s: %s" % (what, exc)) from exc
        if k == 0:
            raise StreamError("The stream ended early (%d of %d bytes of %s)." % (got, n, what))
        got += k
    return buf


class _Channel:
    """One direction's frame sealer or opener (its own key and sequence numbers)."""

    def __init__(self, key):
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.seq = 0

    def seal(self, ftype, payload):
        header = _FRAME_HEADER.pack(ftype, self.seq, len(payload))
        mac = self._mac.copy()
        mac.update(header)
        mac.update(payload)
        self.seq += 1
        return b"".join((header, payload, mac.digest()))

    def open(self, sock, what, max_payload=STREAM_MAX_PAYLOAD):
        """Read one frame; return ``(type, payload)`` only once its MAC and sequence number verify."""
        header = _recv_exact(sock, _FRAME_HEADER.size, what)
        ftype, seq, length = _FRAME_HEADER.unpack(header)
        if length > max_payload:
            raise StreamError("Refused a frame of %d bytes in %s (at most %d): not a valid stream." % (
                length, what, max_payload))
        payload = _recv_exact(sock, length, what) if length else bytearray()
        tag = _recv_exact(sock, STREAM_MAC_SIZE, what)
        mac = self._mac.copy()
        mac.update(_FRAME_HEADER.pack(ftype, self.seq, length))  # the number this frame must have
        mac.update(payload)
        if not hmac.compare_digest(mac.digest(), bytes(tag)):
            if seq != self.seq:
                raise StreamError("Frame %d of %s came with number %d (replayed, reordered or dropped frames): "
                                  "nothing of it was used." % (self.seq, what, seq))
            raise StreamError("Frame %d of %s failed its integrity check (changed or forged data): nothing of it "
                              "was used." % (self.seq, what))
        if seq != self.seq:  # the MAC covers the expected number; the one on the wire was changed
            raise StreamError("Frame %d of %s carries number %d." % (self.seq, what, seq))
        self.seq += 1
        return ftype, payload


def _keys(secret, run_id, nonce_s, nonce_r):
    return (_proof(secret, b"key sender->receiver", run_id, nonce_s, nonce_r),
            _proof(secret, b"key receiver->sender", run_id, nonce_s, nonce_r))


class StreamSender:
    """The source's end: ``connect(deadline)`` (retries, handshake), then a file-like ``write()``;
    ``close()`` sends the authenticated end frame and waits for the receiver's authenticated answer.

    ``write_volumes_tar(sender, volumes, stream=True)`` writes into it directly.
    """

    def __init__(self, secret, run_id, address, port, source_address=None, frame_size=STREAM_FRAME_SIZE):
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
                sock.settimeout(max(0.1, min(STREAM_HANDSHAKE_TIMEOUT, deadline - time.monotonic())))
                self._handshake(sock)
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
            sock.settimeout(max(1.0, deadline - time.monotonic()))
            self.sock = sock
            return self

    def _handshake(self, sock):
        nonce_s = secrets.token_bytes(STREAM_NONCE_SIZE)
        sock.sendall(STREAM_MAGIC + nonce_s)
        answer = _recv_exact(sock, STREAM_NONCE_SIZE + STREAM_MAC_SIZE, "the receiver's challenge answer")
        nonce_r, proof = bytes(answer[:STREAM_NONCE_SIZE]), bytes(answer[STREAM_NONCE_SIZE:])
        if not hmac.compare_digest(proof, _proof(self._secret, b"receiver", self.run_id, nonce_s, nonce_r)):
            raise _ReceiverNotAuthentic(
                "The receiver at %s:%s did not prove that it knows this run's secret (run %s): wrong secret or "
                "run id, or not our receiver. Nothing was sent." % (self.address, self.port, self.run_id))
        sock.sendall(_proof(self._secret, b"sender", self.run_id, nonce_s, nonce_r))
        k_tx, k_rx = _keys(self._secret, self.run_id, nonce_s, nonce_r)
        self._tx, self._rx = _Channel(k_tx), _Channel(k_rx)
        ftype, _payload = self._rx.open(sock, "the receiver's READY")
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
    after reading, ``acknowledge(ok, message)`` answers the sender (authenticated). Peers that were dropped are
    listed in ``rejected`` as ``(address, reason)``."""

    def __init__(self, secret, run_id, bind_address, port, expected_peer, handshake_timeout=STREAM_HANDSHAKE_TIMEOUT):
        if not bind_address or bind_address in ("0.0.0.0", "::"):
            raise MigrationError("The stream receiver binds one address (the target's address facing the source), "
                                 "not %r." % (bind_address,))
        self._secret = decode_stream_secret(secret)
        self.run_id = run_id
        self.bind_address = bind_address
        self.port = port
        self.expected_peer = expected_peer
        self.handshake_timeout = handshake_timeout
        self.rejected = []
        self.server = None
        self.conn = None
        self.reader = None
        self._tx = None

    def listen(self):
        family = socket.AF_INET6 if ":" in self.bind_address else socket.AF_INET
        srv = socket.socket(family, socket.SOCK_STREAM)
        try:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((self.bind_address, self.port))
            srv.listen(8)
        except OSError as exc:
            srv.close()
            raise MigrationError("The volume receiver cannot listen on %s:%s on host %s: %s" % (
                self.bind_address, self.port, hostname(), exc)) from exc
        self.server = srv
        return srv.getsockname()

    def accept_authenticated(self, deadline):
        """The reader of the first peer from ``expected_peer`` that proves it knows the secret; other peers are
        closed and the wait goes on until ``deadline`` (time.monotonic())."""
        if self.server is None:
            self.listen()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StreamError("No authenticated volume stream from %s arrived on %s:%s of host %s in time (did "
                                  "the source fail?)%s" % (self.expected_peer, self.bind_address, self.port, hostname(),
                                                           self._rejected_note()))
            self.server.settimeout(remaining)
            try:
                conn, peer = self.server.accept()
            except socket.timeout:
                continue
            if peer[0] != self.expected_peer:
                self._drop(conn, peer, "not the source address %s" % self.expected_peer)
                continue
            try:
                conn.settimeout(max(0.1, min(self.handshake_timeout, deadline - time.monotonic())))
                rx = self._handshake(conn)
            except (OSError, StreamError) as exc:
                self._drop(conn, peer, str(exc))
                continue
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            self.conn = conn
            self.reader = StreamReader(conn, rx, peer)
            return self.reader

    def _drop(self, conn, peer, reason):
        self.rejected.append((peer[0], reason))
        try:
            conn.close()
        except OSError:
            pass

    def _rejected_note(self):
        if not self.rejected:
            return "."
        return "; dropped peers: %s." % "; ".join("%s (%s)" % r for r in self.rejected[-5:])

    def _handshake(self, conn):
        hello = _recv_exact(conn, len(STREAM_MAGIC) + STREAM_NONCE_SIZE, "the sender's hello")
        if bytes(hello[:len(STREAM_MAGIC)]) != STREAM_MAGIC:
            raise StreamError("not a mec.migration stream")
        nonce_s = bytes(hello[len(STREAM_MAGIC):])
        nonce_r = secrets.token_bytes(STREAM_NONCE_SIZE)
        conn.sendall(nonce_r + _proof(self._secret, b"receiver", self.run_id, nonce_s, nonce_r))
        proof = bytes(_recv_exact(conn, STREAM_MAC_SIZE, "the sender's challenge answer"))
        if not hmac.compare_digest(proof, _proof(self._secret, b"sender", self.run_id, nonce_s, nonce_r)):
            raise StreamError("failed the challenge (wrong secret or run id)")
        k_rx, k_tx = _keys(self._secret, self.run_id, nonce_s, nonce_r)
        self._tx = _Channel(k_tx)
        conn.sendall(self._tx.seal(_FRAME_READY, b""))
        return _Channel(k_rx)

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
