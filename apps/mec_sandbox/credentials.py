"""Client credentials of the sandbox: make them, and use them.

``python -m mec_sandbox.credentials DIR`` writes two files, mode 0600, into DIR (created 0700; an
existing DIR must be a real directory of the current user without group or other permissions):

- ``sandbox-auth.json``: what the sandbox needs (``--auth-file``, or the content in ``MEC_SANDBOX_AUTH``):
  the signing key, each client's secret as SHA-256, its scopes and token lifetime;
- ``credentials.json``: what the clients need: ``{"clients": {"<name>": {"client_id", "client_secret",
  "scope"}}}``;
- with ``--gateway-url URL``, ``gateway-token.json``: ``{"url", "token", "expires"}``, a token of the client
  ``mec-gateway`` for the MEC hosts' API gateways (role mec_gateway), which send it only to that URL; made
  again when the URL or the keys changed or when less than half its lifetime is left.

Run again with the same clients, it changes nothing (and says so: ``{"changed": false}``); a client
added, removed or with other scopes or lifetime is rewritten, the others keep their secrets.

:class:`TokenClient` gets and renews a bearer token with the client credentials grant, with the
standard library only (the tests, benchmarks, drives and experiments use it).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import stat
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from .auth import MAX_LIFETIME, SCOPES, TOKEN_PATH, Authority, AuthConfigError, TokenError, secret_hash

SERVER_FILE = "sandbox-auth.json"
CLIENT_FILE = "credentials.json"
GATEWAY_FILE = "gateway-token.json"  # {"url", "token", "expires"}: the gateways' token for one sandbox URL
CREDENTIALS_ENV = "MEC_SANDBOX_CREDENTIALS"
DEFAULT_DIR = os.path.join("~", ".cache", "mec-migration", "sandbox")
# name -> (scopes, token lifetime in seconds)
DEFAULT_CLIENTS = {
    "mec-control": (("read", "subscribe", "control"), 3600),  # tests, drives, experiments
    "mec-eda": (("read", "subscribe"), 3600),  # the event sources of the rulebook
    "mec-gateway": (("read",), 30 * 86400),  # the MEC hosts' API gateways (a token in their configuration)
}


class CredentialsError(Exception):
    pass


def default_credentials_file() -> str:
    return os.environ.get(CREDENTIALS_ENV) or os.path.join(os.path.expanduser(DEFAULT_DIR), CLIENT_FILE)


# ------------------------------------------------------------------ making them

def private_dir(path: str) -> None:
    """Create ``path`` (0700) or check that it is a real directory of ours without group/other bits."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise CredentialsError(f"{path} is not a directory (a link?); remove it and run again")
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise CredentialsError(
            f"{path} is owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}; credentials need a "
            f"folder of uid {os.getuid()} with mode 0700: fix it (chown/chmod) or choose another folder")


def _write_private(path: str, data: dict) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp makes it 0600
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _read(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def parse_client(spec: str) -> tuple[str, tuple[tuple[str, ...], int]]:
    """'name=read,subscribe[@3600]' -> (name, (scopes, lifetime))."""
    name, sep, rest = spec.partition("=")
    scopes_text, _, life_text = rest.partition("@")
    scopes = tuple(s for s in scopes_text.split(",") if s)
    if not sep or not name or not scopes or any(s not in SCOPES for s in scopes):
        raise CredentialsError(f"--client {spec!r}: NAME=SCOPE[,SCOPE...][@SECONDS] with scopes from "
                               f"{', '.join(SCOPES)}")
    try:
        life = int(life_text) if life_text else 3600
    except ValueError:
        life = 0
    if not 1 <= life <= MAX_LIFETIME:
        raise CredentialsError(f"--client {spec!r}: the lifetime must be whole seconds in [1, {MAX_LIFETIME}]")
    return name, (scopes, life)


def generate(folder: str, clients: dict | None = None) -> bool:
    """Write or update the two files in ``folder``; True when something changed."""
    clients = DEFAULT_CLIENTS if clients is None else clients
    private_dir(folder)
    server_path, client_path = os.path.join(folder, SERVER_FILE), os.path.join(folder, CLIENT_FILE)
    old_server, old_clients = _read(server_path) or {}, _read(client_path) or {}
    old_secrets = (old_clients.get("clients") or {}) if isinstance(old_clients.get("clients"), dict) else {}
    old_entries = old_server.get("clients") if isinstance(old_server.get("clients"), dict) else {}
    key = old_server.get("signing_key")
    if not (isinstance(key, str) and len(key) >= 64):
        key = secrets.token_hex(32)
    server = {"signing_key": key, "token_lifetime": 3600, "clients": {}}
    public = {"token_path": TOKEN_PATH, "clients": {}}
    for name, (scopes, life) in sorted(clients.items()):
        scope_list = sorted(scopes, key=SCOPES.index)
        old = old_secrets.get(name) if isinstance(old_secrets.get(name), dict) else {}
        secret = old.get("client_secret")
        entry = old_entries.get(name) if isinstance(old_entries.get(name), dict) else {}
        if not (isinstance(secret, str) and len(secret) >= 32 and entry.get("secret_sha256") == secret_hash(secret)):
            secret = secrets.token_urlsafe(32)
        server["clients"][name] = {"secret_sha256": secret_hash(secret), "scopes": scope_list,
                                   "token_lifetime": life}
        public["clients"][name] = {"client_id": name, "client_secret": secret, "scope": " ".join(scope_list)}
    changed = False
    for path, data, old in ((server_path, server, old_server), (client_path, public, old_clients)):
        mode_ok = os.path.exists(path) and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        if data != old or not mode_ok:
            _write_private(path, data)
            changed = True
    return changed


def gateway_token(folder: str, url: str, client: str = "mec-gateway") -> bool:
    """Write or keep ``folder``/gateway-token.json for ``url``; True when it was (re)made."""
    private_dir(folder)
    server = _read(os.path.join(folder, SERVER_FILE))
    try:
        authority = Authority.from_config(server, os.path.join(folder, SERVER_FILE))
    except AuthConfigError as exc:
        raise CredentialsError(f"{exc}: make the credentials first") from None
    if client not in authority.clients:
        raise CredentialsError(f"no client {client!r} in {folder}/{SERVER_FILE}: add it (--client)")
    path = os.path.join(folder, GATEWAY_FILE)
    old = _read(path) or {}
    life = authority.clients[client].token_lifetime
    if old.get("url") == url and isinstance(old.get("token"), str):
        try:
            grant = authority.check(f"Bearer {old['token']}", "read")
            if grant.client_id == client and grant.expires - time.time() > life / 2:
                return False
        except TokenError:
            pass
    answer = authority.issue(authority.clients[client], None)
    _write_private(path, {"url": url, "token": answer["access_token"],
                          "expires": int(time.time()) + answer["expires_in"]})
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mec_sandbox.credentials",
                                 description="Make (or keep) the sandbox's client credentials in a private folder.")
    ap.add_argument("folder", help=f"where to write {SERVER_FILE} and {CLIENT_FILE} (created 0700)")
    ap.add_argument("--client", action="append", default=[],
                    help="NAME=SCOPES[@SECONDS], e.g. mec-eda=read,subscribe@3600; repeat; default: "
                         + ", ".join(f"{n}={','.join(s)}@{life}" for n, (s, life) in DEFAULT_CLIENTS.items()))
    ap.add_argument("--gateway-url", default="",
                    help=f"also write {GATEWAY_FILE}: a token of mec-gateway for the sandbox at this URL (with its "
                         "base path), for the MEC hosts' gateways")
    args = ap.parse_args(argv)
    folder = os.path.expanduser(args.folder)
    try:
        clients = dict(parse_client(c) for c in args.client) if args.client else None
        changed = generate(folder, clients)
        if args.gateway_url:
            changed = gateway_token(folder, args.gateway_url.rstrip("/")) or changed
    except (CredentialsError, OSError) as exc:
        print(f"mec_sandbox.credentials: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"changed": changed, "server_file": os.path.join(folder, SERVER_FILE),
                      "credentials_file": os.path.join(folder, CLIENT_FILE),
                      **({"gateway_token_file": os.path.join(folder, GATEWAY_FILE)} if args.gateway_url else {})}))
    return 0


# ------------------------------------------------------------------ using them

def load_client(path: str | None = None, client: str = "mec-control") -> tuple[str, str]:
    """(client_id, client_secret) of one client of a credentials.json."""
    path = path or default_credentials_file()
    data = _read(path)
    if data is None:
        raise CredentialsError(f"no sandbox credentials at {path}: run the mec_sandbox role (playbooks/apps.yml) "
                               f"or 'python -m mec_sandbox.credentials DIR', or set {CREDENTIALS_ENV}")
    entry = (data.get("clients") or {}).get(client)
    if not isinstance(entry, dict) or not entry.get("client_id") or not entry.get("client_secret"):
        raise CredentialsError(f"{path} has no client {client!r} (it has {', '.join(data.get('clients') or {})})")
    return str(entry["client_id"]), str(entry["client_secret"])


class TokenClient:
    """A bearer token for ``platform_url`` (the sandbox's URL with its base path), renewed before it expires."""

    def __init__(self, platform_url: str, client_id: str, client_secret: str, scope: str | None = None,
                 timeout: float = 10.0):
        self.token_url = f"{platform_url.rstrip('/')}/{TOKEN_PATH}"
        self.client_id, self._secret, self.scope, self.timeout = client_id, client_secret, scope, timeout
        self._token, self._renew_at = "", 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, platform_url: str, path: str | None = None, client: str = "mec-control", **kw) -> TokenClient:
        cid, secret = load_client(path, client)
        return cls(platform_url, cid, secret, **kw)

    def fetch(self) -> dict:
        """One token response from the endpoint (RFC 6749 section 4.4)."""
        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        basic = base64.b64encode(f"{urllib.parse.quote(self.client_id)}:{urllib.parse.quote(self._secret)}"
                                 .encode()).decode()
        req = urllib.request.Request(self.token_url, data=urllib.parse.urlencode(form).encode(), method="POST",
                                     headers={"Authorization": f"Basic {basic}",
                                              "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (http(s) URL of the platform)
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            raise CredentialsError(f"the sandbox at {self.token_url} refused client {self.client_id}: HTTP "
                                   f"{exc.code} {exc.read()[:300].decode(errors='replace')}") from None

    def token(self) -> str:
        with self._lock:
            if not self._token or time.time() >= self._renew_at:
                answer = self.fetch()
                life = float(answer.get("expires_in", 60))
                self._token = answer["access_token"]
                self._renew_at = time.time() + max(life - 30, life / 2)
            return self._token

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token()}"}


if __name__ == "__main__":
    sys.exit(main())
