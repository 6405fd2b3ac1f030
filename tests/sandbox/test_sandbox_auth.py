"""Issue #18, item 5: the sandbox as a real MEC platform would behave.

Every route needs a bearer token from the OAuth 2.0 client credentials grant (ETSI GS MEC 009), with the
scope of the operation; callbacks are never redirected; https callbacks are delivered only to a
certificate the configured CA signed. Against a real sandbox process and real HTTP(S) servers on loopback.
"""

import base64
import json
import os
import time

import pytest
import requests
from mec_sandbox.__main__ import make_sandbox, parse_args
from mec_sandbox.auth import Authority
from mec_sandbox.credentials import CredentialsError, TokenClient, generate
from mec_sandbox.server import build_app
from sandbox_helpers import BASE, Receiver, SandboxProcess
from tlsutil import make_pki, server_context

CAR = "10.100.0.1"


def app_routes() -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the application the sandbox serves (not a copy of the
    table: a route added to build_app in any way is in this list)."""
    sb = make_sandbox(parse_args(["--base-path", BASE, "--speed", "0"]))
    authority = Authority.from_config({"signing_key": "00" * 32, "clients": {
        "x": {"secret_sha256": "0" * 64, "scopes": ["read"]}}})
    app = build_app(sb, authority)
    mep = sorted(sb.meps)[0]
    out = []
    for route in app.router.routes():
        path = route.resource.canonical
        for name, value in (("{mep}", mep), ("{zoneId}", "zone01"), ("{accessPointId}", "4g-macro-cell-1"),
                            ("{subscriptionId}", "1"), ("{appMobilityServiceId}", "1")):
            path = path.replace(name, value)
        assert "{" not in path, f"a placeholder this test does not know: {path}; add a value above"
        out.append((route.method, path))
    return out


ROUTES = app_routes()
TOKEN_ROUTE = ("POST", f"{BASE}/oauth/token")


def test_the_route_list_is_the_whole_api():
    # every ETSI operation, its MEP-scoped twin, the control routes, the OpenAPI document, the token endpoint
    assert len(ROUTES) > 100
    assert TOKEN_ROUTE in ROUTES
    assert ("POST", f"{BASE}/sandbox-ctrl/v1/clock") in ROUTES
    assert ("GET", f"{BASE}/location/v2/subscriptions/zonalTraffic") in ROUTES


def _foreign_token() -> str:
    """A well-formed token for mec-control with every scope, signed by another key."""
    from mec_sandbox.auth import secret_hash
    other = Authority.from_config({"signing_key": os.urandom(32).hex(), "clients": {
        "mec-control": {"secret_sha256": secret_hash("s"), "scopes": ["read", "subscribe", "control"]}}})
    return other.issue(other.clients["mec-control"], None)["access_token"]


def _challenge(r, error=None):
    assert r.status_code == 401, (r.request.method, r.request.url, r.status_code, r.text[:200])
    header = r.headers.get("WWW-Authenticate", "")
    assert header.startswith('Bearer realm="mec_sandbox"'), header
    if error:
        assert f'error="{error}"' in header, header
    return header


def test_every_route_refuses_a_request_without_a_valid_token(sandbox):
    real = sandbox.client("mec-control").token()
    head, payload, signature = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_payload = base64.urlsafe_b64encode(
        json.dumps(dict(claims, sub="mec-control", scope="read subscribe control", exp=claims["exp"] + 86400))
        .encode()).rstrip(b"=").decode()
    wrong = {
        "garbage": "Bearer not-a-token",
        "another sandbox's": f"Bearer {_foreign_token()}",
        "changed payload": f"Bearer {head}.{forged_payload}.{signature}",
        "bad signature": f"Bearer {head}.{payload}.{signature[:-4]}AAAA",
    }
    for method, path in ROUTES:
        if (method, path) == TOKEN_ROUTE:
            continue
        url = sandbox.root + path
        _challenge(requests.request(method, url, json={}, timeout=5))
        _challenge(requests.request(method, url, json={}, headers={"Authorization": f"Basic {real}"}, timeout=5),
                   "invalid_request")
        for kind, header in wrong.items():
            r = requests.request(method, url, json={}, headers={"Authorization": header}, timeout=5)
            assert "invalid_token" in _challenge(r, "invalid_token"), kind
    # the real token opens them (a sample, the rest is the other test files' business)
    ok = requests.get(sandbox.url("location/v2/subscriptions/zonalTraffic"),
                      headers={"Authorization": f"Bearer {real}"}, timeout=5)
    assert ok.status_code == 200


def test_scopes_separate_reading_subscribing_and_control(sandbox, receiver):
    def call(client, method, path, body=None):
        return requests.request(method, sandbox.url(path), json=body, headers=client.headers(), timeout=5)

    eda, gateway, control = sandbox.client("mec-eda"), sandbox.client("mec-gateway"), sandbox.client("mec-control")
    sub = {"subscriptionType": "CellChangeSubscription", "callbackReference": receiver.url()}
    # a gateway's token reads, but neither sees nor makes subscriptions, nor moves the clock
    assert call(gateway, "GET", "location/v2/queries/zones").status_code == 200
    for method, path, body in (("GET", "rni/v2/subscriptions", None), ("POST", "rni/v2/subscriptions", sub),
                               ("GET", "location/v2/subscriptions/zonalTraffic", None),
                               ("POST", "sandbox-ctrl/v1/clock", {"advanceBy": 1})):
        r = call(gateway, method, path, body)
        assert r.status_code == 403, (method, path, r.text)
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    # the event sources' client subscribes and lists, but does not move the clock
    created = call(eda, "POST", "rni/v2/subscriptions", sub)
    assert created.status_code == 201, created.text
    assert call(eda, "GET", "rni/v2/subscriptions").status_code == 200
    before = call(eda, "GET", "sandbox-ctrl/v1/clock").json()["simTime"]
    r = call(eda, "POST", "sandbox-ctrl/v1/clock", {"advanceBy": 5})
    assert r.status_code == 403 and 'scope="control"' in r.headers["WWW-Authenticate"]
    assert call(eda, "GET", "sandbox-ctrl/v1/clock").json()["simTime"] == before
    # a control client asking for less gets less
    read_only = sandbox.client("mec-control", scope="read")
    assert call(read_only, "POST", "sandbox-ctrl/v1/clock", {"advanceBy": 1}).status_code == 403
    assert call(control, "POST", "sandbox-ctrl/v1/clock", {"advanceBy": 1}).status_code == 200


def _token(sandbox, data, auth=None):
    return requests.post(sandbox.url("oauth/token"), data=data, auth=auth, timeout=5)


def test_the_token_endpoint_grants_only_to_known_clients_what_they_may_have(sandbox):
    with open(os.path.join(sandbox.creds, "credentials.json")) as f:
        secret = json.load(f)["clients"]["mec-eda"]["client_secret"]
    good = _token(sandbox, {"grant_type": "client_credentials"}, auth=("mec-eda", secret))
    assert good.status_code == 200 and good.headers["Cache-Control"] == "no-store"
    answer = good.json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600 and answer["scope"] == "read subscribe"
    # the secret in the form works too
    form = _token(sandbox, {"grant_type": "client_credentials", "client_id": "mec-eda", "client_secret": secret})
    assert form.status_code == 200
    for data, auth, status, error in (
            ({"grant_type": "client_credentials"}, ("mec-eda", secret[:-1] + "x"), 401, "invalid_client"),
            ({"grant_type": "client_credentials"}, ("nobody", secret), 401, "invalid_client"),
            ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
            ({"grant_type": "password"}, ("mec-eda", secret), 400, "unsupported_grant_type"),
            ({"grant_type": "client_credentials", "scope": "read control"}, ("mec-eda", secret), 400,
             "invalid_scope")):
        r = _token(sandbox, data, auth)
        assert (r.status_code, r.json()["error"]) == (status, error), (data, auth and auth[0], r.text)
    assert "WWW-Authenticate" in _token(sandbox, {"grant_type": "client_credentials"}, ("nobody", "x")).headers
    json_body = requests.post(sandbox.url("oauth/token"), json={"grant_type": "client_credentials"}, timeout=5)
    assert json_body.status_code == 400 and json_body.json()["error"] == "invalid_request"
    with pytest.raises(CredentialsError, match="refused client mec-eda: HTTP 401"):
        TokenClient(sandbox.root + BASE, "mec-eda", "wrong").token()


def test_an_expired_token_is_refused():
    sb = SandboxProcess(clients={"mec-control": (("read", "subscribe", "control"), 3600),
                                 "short": (("read",), 1)})
    try:
        answer = sb.client("short").fetch()
        assert answer["expires_in"] == 1
        header = {"Authorization": f"Bearer {answer['access_token']}"}
        assert requests.get(sb.url("location/v2/queries/zones"), headers=header, timeout=5).status_code == 200
        time.sleep(1.05)  # exp is whole seconds: at most 1 s after the token was made
        r = requests.get(sb.url("location/v2/queries/zones"), headers=header, timeout=5)
        assert "has expired" in _challenge(r, "invalid_token")
        # TokenClient renews before using a token that would expire
        renewing = sb.client("short")
        first = renewing.token()
        time.sleep(1.05)
        assert renewing.token() != first
        assert requests.get(sb.url("location/v2/queries/zones"), headers=renewing.headers(), timeout=5).ok
    finally:
        sb.stop()


def test_credentials_are_private_and_kept_when_unchanged(tmp_path):
    folder = tmp_path / "creds"
    assert generate(str(folder)) is True
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for name in ("credentials.json", "sandbox-auth.json"):
        assert oct((folder / name).stat().st_mode & 0o777) == "0o600"
    before = (folder / "credentials.json").read_text()
    assert generate(str(folder)) is False
    assert (folder / "credentials.json").read_text() == before
    # the sandbox's file holds no secret, only its hash
    server = (folder / "sandbox-auth.json").read_text()
    for client in json.loads(before)["clients"].values():
        assert client["client_secret"] not in server
    # a folder others may write is refused
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(CredentialsError, match="mode 0777"):
        generate(str(open_dir))


def test_the_sandbox_does_not_start_without_credentials(tmp_path):
    import subprocess
    import sys
    from sandbox_helpers import APPS
    env = {k: v for k, v in os.environ.items() if k != "MEC_SANDBOX_AUTH"}
    run = subprocess.run([sys.executable, "-m", "mec_sandbox", "--port", "0"], env=dict(env, PYTHONPATH=APPS),
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "no authentication configuration" in run.stderr


# ------------------------------------------------------------------ callbacks: redirects and TLS

def _track_car(sb, url):
    r = sb.post("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
        "callbackReference": {"notifyURL": url}, "address": CAR}})
    assert r.status_code == 201, r.text
    return r.json()["userTrackingSubscription"]["resourceURL"].rsplit("/", 1)[1]


def _stats(sb, sub_id, total, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        stats = sb.get("sandbox-ctrl/v1/notifications").json().get(sub_id, {})
        if stats.get("delivered", 0) + stats.get("failed", 0) >= total or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def test_a_redirecting_callback_is_not_followed():
    # callbacks may go to 127.0.0.2 only; the receiver there answers 307 to one on 127.0.0.1
    behind = Receiver()
    redirector = Receiver(host="127.0.0.2", redirect_to=behind.url("/stolen"))
    sb = SandboxProcess("--callback-networks", "127.0.0.2/32")
    try:
        assert sb.post("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
            "callbackReference": {"notifyURL": behind.url()}, "address": CAR}}).status_code == 400
        sub_id = _track_car(sb, redirector.url())
        sb.advance(20)  # the car changes access point at 13.76 s
        sent = redirector.wait_for(lambda items: len(items) >= 1)
        assert sent, "the sandbox sent no notification to the redirecting receiver"
        stats = _stats(sb, sub_id, len(sent))
        assert stats.get("failed", 0) >= 1 and stats.get("delivered", 0) == 0, stats
        time.sleep(0.3)
        assert behind.bodies() == [], "the sandbox followed the redirect past its callback networks"
    finally:
        log = sb.stop()
        redirector.close()
        behind.close()
    assert "a redirect, not followed" in log


def _tls_receiver(folder):
    return Receiver(ssl_context=server_context(folder))


def test_https_callbacks_go_only_to_a_certificate_the_given_ca_signed(tmp_path):
    trusted, unknown = make_pki(tmp_path / "trusted"), make_pki(tmp_path / "unknown")
    good, bad = _tls_receiver(trusted), _tls_receiver(unknown)
    sb = SandboxProcess("--callback-ca", str(trusted / "ca.pem"))
    try:
        good_id, bad_id = _track_car(sb, good.url()), _track_car(sb, bad.url())
        assert good.url().startswith("https://127.0.0.1:")
        sb.advance(20)
        got = good.wait_for(lambda items: len(items) >= 1)
        assert got and CAR in json.dumps(got[0][1]), got
        assert _stats(sb, good_id, len(got)).get("delivered", 0) == len(got)
        refused = _stats(sb, bad_id, 1)
        assert refused.get("failed", 0) >= 1 and refused.get("delivered", 0) == 0, refused
        assert bad.bodies() == []
    finally:
        log = sb.stop()
        good.close()
        bad.close()
    assert "certificate verify failed" in log or "CERTIFICATE_VERIFY_FAILED" in log, log[-2000:]


def test_a_bad_callback_ca_stops_the_start(tmp_path):
    import subprocess
    import sys
    from sandbox_helpers import APPS
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    run = subprocess.run([sys.executable, "-m", "mec_sandbox", "--port", "0", "--callback-ca",
                          str(tmp_path / "ca.pem")], env=dict(os.environ, PYTHONPATH=APPS),
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "--callback-ca" in run.stderr and "ca.pem" in run.stderr


def test_the_gateways_token_is_made_for_one_url_and_kept(sandbox):
    from mec_sandbox.credentials import gateway_token
    url, path = sandbox.root + BASE, os.path.join(sandbox.creds, "gateway-token.json")
    assert gateway_token(sandbox.creds, url) is True
    doc = json.load(open(path))
    assert doc["url"] == url and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert gateway_token(sandbox.creds, url) is False  # still valid for more than half its 30 days
    header = {"Authorization": f"Bearer {doc['token']}"}
    assert requests.get(sandbox.url("location/v2/queries/zones"), headers=header, timeout=5).status_code == 200
    assert requests.get(sandbox.url("rni/v2/subscriptions"), headers=header, timeout=5).status_code == 403
    assert gateway_token(sandbox.creds, "http://elsewhere:8080/sandbox") is True  # another URL: a new token
    assert json.load(open(path))["url"] == "http://elsewhere:8080/sandbox"
