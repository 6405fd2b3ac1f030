"""Shared by the collection's MEC 013 event sources (mec_mobility, mec_approach): argument checks, the ETSI
time stamps, the atomic state file and a small client of the Location API (platform start-up wait, users, zones,
access points) with the messages the sources give.

Not an event source itself. ansible-rulebook runs a source plugin with ``runpy.run_path`` (no package, no
``sys.path`` entry for the plugin's folder), so the sources load this file by its path beside their own
(``load_shared()`` below, copied in each source: the one piece that cannot be shared).
Only the Python standard library and aiohttp (a dependency of ansible-rulebook) are used.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import importlib.util
import json
import logging
import os
import re
import ssl
import sys
import tempfile
import time
from urllib.parse import quote

import aiohttp


class MecSourceError(Exception):
    """A problem the user must fix (bad arguments, unknown UE, unreachable platform); the message says what."""


# --------------------------------------------------------------------------- identifiers are data
# Zone, access-point and UE identifiers that the sources put on the queue or in a state file. Everything from the
# platform (a callback, an API answer) is checked against this before it goes anywhere: a value with a brace, a
# quote, a space, a slash or a newline is no identifier (ansible-rulebook hands events to playbooks as extra vars,
# and a string that looked like a Jinja template there must never get that far). The same pattern is in the
# rulebook's conditions (extensions/eda/rulebooks/follow_ue.yml) and in the follow_hop action plugin.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
_ID = re.compile(ID_PATTERN)


def valid_id(value) -> bool:
    """True for a str that is a whole identifier (re.fullmatch: no trailing newline slips through a ``$``)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def shown(value) -> str:
    """A value from outside as it may appear in a log line: repr, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def loads(text):
    """json.loads that raises ValueError (not RecursionError) on a too deeply nested document."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _load_fsutil():
    """plugins/module_utils/fsutil.py of this collection, by path (stdlib only): its private_dir() checks the
    state folder. The event sources live in <collection>/extensions/eda/plugins/event_source."""
    name = "mec_migration_eda_fsutil"
    if name not in sys.modules:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, *([os.pardir] * 4), "plugins", "module_utils", "fsutil.py")
        spec = importlib.util.spec_from_file_location(name, os.path.normpath(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fsutil = _load_fsutil()


# --------------------------------------------------------------------------- arguments
def as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def number(args: dict, name: str, default, problems: list, integer=False, low=None, high=None):
    """args[name] as a number within [low, high]; a problem is appended (and the default returned) otherwise."""
    value = args.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        value = int(value) if integer else float(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"{name}={args.get(name)!r}: a {'whole ' if integer else ''}number"
                        f"{f' from {low}' if low is not None else ''}{f' to {high}' if high is not None else ''}.")
        return default
    return value


def boolean(args: dict, name: str, problems: list) -> bool:
    value = args.get(name, False)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1", "on"):
        return True
    if str(value).lower() in ("false", "no", "0", "off", ""):
        return False
    problems.append(f"{name}={value!r}: true or false.")
    return False


def location_url(args: dict, problems: list) -> str:
    """The Location API's root: location_url, or <platform_url>/location/v2."""
    platform = str(args.get("platform_url") or "").rstrip("/")
    location = str(args.get("location_url") or (platform + "/location/v2" if platform else "")).rstrip("/")
    if not location.startswith(("http://", "https://")):
        problems.append(f"platform_url={platform or '(unset)'}: the MEC platform's http(s) URL is required "
                        "(e.g. http://127.0.0.1:8080/sandbox), or location_url.")
    return location


def ues(args: dict, problems: list) -> list[str]:
    found = [str(u) for u in as_list(args.get("ues")) + as_list(args.get("ue"))]
    if not found:
        problems.append("ues: give the address of at least one UE to follow (e.g. ues: ['10.100.0.1']).")
    for ue in found:
        if not valid_id(ue):
            problems.append(f"ues: {shown(ue)} is no UE address (letters, digits and _.:- only, 1-64 characters, "
                            "e.g. 10.100.0.1).")
    return found


def unknown_arguments(args: dict, known: set, problems: list) -> None:
    unknown = sorted(set(args) - known)
    if unknown:
        problems.append(f"unknown argument(s) {unknown}; known: {sorted(known)}.")


# The platform's API needs a bearer token (OAuth 2.0 client credentials, ETSI GS MEC 009; the local sandbox
# refuses every request without one). credentials_file is the sandbox role's credentials.json (client: one of
# its clients, default mec-eda), or client_id/client_secret are given; the token comes from token_url (default
# <platform_url>/oauth/token). HTTPS callbacks: tls_cert/tls_key (PEM files) make the listener serve TLS.
AUTH_ARGS = {"credentials_file", "client", "client_id", "client_secret", "token_url"}
TLS_ARGS = {"tls_cert", "tls_key"}


class Credentials:
    def __init__(self, token_url: str, client_id: str, client_secret: str):
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret


def credentials(args: dict, problems: list) -> Credentials | None:
    """The client credentials from the arguments; None when none are given (a platform without OAuth)."""
    path, cid, secret = args.get("credentials_file"), args.get("client_id"), args.get("client_secret")
    if not (path or cid or secret):
        return None
    if path:
        name = str(args.get("client") or "mec-eda")
        try:
            with open(os.path.expanduser(str(path)), encoding="utf-8") as fh:
                entry = (json.load(fh).get("clients") or {}).get(name) or {}
            cid, secret = entry.get("client_id"), entry.get("client_secret")
        except (OSError, ValueError, AttributeError) as exc:
            problems.append(f"credentials_file={path}: not readable as the sandbox's credentials.json ({exc}).")
            return None
        if not (cid and secret):
            problems.append(f"credentials_file={path}: no client {name!r} in it (client).")
            return None
    elif not (cid and secret):
        problems.append("client_id and client_secret: give both (or credentials_file).")
        return None
    platform = str(args.get("platform_url") or "").rstrip("/")
    token_url = str(args.get("token_url") or (f"{platform}/oauth/token" if platform else ""))
    if not token_url.startswith(("http://", "https://")):
        problems.append("token_url: the platform's OAuth token endpoint (http(s) URL) is needed without platform_url.")
        return None
    return Credentials(token_url, str(cid), str(secret))


def tls_context(args: dict, problems: list) -> ssl.SSLContext | None:
    """A server TLS context for the callback listener from tls_cert/tls_key; None without them."""
    cert, key = args.get("tls_cert"), args.get("tls_key")
    if not (cert or key):
        return None
    if not (cert and key):
        problems.append("tls_cert and tls_key: give both (PEM files) for HTTPS callbacks.")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(os.path.expanduser(str(cert)), os.path.expanduser(str(key)))
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"tls_cert={cert} / tls_key={key}: cannot load them as a PEM certificate and key ({exc}).")
        return None
    return context


# --------------------------------------------------------------------------- values
def timestamp(ts) -> float | None:
    """ETSI TimeStamp {seconds, nanoSeconds} -> Unix time."""
    if isinstance(ts, dict) and isinstance(ts.get("seconds"), (int, float)) and not isinstance(ts.get("seconds"), bool):
        nanos = ts.get("nanoSeconds", 0)
        nanos = nanos if isinstance(nanos, (int, float)) and not isinstance(nanos, bool) else 0
        return float(ts["seconds"]) + float(nanos) / 1e9
    return None


def iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def problem_text(body: str) -> str:
    try:
        doc = loads(body)
        return str(doc.get("detail") or doc.get("title") or body)[:300]
    except (ValueError, AttributeError):
        return body[:300]


def state_dir_problem(state_dir) -> str | None:
    """None when ``state_dir`` is (or can be made) a private folder: 0700, ours, parents not someone else's; else
    the message of fsutil.private_dir (what was found, what to do). Checked at start and on every write."""
    try:
        fsutil.private_dir(state_dir, create=True)
    except fsutil.PrivateDirError as exc:
        return f"state_dir={state_dir}: {exc}"
    return None


def write_state(state_dir: str, name: str, data: dict) -> None:
    """Atomically replace <state_dir>/<name>.json (a reader never sees half a file). The folder is checked to be
    private first, every time (fsutil.private_dir): a folder someone else made or could swap is refused."""
    state_dir = fsutil.private_dir(state_dir, create=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(state_dir, f"{name}.json"))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- the Location API
class LocationClient:
    """GET/POST/DELETE on one MEC 013 Location API; messages name the source (``who``) and the URL."""

    def __init__(self, location_url: str, who: str, error: type[MecSourceError], request_timeout: float,
                 startup_timeout: float, creds: Credentials | None = None):
        self.location_url = location_url
        self.who, self.error = who, error
        self.request_timeout, self.startup_timeout = request_timeout, startup_timeout
        self.session: aiohttp.ClientSession | None = None
        self.creds = creds
        self._token, self._renew_at = "", 0.0

    def open(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout))

    async def close(self) -> None:
        if self.session is not None and not self.session.closed:
            await self.session.close()

    @property
    def is_open(self) -> bool:
        return self.session is not None and not self.session.closed

    def url(self, path: str) -> str:
        return f"{self.location_url}/{path.lstrip('/')}"

    async def _send(self, method: str, url: str, **kw) -> tuple[int, str, dict]:
        assert self.session is not None
        try:
            async with self.session.request(method, url, allow_redirects=False, **kw) as resp:
                return resp.status, await resp.text(), dict(resp.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ConnectionError(f"{method} {url}: {type(exc).__name__}: {exc or 'timed out'}") from exc

    async def token(self, renew: bool = False) -> str:
        """A bearer token (client credentials grant), renewed 30 s before it expires; refused credentials stop
        the source with a message."""
        c = self.creds
        if self._token and not renew and time.monotonic() < self._renew_at:
            return self._token
        basic = base64.b64encode(f"{quote(c.client_id, safe='')}:{quote(c.client_secret, safe='')}".encode()).decode()
        status, body, _ = await self._send("POST", c.token_url, data={"grant_type": "client_credentials"},
                                           headers={"Authorization": f"Basic {basic}"})
        if status in (400, 401, 403):
            raise self.error(f"{self.who}: the MEC platform's token endpoint {c.token_url} refused client "
                             f"{c.client_id}: HTTP {status} {body[:200]}: check credentials_file / client "
                             "(or client_id / client_secret).")
        try:
            answer = loads(body) if status == 200 else None
            token, life = str(answer["access_token"]), float(answer.get("expires_in", 60))
        except (ValueError, TypeError, KeyError) as exc:
            raise ConnectionError(f"POST {c.token_url}: HTTP {status}, no token ({exc or body[:200]})") from None
        self._token, self._renew_at = token, time.monotonic() + max(life - 30, life / 2)
        return token

    async def request(self, method: str, url: str, **kw) -> tuple[int, str, dict]:
        """(status, body, headers) with the bearer token when credentials are given (a 401 gets one new token
        and one retry); redirects are not followed; any transport problem as ConnectionError naming the request."""
        if self.creds is None:
            return await self._send(method, url, **kw)
        headers = dict(kw.pop("headers", None) or {})
        headers["Authorization"] = f"Bearer {await self.token()}"
        answer = await self._send(method, url, headers=headers, **kw)
        if answer[0] == 401:
            headers["Authorization"] = f"Bearer {await self.token(renew=True)}"
            answer = await self._send(method, url, headers=headers, **kw)
        return answer

    async def get_json(self, path: str) -> dict:
        status, body, _ = await self.request("GET", self.url(path))
        if status != 200:
            raise ConnectionError(f"GET {path}: HTTP {status}: {problem_text(body)}")
        try:
            doc = loads(body)
        except ValueError as exc:
            raise ConnectionError(f"GET {path}: the answer is no JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ConnectionError(f"GET {path}: the answer is no JSON object")
        return doc

    async def wait_for_platform(self) -> None:
        """Until GET queries/zones answers 200; a refusal (401/403/404) or startup_timeout stops with a message."""
        deadline = time.monotonic() + self.startup_timeout
        url = self.url("queries/zones")
        while True:
            try:
                status, body, _ = await self.request("GET", url)
                if status == 200:
                    return
                last = f"HTTP {status}: {problem_text(body)}"
                if status in (401, 403, 404):
                    raise self.error(
                        f"{self.who}: the MEC platform's Location API at {self.location_url} answered {last} "
                        "to GET queries/zones: check platform_url / location_url (and the platform's access: "
                        "credentials_file for a platform that needs a token).")
            except ConnectionError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise self.error(
                    f"{self.who}: the MEC platform at {self.location_url} is unreachable ({last}) after "
                    f"{self.startup_timeout:g} s: check platform_url and that the platform runs.")
            await asyncio.sleep(min(1.0, max(0.05, self.startup_timeout / 10)))

    async def user(self, ue: str) -> dict:
        """The UE's userInfo (zoneId, accessPointId, locationInfo, timestamp); an unknown UE stops the source."""
        status, body, _ = await self.request("GET", self.url(f"queries/users?address={quote(ue, safe='')}"))
        if status == 404:
            raise self.error(f"{self.who}: UE {ue} is unknown to the MEC platform at {self.location_url} "
                             f"({problem_text(body)}): check ues (the UE's address as in MEC 013).")
        if status != 200:
            raise ConnectionError(f"GET queries/users?address={ue}: HTTP {status}: {problem_text(body)}")
        try:
            users = (loads(body).get("userList") or {}).get("user") or []
        except (ValueError, AttributeError) as exc:
            raise ConnectionError(f"GET queries/users?address={ue}: the answer is no MEC 013 userList: {exc}") from None
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict) and user.get("address") == ue:
                return user
        raise self.error(f"{self.who}: UE {ue} is not in the MEC platform's answer at {self.location_url}.")

    async def zones(self) -> list[str]:
        """The platform's zone ids; one that is no identifier (ID_PATTERN) is left out with a log line."""
        doc = await self.get_json("queries/zones")
        found = []
        for z in items(doc, "zoneList", "zone"):
            if valid_id(z.get("zoneId")):
                found.append(z["zoneId"])
            elif z.get("zoneId"):
                logging.getLogger(f"mec.migration.{self.who}").warning(
                    "%s: the platform lists zone %s, which is no zone id (%s): left out", self.who,
                    shown(z.get("zoneId")), ID_PATTERN)
        return found

    async def access_points(self, zone: str) -> list[dict]:
        doc = await self.get_json(f"queries/zones/{quote(zone, safe='')}/accessPoints")
        return items(doc, "accessPointList", "accessPoint")


def items(doc, outer: str, inner: str) -> list[dict]:
    """doc[outer][inner] as a list of the dicts in it ([] for anything else)."""
    box = doc.get(outer) if isinstance(doc, dict) else None
    found = box.get(inner) if isinstance(box, dict) else None
    return [x for x in found if isinstance(x, dict)] if isinstance(found, list) else []


def position(info: dict) -> tuple[float, float] | None:
    """(latitude, longitude) of a MEC 013 locationInfo, or None."""
    loc = info.get("locationInfo") if isinstance(info, dict) else None
    try:
        lat, lon = loc["latitude"], loc["longitude"]
        lat = lat[0] if isinstance(lat, list) else lat
        lon = lon[0] if isinstance(lon, list) else lon
        return float(lat), float(lon)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def settings_error(who: str, error: type[MecSourceError], problems: list[str]) -> None:
    if problems:
        raise error(f"{who}: bad arguments: " + " ".join(problems))
