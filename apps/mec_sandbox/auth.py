"""OAuth 2.0 client credentials for the sandbox's API (ETSI GS MEC 009 names them for MEC service APIs).

A client (id and secret, with the scopes it may ask for) gets a bearer token from the token endpoint
(``POST <base>/oauth/token``, ``grant_type=client_credentials``, RFC 6749 section 4.4; the client
authenticates with HTTP Basic or ``client_id``/``client_secret`` in the form) and sends it as
``Authorization: Bearer <token>`` (RFC 6750) on every other request. Without a valid token the answer is
401 with ``WWW-Authenticate: Bearer ...``; a token without the operation's scope gets 403
``insufficient_scope``.

Scopes:

- ``read``: queries (Location, RNI, AMS registrations and adjacent instances), the OpenAPI document and
  the sandbox's observations (``GET sandbox-ctrl/v1/...``);
- ``subscribe``: every subscription operation, listing and reading included (a subscription's callback
  URL may carry its consumer's secret), and AMS registrations' changes;
- ``control``: changing the sandbox (``POST sandbox-ctrl/v1/clock``).

Tokens are stateless: ``mst1.<payload>.<HMAC-SHA256>`` signed with the sandbox's signing key, so they
survive a restart of the sandbox (with the same configuration) and expire at their ``exp``. Secrets are
stored as their SHA-256 (they are 32 random bytes, so no slow hash is needed); every comparison of a
secret or a signature is constant-time (:func:`hmac.compare_digest`).

The configuration (written by ``python -m mec_sandbox.credentials``)::

    {"signing_key": "<64+ hex digits>", "token_lifetime": 3600,
     "clients": {"<client_id>": {"secret_sha256": "<hex>", "scopes": ["read", "subscribe"],
                                 "token_lifetime": 3600}}}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

SCOPES = ("read", "subscribe", "control")
TOKEN_PATH = "oauth/token"
TOKEN_PREFIX = "mst1"
REALM = "mec_sandbox"
MAX_LIFETIME = 366 * 86400
VERIFIED_LIMIT = 4096
AUTH_ENV = "MEC_SANDBOX_AUTH"  # the configuration's JSON text, e.g. passed to a container


class AuthConfigError(ValueError):
    """The authentication configuration is unusable; the message says which field and what to do."""


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Client:
    client_id: str
    secret_sha256: str
    scopes: frozenset
    token_lifetime: int


@dataclass(frozen=True)
class Grant:
    """What a valid token grants."""
    client_id: str
    scopes: frozenset
    expires: int


class TokenError(Exception):
    """A request's token is missing, malformed, forged or expired (401), or lacks a scope (403)."""

    def __init__(self, status: int, error: str, description: str, scope: str = ""):
        super().__init__(description)
        self.status, self.error, self.description, self.scope = status, error, description, scope

    def challenge(self) -> str:
        parts = [f'realm="{REALM}"']
        if self.error:
            parts += [f'error="{self.error}"', f'error_description="{self.description}"']
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return "Bearer " + ", ".join(parts)


class Authority:
    """Issues and checks tokens for the configured clients."""

    def __init__(self, signing_key: bytes, clients: dict[str, Client], clock=time.time):
        if len(signing_key) < 32:
            raise AuthConfigError("signing_key: at least 32 bytes (64 hex digits) are needed")
        self._key = signing_key
        self.clients = clients
        self.clock = clock
        self._dummy = secret_hash(secrets.token_hex(16))  # compared against for an unknown client id
        # tokens already verified (signature and claims) -> (client id, scopes, expiry): a client sends the same
        # token for an hour, and verifying it costs more than serving a cached answer. Only tokens this sandbox
        # signed get in, so its size is bounded by the tokens issued; it is emptied beyond VERIFIED_LIMIT anyway.
        self._verified: dict[str, tuple[str, frozenset, int]] = {}

    # ------------------------------------------------------------ configuration
    @classmethod
    def from_config(cls, data: object, source: str = "configuration") -> Authority:
        if not isinstance(data, dict):
            raise AuthConfigError(f"{source}: expected a JSON object")
        try:
            key = bytes.fromhex(str(data.get("signing_key", "")))
        except ValueError:
            raise AuthConfigError(f"{source}: signing_key must be hex digits") from None
        default_life = data.get("token_lifetime", 3600)
        clients = {}
        raw_clients = data.get("clients")
        if not isinstance(raw_clients, dict) or not raw_clients:
            raise AuthConfigError(f"{source}: 'clients' must map at least one client id to its settings")
        for cid, c in raw_clients.items():
            where = f"{source}: clients.{cid}"
            if not isinstance(c, dict):
                raise AuthConfigError(f"{where}: expected an object")
            digest = str(c.get("secret_sha256", ""))
            if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
                raise AuthConfigError(f"{where}.secret_sha256: 64 lower-case hex digits expected")
            scopes = c.get("scopes")
            if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
                raise AuthConfigError(f"{where}.scopes: a non-empty list of {', '.join(SCOPES)} expected")
            life = c.get("token_lifetime", default_life)
            if isinstance(life, bool) or not isinstance(life, int) or not 1 <= life <= MAX_LIFETIME:
                raise AuthConfigError(f"{where}.token_lifetime: whole seconds in [1, {MAX_LIFETIME}] expected")
            clients[str(cid)] = Client(str(cid), digest, frozenset(scopes), life)
        try:
            return cls(key, clients)
        except AuthConfigError as exc:
            raise AuthConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | None = None) -> Authority:
        """From a file, or else from the environment variable MEC_SANDBOX_AUTH (the JSON itself)."""
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise AuthConfigError(f"--auth-file {path}: {exc.strerror}") from None
            source = path
        elif os.environ.get(AUTH_ENV):
            text, source = os.environ[AUTH_ENV], f"${AUTH_ENV}"
        else:
            raise AuthConfigError(
                f"no authentication configuration: give --auth-file FILE or set {AUTH_ENV}; make one with "
                "'python -m mec_sandbox.credentials DIR' (writes DIR/sandbox-auth.json for the sandbox and "
                "DIR/credentials.json for its clients)")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AuthConfigError(f"{source}: not JSON ({exc})") from None
        return cls.from_config(data, source)

    # ------------------------------------------------------------ token endpoint
    def authenticate_client(self, client_id: str, secret: str) -> Client | None:
        client = self.clients.get(client_id)
        ok = hmac.compare_digest(secret_hash(secret), client.secret_sha256 if client else self._dummy)
        return client if ok and client is not None else None

    def issue(self, client: Client, requested: str | None) -> dict:
        """A token response (RFC 6749 section 5.1) for the scopes asked (default: all the client's)."""
        asked = frozenset(requested.split()) if requested and requested.strip() else client.scopes
        if not asked <= client.scopes:
            raise TokenError(400, "invalid_scope",
                             f"client {client.client_id} may ask for {' '.join(sorted(client.scopes))}; "
                             f"asked for {' '.join(sorted(asked))}")
        now = int(self.clock())
        payload = {"sub": client.client_id, "scope": " ".join(sorted(asked)), "iat": now,
                   "exp": now + client.token_lifetime, "jti": secrets.token_hex(8)}
        body = f"{TOKEN_PREFIX}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
        token = f"{body}.{_b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())}"
        return {"access_token": token, "token_type": "Bearer", "expires_in": client.token_lifetime,
                "scope": payload["scope"]}

    # ------------------------------------------------------------ resource requests
    def check(self, authorization: str | None, scope: str | None) -> Grant:
        """The grant of the request's bearer token if it carries ``scope`` (None: any); else a TokenError."""
        if not authorization:
            raise TokenError(401, "", "")  # no credentials: a bare challenge (RFC 6750 section 3.1)
        kind, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            raise TokenError(401, "invalid_request", "use Authorization: Bearer <token>")
        known = self._verified.get(token)
        if known is not None:
            return self._grant(*known, scope)
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise TokenError(401, "invalid_token", "malformed token")
        body = f"{parts[0]}.{parts[1]}"
        expected = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        try:
            signature = _unb64(parts[2])
            valid = hmac.compare_digest(signature, expected)
            payload = json.loads(_unb64(parts[1])) if valid else None
        except (binascii.Error, ValueError):
            valid, payload = False, None
        if not valid or not isinstance(payload, dict):
            raise TokenError(401, "invalid_token", "the token was not issued by this sandbox")
        client_id, exp = payload.get("sub"), payload.get("exp")
        if not isinstance(client_id, str) or not isinstance(exp, int):
            raise TokenError(401, "invalid_token", "malformed token claims")
        scopes = frozenset(str(payload.get("scope", "")).split())
        grant = self._grant(client_id, scopes, exp, scope)  # raises before a bad token is remembered
        if len(self._verified) >= VERIFIED_LIMIT:
            self._verified.clear()
        self._verified[token] = (client_id, scopes, exp)
        return grant

    def _grant(self, client_id: str, scopes: frozenset, exp: int, scope: str | None) -> Grant:
        """The checks made on every use of a token: its client still configured, not expired, the scope."""
        client = self.clients.get(client_id)
        if client is None:
            raise TokenError(401, "invalid_token", "the token's client is no longer known")
        if self.clock() >= exp:
            raise TokenError(401, "invalid_token", "the token has expired; get a new one")
        granted = scopes & client.scopes
        if scope is not None and scope not in granted:
            raise TokenError(403, "insufficient_scope", f"this operation needs the scope '{scope}'", scope)
        return Grant(client.client_id, granted, exp)
