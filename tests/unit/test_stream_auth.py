"""The relocation's authenticated volume stream (transport.StreamSender / StreamReceiver) on loopback.

Each test runs a real receiver and a real sender (threads, 127.0.0.0/8 addresses); the hostile cases go
through a relay that changes what the sender sent, frame by frame.
"""
import io
import os
import select
import socket
import struct
import tarfile
import threading
import time

import pytest

from ansible_collections.mec.migration.plugins.module_utils import transport
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.transport import (
    StreamError, StreamReceiver, StreamSender, decode_stream_secret, new_stream_secret, normalize_transfer)
from ansible_collections.mec.migration.plugins.module_utils.volumes import extract_volumes_tar, write_volumes_tar

RUN = "20260101T000000Z-1"
SOURCE = "127.0.0.3"    # the sender binds this address: the receiver expects it
TARGET = "127.0.0.2"    # the receiver binds only this one
FOREIGN = "127.0.0.4"


def free_port(address=TARGET):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class Receiving(threading.Thread):
    """A receiver in a thread: accepts, reads everything, acknowledges; keeps what happened."""

    def __init__(self, secret, port, expected=SOURCE, deadline=10.0, consume=None, ack=True, run_id=RUN, **options):
        """``options``: the StreamReceiver's (``bind``, ``handshake_timeout``, ``max_pending``)."""
        super().__init__(daemon=True)
        self.receiver = StreamReceiver(secret, run_id, options.pop("bind", TARGET), port, expected, **options)
        self.receiver.listen()
        self.deadline = time.monotonic() + deadline
        self.consume = consume or (lambda reader: reader.read())
        self.ack = ack
        self.data = None
        self.chunks = []
        self.error = None

    def run(self):
        try:
            reader = self.receiver.accept_authenticated(self.deadline)
            self.data = self.consume(reader)
            if self.ack:
                self.receiver.acknowledge(True, "OK")
        except Exception as exc:  # kept for the test's assertions
            self.error = exc
            if self.receiver.conn is not None:
                self.receiver.acknowledge(False, str(exc))
        finally:
            self.receiver.close()


def closed_without_answer(sock):
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:  # closed with our hello unread
        return True


def hello(nonce=None, protection=transport.STREAM_PROTECTION_AES256GCM, magic=transport.STREAM_MAGIC):
    """A sender's first message."""
    return magic + bytes([protection]) + (os.urandom(transport.STREAM_NONCE_SIZE) if nonce is None else nonce)


def send(secret, port, payload, address=TARGET, source=SOURCE, run_id=RUN, frame_size=65536, deadline=10.0):
    sender = StreamSender(secret, run_id, address, port, source_address=source, frame_size=frame_size)
    sender.connect(time.monotonic() + deadline)
    sender.write(payload)
    return sender.close(time.monotonic() + deadline)


def test_round_trip_of_a_volume_tar(tmp_path):
    secret = new_stream_secret()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "count").write_text("41")
    (src / "sub" / "blob").write_bytes(os.urandom(300000))
    dest = tmp_path / "dest"
    dest.mkdir()
    port = free_port()
    recv = Receiving(secret, port,
                     consume=lambda r: (extract_volumes_tar(r, {"data": str(dest)}, stream=True), r.read()))
    recv.start()
    sender = StreamSender(secret, RUN, TARGET, port, source_address=SOURCE)
    sender.connect(time.monotonic() + 10)
    write_volumes_tar(sender, {"data": str(src)}, stream=True)
    assert sender.close(time.monotonic() + 10) == "OK"
    recv.join(10)
    assert recv.error is None
    members, rest = recv.data
    assert members == 3 and not rest.strip(b"\0")
    assert (dest / "count").read_text() == "41"
    assert (dest / "sub" / "blob").read_bytes() == (src / "sub" / "blob").read_bytes()


def test_receiver_binds_only_the_given_address():
    port = free_port()
    recv = StreamReceiver(new_stream_secret(), RUN, TARGET, port, SOURCE)
    try:
        assert recv.listen() == (TARGET, port)
        with pytest.raises(ConnectionRefusedError):  # the same port on another local address is not listening
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        recv.close()
    with pytest.raises(MigrationError, match="binds one address"):
        StreamReceiver(new_stream_secret(), RUN, "0.0.0.0", port, SOURCE)


def test_foreign_peer_first_is_dropped_and_the_source_gets_through():
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port)
    recv.start()
    # a foreign host connects first and would send a valid-looking hello
    foreign = socket.create_connection((TARGET, port), source_address=(FOREIGN, 0), timeout=5)
    foreign.sendall(hello(b"\0" * transport.STREAM_NONCE_SIZE))
    assert closed_without_answer(foreign)  # it learns nothing
    foreign.close()
    assert send(secret, port, b"payload" * 1000) == "OK"
    recv.join(10)
    assert recv.error is None and recv.data == b"payload" * 1000
    assert [peer for peer, _reason in recv.receiver.rejected] == [FOREIGN]


def test_peer_from_the_source_address_without_the_secret_is_dropped():
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port)
    recv.start()
    # right address, wrong secret: the sender sees a receiver proof it cannot verify and gives up at once
    t0 = time.monotonic()
    with pytest.raises(StreamError, match="did not prove"):
        send(new_stream_secret(), port, b"evil")
    assert time.monotonic() - t0 < 5
    # right address, forged answer to the challenge
    raw = socket.create_connection((TARGET, port), source_address=(SOURCE, 0), timeout=5)
    raw.sendall(hello())
    assert len(raw.recv(64, socket.MSG_WAITALL)) == 64  # nonce and the receiver's proof
    raw.sendall(os.urandom(32))
    assert closed_without_answer(raw)
    raw.close()
    assert send(secret, port, b"good") == "OK"
    recv.join(10)
    assert recv.error is None and recv.data == b"good"
    reasons = [reason for _peer, reason in recv.receiver.rejected]
    assert len(reasons) == 2 and any("failed the challenge" in r for r in reasons)  # in the order they ended


def test_wrong_secret_on_the_receiver_is_refused_by_the_sender():
    port = free_port()
    recv = Receiving(new_stream_secret(), port, deadline=3)
    recv.start()
    with pytest.raises(StreamError, match="did not prove that it knows this run's secret"):
        send(new_stream_secret(), port, b"x")
    recv.join(10)
    assert isinstance(recv.error, StreamError) and recv.data is None


def test_other_run_id_is_refused():
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port, deadline=3, run_id="other-run")
    recv.start()
    with pytest.raises(StreamError, match="did not prove"):
        send(secret, port, b"x")
    recv.join(10)
    assert recv.data is None


def test_sender_retries_until_the_receiver_listens():
    secret = new_stream_secret()
    port = free_port()
    started = {}

    def late_receiver():
        time.sleep(0.5)
        started["recv"] = Receiving(secret, port)
        started["recv"].start()

    threading.Thread(target=late_receiver, daemon=True).start()
    assert send(secret, port, b"late") == "OK"
    started["recv"].join(10)
    assert started["recv"].data == b"late"


def test_deadlines_without_a_peer():
    port = free_port()
    sender = StreamSender(new_stream_secret(), RUN, TARGET, port)
    t0 = time.monotonic()
    with pytest.raises(StreamError, match="before the deadline"):
        sender.connect(time.monotonic() + 0.5)
    assert time.monotonic() - t0 < 3
    with StreamReceiver(new_stream_secret(), RUN, TARGET, port, SOURCE) as recv:
        with pytest.raises(StreamError, match="No authenticated volume stream"):
            recv.accept_authenticated(time.monotonic() + 0.5)


class Relay(threading.Thread):
    """A man in the middle between the sender and the receiver (it connects from SOURCE, so that the
    receiver's address check passes): it forwards the handshake, then hands the sender's frames to
    ``tamper(frames) -> frames`` before forwarding them, and can stop before the end frame. ``wire`` keeps every
    byte it saw, both ways."""

    def __init__(self, target_port, tamper):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.tamper = tamper
        self.wire = []

    def run(self):
        down, _ = self.listener.accept()
        up = socket.create_connection((TARGET, self.target_port), source_address=(SOURCE, 0))
        threading.Thread(target=self._pipe, args=(up, down), daemon=True).start()
        up.sendall(self._exact(down, transport.STREAM_HELLO_SIZE))
        up.sendall(self._exact(down, transport.STREAM_MAC_SIZE))  # the sender's proof
        frames = []
        while True:
            header = self._exact(down, 13)
            if not header:
                break
            ftype, _seq, length = struct.unpack(">BQI", header)
            frames.append(header + self._exact(down, length + transport.STREAM_TAG_SIZE))
            if ftype == 2:
                break
        for frame in self.tamper(frames):
            up.sendall(frame)
        up.shutdown(socket.SHUT_WR)

    def _exact(self, sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                break
            buf += chunk
        self.wire.append(buf)
        return buf

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.wire.append(data)
                dst.sendall(data)
        except OSError:
            pass
        dst.close()


def run_tampered(tamper):
    """Send three 1000-byte frames through a tampering relay; return (receiver thread, what the sender saw,
    the bytes the receiver's reader handed on before it failed)."""
    secret = new_stream_secret()
    port = free_port()
    handed_on = []

    def consume(reader):
        while True:
            chunk = reader.read(100000)
            if not chunk:
                return b"".join(handed_on)
            handed_on.append(chunk)

    recv = Receiving(secret, port, consume=consume)
    recv.start()
    relay = Relay(port, tamper)
    relay.start()
    sender = StreamSender(secret, RUN, "127.0.0.1", relay.port, frame_size=1000)
    sender.connect(time.monotonic() + 10)
    sender.write(b"A" * 1000 + b"B" * 1000 + b"C" * 1000)
    try:
        outcome = sender.close(time.monotonic() + 10)
    except StreamError as exc:
        outcome = exc
    recv.join(10)
    return recv, outcome, b"".join(handed_on)


def flip(frame, offset):
    return frame[:offset] + bytes([frame[offset] ^ 0x01]) + frame[offset + 1:]


def test_untouched_relay_passes():
    recv, outcome, data = run_tampered(lambda frames: frames)
    assert recv.error is None and outcome == "OK" and data == ABC


ABC = b"A" * 1000 + b"B" * 1000 + b"C" * 1000


@pytest.mark.parametrize("case, tamper, message, handed_on", [
    ("flipped payload byte", lambda f: [f[0], flip(f[1], 13 + 500)] + f[2:], "failed its integrity check", ABC[:1000]),
    ("flipped MAC byte", lambda f: [f[0], flip(f[1], len(f[1]) - 1)] + f[2:], "failed its integrity check", ABC[:1000]),
    ("changed frame type", lambda f: [f[0], flip(f[1], 0)] + f[2:], "failed its integrity check", ABC[:1000]),
    ("changed sequence number", lambda f: [f[0], flip(f[1], 8)] + f[2:], "carries number 0", ABC[:1000]),
    ("replayed frame", lambda f: [f[0], f[0]] + f[1:], "came with number 0", ABC[:1000]),
    ("reordered frames", lambda f: [f[0], f[2], f[1]] + f[3:], "came with number 2", ABC[:1000]),
    ("dropped frame", lambda f: [f[0]] + f[2:], "came with number 2", ABC[:1000]),
    ("truncated before the end frame", lambda f: f[:-1], "ended early", ABC),
    ("truncated inside a frame", lambda f: [f[0], f[1][:600]], "ended early", ABC[:1000]),
    ("oversized length", lambda f: [f[0], f[1][:9] + struct.pack(">I", 1 << 30) + f[1][13:]], "Refused a frame",
     ABC[:1000]),
])
def test_tampered_stream_is_detected_and_nothing_unverified_is_handed_on(case, tamper, message, handed_on):
    recv, outcome, data = run_tampered(tamper)
    assert isinstance(recv.error, StreamError), case
    assert message in str(recv.error), (case, recv.error)
    assert data == handed_on  # only verified frames reached the reader's caller
    assert isinstance(outcome, StreamError)  # and the sender does not get an OK


def test_end_frame_with_wrong_count_is_refused():
    # the END frame is authenticated and carries the sender's byte count: a reader that missed data fails
    class Channel:
        def open(self, sock, what):
            return transport._FRAME_END, struct.pack(">Q", 4)

    reader = transport.StreamReader(None, Channel(), ("127.0.0.3", 1))
    reader.bytes_received = 5
    with pytest.raises(StreamError, match="counts 4 bytes, 5 arrived"):
        reader.read(10)


def test_receiver_refusal_reaches_the_sender_with_its_message():
    secret = new_stream_secret()
    port = free_port()

    def consume(reader):
        reader.read()
        raise MigrationError("Unsafe member in the volume stream: data/../x")

    recv = Receiving(secret, port, consume=consume)
    recv.start()
    with pytest.raises(StreamError, match="refused the volume stream: Unsafe member"):
        send(secret, port, b"x" * 10)
    recv.join(10)


def test_acknowledging_before_the_end_frame_is_refused():
    secret = new_stream_secret()
    port = free_port()
    early = {}

    def consume(reader):
        reader.read(1)
        with pytest.raises(StreamError, match="end frame has not been verified"):
            recv.receiver.acknowledge(True, "OK")
        early["refused"] = True
        return None

    recv = Receiving(secret, port, consume=consume, ack=False)
    recv.start()
    with pytest.raises(StreamError, match="refused the volume stream"):
        send(secret, port, b"x" * 10)
    recv.join(10)
    assert early == {"refused": True}


def test_reader_serves_tarfile_stream_mode_with_short_frames():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|") as tf:
        info = tarfile.TarInfo("f")
        info.size = 5000
        tf.addfile(info, io.BytesIO(b"z" * 5000))
    secret = new_stream_secret()
    port = free_port()

    def consume(reader):
        with tarfile.open(fileobj=reader, mode="r|") as tf:
            members = [(m.name, tf.extractfile(m).read()) for m in tf]
        assert not reader.read().strip(b"\0")  # the tar's padding, up to the end frame
        return members

    recv = Receiving(secret, port, consume=consume)
    recv.start()
    send(secret, port, buf.getvalue(), frame_size=333)
    recv.join(10)
    assert recv.error is None and recv.data == [("f", b"z" * 5000)]


def test_normalize_transfer_and_secret():
    assert normalize_transfer("stream") == ("stream", None)
    assert normalize_transfer("ssh") == ("ssh", None)
    name, deprecation = normalize_transfer("nc")
    assert name == "stream" and "deprecated" in deprecation
    with pytest.raises(MigrationError, match="valid: stream, ssh"):
        normalize_transfer("ftp")
    secret = new_stream_secret()
    assert len(secret) == 64 and decode_stream_secret(secret) == bytes.fromhex(secret)
    assert new_stream_secret() != secret
    for bad in ("", "abc", "zz" * 32, "00" * 16):
        with pytest.raises(MigrationError, match="32 random bytes"):
            decode_stream_secret(bad)


# --- what the stream protects: everything it carries is encrypted (AES-256-GCM), the handshake says so


def test_nothing_the_stream_carries_is_in_clear_on_the_wire():
    secret = new_stream_secret()
    port = free_port()
    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    payload = (marker + b" some volume bytes ") * 3000  # many frames, the marker in each
    recv = Receiving(secret, port)
    recv.start()
    relay = Relay(port, lambda frames: frames)
    relay.start()
    sender = StreamSender(secret, RUN, "127.0.0.1", relay.port, frame_size=4096)
    sender.connect(time.monotonic() + 10)
    sender.write(payload)
    assert sender.close(time.monotonic() + 10) == "OK"
    recv.join(10)
    assert recv.error is None and recv.data == payload
    wire = b"".join(relay.wire)
    assert len(wire) > len(payload)  # the relay saw the whole stream
    assert marker not in wire and marker[:12] not in wire
    assert wire[:transport.STREAM_HELLO_SIZE - transport.STREAM_NONCE_SIZE] == b"MECSTRM2\x01"  # said on the wire


@pytest.mark.parametrize("first, reason", [
    (hello(magic=b"MECSTRM1"), "unencrypted version 1 stream"),
    (hello(protection=0), "stream protection 0"),
    (hello(protection=7), "stream protection 7"),
])
def test_receiver_refuses_unencrypted_or_unknown_protection(first, reason):
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port)
    recv.start()
    raw = socket.create_connection((TARGET, port), source_address=(SOURCE, 0), timeout=5)
    raw.sendall(first)
    assert closed_without_answer(raw)
    raw.close()
    assert send(secret, port, b"good") == "OK"
    recv.join(10)
    assert [r for _peer, r in recv.receiver.rejected if reason in r], recv.receiver.rejected


def test_stream_refuses_to_start_without_the_crypto_library(monkeypatch):
    monkeypatch.setattr(transport, "HAS_CRYPTOGRAPHY", False)
    monkeypatch.setattr(transport, "CRYPTOGRAPHY_IMPORT_ERROR", "No module named 'cryptography'")
    for make in (lambda: StreamSender(new_stream_secret(), RUN, TARGET, 1),
                 lambda: StreamReceiver(new_stream_secret(), RUN, TARGET, 1, SOURCE)):
        with pytest.raises(MigrationError, match="python3-cryptography") as exc:
            make()
        assert "No module named 'cryptography'" in str(exc.value) and "transfer=ssh" in str(exc.value)


# --- the receiver under abuse


def drip(port, interval, stop, source=SOURCE):
    """A peer from the source's address that sends a valid-looking hello one byte at a time; returns
    (socket, thread, {"closed_at": when the receiver closed it})."""
    sock = socket.create_connection((TARGET, port), source_address=(source, 0), timeout=5)
    seen = {}

    def run():
        for byte in hello():
            if stop.is_set():
                return
            try:
                sock.send(bytes([byte]))
                readable, _w, _x = select.select([sock], [], [], interval)  # the receiver says nothing before
                if readable and sock.recv(100) == b"":                        # the hello: readable = closed
                    break
            except (OSError, ValueError):  # reset by the receiver, or closed by the test
                break
        seen["closed_at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return sock, thread, seen


def test_a_slow_peer_is_cut_at_its_overall_handshake_deadline():
    # one byte every 0.2 s: each recv() returns in time, the whole hello would take 8 s
    port = free_port()
    recv = Receiving(new_stream_secret(), port, deadline=8, handshake_timeout=1.0)
    recv.start()
    stop = threading.Event()
    t0 = time.monotonic()
    sock, thread, seen = drip(port, 0.2, stop)
    thread.join(8)
    stop.set()
    sock.close()
    assert "closed_at" in seen and seen["closed_at"] - t0 < 2.5, "the slow peer was held %.1f s" % (
        seen.get("closed_at", time.monotonic()) - t0)
    recv.join(10)
    assert [r for _peer, r in recv.receiver.rejected if "by the deadline" in r], recv.receiver.rejected


def test_silent_and_slow_peers_do_not_delay_the_real_sender():
    # six silent peers and a slow one from the source's address, then the sender: served at once
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port)  # default handshake deadline (10 s each)
    recv.start()
    silent = [socket.create_connection((TARGET, port), source_address=(SOURCE, 0), timeout=5) for _ in range(6)]
    stop = threading.Event()
    slow, _thread, _seen = drip(port, 0.3, stop)
    try:
        time.sleep(0.2)  # all of them accepted and pending
        t0 = time.monotonic()
        assert send(secret, port, b"real", deadline=9) == "OK"
        elapsed = time.monotonic() - t0
        recv.join(10)
        assert recv.error is None and recv.data == b"real"
        assert elapsed < 2.0, "the real sender waited %.1f s behind silent peers" % elapsed
        assert all(closed_without_answer(s) for s in silent)  # the losers were closed when the sender won
    finally:
        stop.set()
        for sock in silent + [slow]:
            sock.close()


def test_pending_handshakes_are_bounded():
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port, handshake_timeout=1.0, max_pending=2)
    recv.start()
    silent = [socket.create_connection((TARGET, port), source_address=(SOURCE, 0), timeout=5) for _ in range(3)]
    try:
        assert closed_without_answer(silent[2])  # the third is closed at once: two are pending
        # the sender is refused while both slots are held, retries, and gets in once they time out
        assert send(secret, port, b"late but there", deadline=8) == "OK"
        recv.join(10)
        assert recv.error is None and recv.data == b"late but there"
        reasons = [r for _peer, r in recv.receiver.rejected]
        assert "2 handshakes pending already" in reasons[0], reasons
        assert sum("by the deadline" in r for r in reasons) == 2, (recv.receiver.rejected_count, reasons)
    finally:
        for sock in silent:
            sock.close()


def test_the_rejected_list_is_bounded():
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port)
    recv.start()
    for _ in range(transport.STREAM_REJECTED_KEPT + 8):
        foreign = socket.create_connection((TARGET, port), source_address=(FOREIGN, 0), timeout=5)
        assert closed_without_answer(foreign)
        foreign.close()
    assert send(secret, port, b"x") == "OK"
    recv.join(10)
    assert recv.error is None
    assert len(recv.receiver.rejected) == transport.STREAM_REJECTED_KEPT
    assert recv.receiver.rejected_count == transport.STREAM_REJECTED_KEPT + 8


@pytest.mark.parametrize("seen, expected, same", [
    ("::ffff:127.0.0.3", "127.0.0.3", True),          # a dual-stack socket's view of an IPv4 peer
    ("127.0.0.3", "::ffff:127.0.0.3", True),
    ("2001:db8::1", "2001:DB8:0:0:0:0:0:1", True),
    ("fe80::1%eth0", "fe80::1", True),
    ("127.0.0.3", "127.0.0.30", False),               # a prefix of the text is not the address
    ("127.0.0.30", "127.0.0.3", False),
    ("::ffff:127.0.0.4", "127.0.0.3", False),
    ("not-an-address", "127.0.0.3", False),
])
def test_peer_addresses_are_compared_as_addresses(seen, expected, same):
    recv = StreamReceiver(new_stream_secret(), RUN, TARGET, 1, expected)
    assert recv.is_expected(seen) is same


def test_an_ipv4_source_reaches_a_dual_stack_receiver():
    # bound to an IPv4-mapped address, the receiver sees the source as ::ffff:127.0.0.3; the source address it
    # was given is 127.0.0.3
    secret = new_stream_secret()
    port = free_port()
    recv = Receiving(secret, port, deadline=5, bind="::ffff:" + TARGET)
    recv.start()
    assert send(secret, port, b"mapped", deadline=5) == "OK"
    recv.join(10)
    assert recv.error is None and recv.data == b"mapped" and recv.receiver.rejected == []


def test_the_source_may_be_named_by_host_name():
    recv = StreamReceiver(new_stream_secret(), RUN, TARGET, 1, "localhost")
    assert recv.is_expected("127.0.0.1")
    with pytest.raises(MigrationError, match="neither an IP address nor a name"):
        StreamReceiver(new_stream_secret(), RUN, TARGET, 1, "no-such-host.invalid")


def test_frames_are_standard_aes_256_gcm():
    # what the channel seals, cryptography's AESGCM class opens with the frame's header as associated data (and
    # the other way round): the stream is plain AES-256-GCM, nothing home-made
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key, payload = os.urandom(32), os.urandom(5000)
    channel = transport._Channel(key)
    channel.seal(transport._FRAME_DATA, b"first")
    frame = bytes(channel.seal(transport._FRAME_DATA, payload))
    header, sealed = frame[:13], frame[13:]
    assert struct.unpack(">BQI", header) == (transport._FRAME_DATA, 1, len(payload))
    assert AESGCM(key).decrypt(b"\0" * 4 + struct.pack(">Q", 1), sealed, header) == payload
    forged = AESGCM(key).encrypt(b"\0" * 4 + struct.pack(">Q", 0), b"from AESGCM", struct.pack(">BQI", 2, 0, 11))
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">BQI", 2, 0, 11) + forged)
        assert transport._Channel(key).open(b, "a test frame") == (2, b"from AESGCM")
