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
import datetime as _dt
import json
import os
import tempfile
import time
from urllib.parse import quote

import aiohttp


class MecSourceError(Exception):
    """A problem the user must fix (bad arguments, unknown UE, unreachable platform); the message says what."""


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
    return found


def unknown_arguments(args: dict, known: set, problems: list) -> None:
    unknown = sorted(set(args) - known)
    if unknown:
        problems.append(f"unknown argument(s) {unknown}; known: {sorted(known)}.")


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
        doc = json.loads(body)
        return str(doc.get("detail") or doc.get("title") or body)[:300]
    except ValueError:
        return body[:300]


def write_state(state_dir: str, name: str, data: dict) -> None:
    """Atomically replace <state_dir>/<name>.json (a reader never sees half a file)."""
    os.makedirs(state_dir, exist_ok=True)
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
                 startup_timeout: float):
        self.location_url = location_url
        self.who, self.error = who, error
        self.request_timeout, self.startup_timeout = request_timeout, startup_timeout
        self.session: aiohttp.ClientSession | None = None

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

    async def request(self, method: str, url: str, **kw) -> tuple[int, str, dict]:
        """(status, body, headers); any transport problem as ConnectionError naming the request."""
        assert self.session is not None
        try:
            async with self.session.request(method, url, **kw) as resp:
                return resp.status, await resp.text(), dict(resp.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ConnectionError(f"{method} {url}: {type(exc).__name__}: {exc or 'timed out'}") from exc

    async def get_json(self, path: str) -> dict:
        status, body, _ = await self.request("GET", self.url(path))
        if status != 200:
            raise ConnectionError(f"GET {path}: HTTP {status}: {problem_text(body)}")
        return json.loads(body)

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
                        "to GET queries/zones: check platform_url / location_url (and the platform's access).")
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
        for user in (json.loads(body).get("userList") or {}).get("user") or []:
            if user.get("address") == ue:
                return user
        raise self.error(f"{self.who}: UE {ue} is not in the MEC platform's answer at {self.location_url}.")

    async def zones(self) -> list[str]:
        doc = await self.get_json("queries/zones")
        return [z["zoneId"] for z in (doc.get("zoneList") or {}).get("zone") or [] if z.get("zoneId")]

    async def access_points(self, zone: str) -> list[dict]:
        doc = await self.get_json(f"queries/zones/{quote(zone, safe='')}/accessPoints")
        return list((doc.get("accessPointList") or {}).get("accessPoint") or [])


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
