"""Issue #10: where the sandbox listens, where it may send notifications, and bodies that must get a
400 ProblemDetails (never a 500): nested too deeply, not JSON, too large, wrong content type."""

import asyncio
import ipaddress
import json
import socket

import pytest
import requests
from mec_sandbox.callbacks import CallbackPolicy, listen_address, parse_networks
from mec_sandbox.credentials import generate
from mec_sandbox.problems import MAX_BODY_BYTES, MAX_BODY_DEPTH
from mec_sandbox.spec import OPERATIONS
from sandbox_helpers import APPS, BASE, SandboxProcess

CAR = "10.100.0.1"


def problem(r, status=400):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on the port, from /proc/net/tcp{,6}."""
    found = set()
    for path, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _remote, state = line.split()[1:4]
            addr, hexport = local.split(":")
            if state != "0A" or int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


# ------------------------------------------------------------------ listen address

def _non_loopback_address() -> str | None:
    """The address this machine would use towards the outside, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # a UDP connect sends nothing
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_a_process_listens_on_loopback_only_by_default(tmp_path):
    import os
    import subprocess
    import sys
    import time
    from sandbox_helpers import free_port
    port = free_port()
    creds = tmp_path / "creds"
    generate(str(creds))
    proc = subprocess.Popen([sys.executable, "-m", "mec_sandbox", "--port", str(port), "--speed", "0",
                             "--auth-file", str(creds / "sandbox-auth.json")],
                            env=dict(os.environ, PYTHONPATH=APPS), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.1)
        assert _listening(port) == {"127.0.0.1"}
        assert requests.get(f"http://127.0.0.1:{port}/sandbox-ctrl/v1/clock", timeout=5).status_code == 401
        other = _non_loopback_address()
        if other:  # this machine's other address does not answer
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://{other}:{port}/sandbox-ctrl/v1/clock", timeout=5)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert "serving on 127.0.0.1:" in out and "callbacks allowed to 127.0.0.0/8, ::1/128" in out


def test_a_cidr_listen_address_is_this_machines_address_in_that_network():
    assert listen_address("127.0.0.1") == "127.0.0.1"
    assert listen_address("127.0.0.0/8") == "127.0.0.1"
    with pytest.raises(ValueError, match="no address in that network|no route"):
        listen_address("198.51.100.0/24")  # TEST-NET-2: documentation only, never a local network
    other = _non_loopback_address()
    if other:
        net = ipaddress.ip_network(f"{other}/24", strict=False)
        assert listen_address(str(net)) == other


def test_the_process_binds_the_address_a_cidr_names():
    sb = SandboxProcess("--host", "127.0.0.0/8")  # the helper's own --host comes first; the last one wins
    try:
        assert _listening(sb.port) == {"127.0.0.1"}
    finally:
        sb.stop()


# ------------------------------------------------------------------ callback networks

def test_callbacks_outside_the_allowed_networks_are_refused(sandbox, receiver):
    outside = [
        ("location/v2/subscriptions/zonalTraffic",
         {"zonalTrafficSubscription": {"callbackReference": {"notifyURL": "http://10.1.2.3:8080/cb"},
                                       "zoneId": "zone01"}}),
        ("location/v2/subscriptions/userTracking",
         {"userTrackingSubscription": {"callbackReference": {"notifyURL": "http://[2001:db8::1]/cb"},
                                       "address": CAR}}),
        ("rni/v2/subscriptions", {"subscriptionType": "CellChangeSubscription",
                                  "callbackReference": "http://169.254.169.254/latest/meta-data"}),
        ("amsi/v1/subscriptions", {"subscriptionType": "MobilityProcedureSubscription",
                                   "callbackReference": "http://[::ffff:8.8.8.8]:80/"}),
    ]
    for path, body in outside:
        detail = problem(sandbox.post(path, body))["detail"]
        assert "127.0.0.0/8, ::1/128" in detail, detail
    # a name is judged by what it resolves to
    detail = problem(sandbox.post("rni/v2/subscriptions", {
        "subscriptionType": "CellChangeSubscription", "callbackReference": "http://no-such-host.invalid/cb"}))["detail"]
    assert "does not resolve" in detail
    ok = sandbox.post("rni/v2/subscriptions", {"subscriptionType": "CellChangeSubscription",
                                               "callbackReference": f"http://localhost:{receiver.port}/cb"})
    assert ok.status_code == 201, ok.text
    # replacing a subscription is checked the same way, and a refused PUT leaves it as it was
    url = ok.json()["_links"]["self"]["href"]
    put = sandbox.http.put(url, json={"subscriptionType": "CellChangeSubscription",
                                      "callbackReference": "http://10.9.9.9/cb"}, timeout=5)
    problem(put)
    assert sandbox.http.get(url, timeout=5).json()["callbackReference"] == f"http://localhost:{receiver.port}/cb"
    assert sandbox.get("rni/v2/subscriptions").json()["_links"]["subscription"][0]["href"] == url


def test_configured_networks_replace_the_default(receiver):
    sb = SandboxProcess("--callback-networks", "10.0.0.0/8,192.168.7.0/24")
    try:
        detail = problem(sb.post("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
            "callbackReference": {"notifyURL": receiver.url()}, "address": CAR}}))["detail"]
        assert "10.0.0.0/8, 192.168.7.0/24" in detail and "127.0.0.1" in detail
        r = sb.post("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
            "callbackReference": {"notifyURL": "http://10.20.30.40:9/cb"}, "address": CAR}})
        assert r.status_code == 201, r.text
    finally:
        sb.stop()


def test_bad_callback_networks_stop_the_start():
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "mec_sandbox", "--callback-networks", "10.0.0.0/33"],
                         env=dict(os.environ, PYTHONPATH=APPS), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "10.0.0.0/33" in out.stderr


def test_delivery_resolves_names_only_inside_the_networks():
    async def run():
        policy = CallbackPolicy(parse_networks("10.0.0.0/8"))
        resolver = policy.resolver()
        try:
            with pytest.raises(OSError, match="no address inside the callback networks 10.0.0.0/8"):
                await resolver.resolve("localhost", 80)
            allowed = CallbackPolicy(parse_networks("127.0.0.0/8")).resolver()
            hosts = [r["host"] for r in await allowed.resolve("localhost", 80)]
            await allowed.close()
            assert hosts and all(h.startswith("127.") for h in hosts)
        finally:
            await resolver.close()
    asyncio.run(run())


# ------------------------------------------------------------------ bodies that are not what they should be

BODY_OPS = [op for op in OPERATIONS if op.method in ("POST", "PUT") and op.implemented]


def _concrete(path: str) -> str:
    return (path.replace("{subscriptionId}", "1").replace("{appMobilityServiceId}", "1")
            .lstrip("/"))


@pytest.mark.parametrize("op", BODY_OPS, ids=[f"{op.method} {op.path}" for op in BODY_OPS])
def test_every_body_taking_operation_answers_400_to_bad_bodies(sandbox, op):
    url = sandbox.url(_concrete(op.path))
    deep = "[" * 30_000 + "]" * 30_000  # under the size limit, far deeper than Python's recursion limit
    cases = [
        (deep.encode(), "application/json"),
        (('{"a":' * (MAX_BODY_DEPTH + 1) + "1" + "}" * (MAX_BODY_DEPTH + 1)).encode(), "application/json"),
        (b"{not json", "application/json"),
        (b'{"advanceBy": NaN}', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"a": 1}', "text/plain"),
        (b'{"a": 1}', ""),
        (json.dumps({"pad": "x" * (MAX_BODY_BYTES + 10)}).encode(), "application/json"),
    ]
    for data, ctype in cases:
        headers = {"Content-Type": ctype} if ctype else {}
        r = sandbox.http.request(op.method, url, data=data, headers=headers, timeout=30)
        # a resource that does not exist may answer 404 before its body is read; a 500 never
        expected = (400, 404) if "{" in op.path else (400,)
        assert r.status_code in expected, (op.path, data[:40], ctype, r.status_code, r.text)
        problem(r, r.status_code)


def test_bad_bodies_get_a_detail_that_says_what_is_wrong(sandbox):
    path = "rni/v2/subscriptions"

    def post(data, ctype="application/json"):
        return problem(sandbox.http.post(sandbox.url(path), data=data, headers={"Content-Type": ctype},
                                         timeout=30))["detail"]
    assert "nested more than 32 levels" in post(b"[" * 30_000 + b"]" * 30_000)
    assert "nested more than 32 levels" in post(('{"a":' * 40 + "1" + "}" * 40).encode())
    assert "larger than 65536 bytes" in post(b" " * (MAX_BODY_BYTES + 1))
    assert "must be application/json" in post(b"{}", "application/x-www-form-urlencoded")
    assert "not valid JSON" in post(b"{not json")
    assert "not UTF-8" in post(b"\xff\xfe{}")
    assert "NaN is not JSON" in post(b'{"x": NaN}')
    assert "must be a JSON object" in post(b"[]")
    # a body nested as deep as allowed is read and judged on its content
    ok_depth = {"subscriptionType": "CellChangeSubscription", "callbackReference": "http://127.0.0.1:9/cb",
                "filterCriteriaAssocHo": {"associateId": [{"type": 1, "value": CAR, "x": [[[[1]]]]}]}}
    assert sandbox.post(path, ok_depth).status_code == 201
    # the service is still there
    assert sandbox.get("location/v2/queries/zones").status_code == 200


def test_a_chunked_body_over_the_limit_is_refused(sandbox):
    def chunks():
        for _ in range(20):
            yield b" " * 8192
    r = sandbox.http.post(sandbox.url("rni/v2/subscriptions"), data=chunks(),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert "larger than" in problem(r)["detail"]


def test_paths_are_under_the_base(sandbox):
    assert sandbox.http.get(f"{sandbox.root}/location/v2/queries/zones", timeout=5).status_code == 404
    assert sandbox.get("location/v2/queries/zones").json()["zoneList"]["resourceURL"].startswith(
        f"http://127.0.0.1:{sandbox.port}{BASE}/")
