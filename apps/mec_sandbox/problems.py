"""ETSI ProblemDetails errors and the request input checks shared by every API.

Everything a client can get wrong (query strings, bodies that are not JSON, too large, nested too
deeply, of the wrong content type) becomes a :class:`Problem` with a 4xx status, answered as
``application/problem+json``; a 500 only ever means a bug of the sandbox.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from aiohttp import web

from .spec import Op

LOG = logging.getLogger("mec_sandbox")
MAX_BODY_BYTES = 64 * 1024  # the largest subscription or registration is a few kB
MAX_BODY_DEPTH = 32  # arrays and objects inside each other; the deepest ETSI body here is 5
TITLES = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 501: "Not Implemented"}


class Problem(Exception):
    def __init__(self, status: int, detail: str, title: str | None = None):
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.title = title or TITLES.get(status, "Error")


def problem_response(status: int, title: str, detail: str, instance: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/problem+json")


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(data, separators=(",", ":")).encode(),
                        content_type="application/json", headers=headers)


def bytes_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


@web.middleware
async def problem_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except Problem as p:
        return problem_response(p.status, p.title, p.detail, request.path)
    except web.HTTPException as exc:
        if exc.status >= 400:
            detail = {404: f"no resource at {request.path}",
                      405: f"method {request.method} is not allowed on {request.path}"}.get(exc.status, exc.reason)
            return problem_response(exc.status, exc.reason, detail, request.path)
        raise
    except Exception:  # a bug: answer ProblemDetails, keep the trace in the log
        LOG.exception("%s %s failed", request.method, request.path)
        return problem_response(500, "Internal Server Error", "the sandbox failed on this request; see its log",
                                request.path)


# ------------------------------------------------------------------ query strings

def parse_query(op: Op, request: web.Request) -> dict:
    known = {p.name: p for p in op.query}
    out: dict = {}
    keys = list(dict.fromkeys(request.query.keys()))
    for key in keys:  # unknown names first: they are the likelier mistake
        if key not in known:
            raise Problem(400, f"unknown query parameter '{key}'" +
                          (f"; allowed: {', '.join(sorted(known))}" if known else "; this resource takes none"))
    for key in keys:
        p = known[key]
        raw = request.query.getall(key)
        values = [v for item in raw for v in item.split(",")] if p.array else raw
        if not p.array and len(values) > 1:
            raise Problem(400, f"query parameter '{key}' given more than once")
        conv = []
        for v in values:
            if p.type == "integer":
                try:
                    v = int(v)
                except ValueError:
                    raise Problem(400, f"query parameter '{key}': {v!r} is not an integer") from None
            elif p.type == "number":
                try:
                    v = float(v)
                except ValueError:
                    raise Problem(400, f"query parameter '{key}': {v!r} is not a number") from None
                if not math.isfinite(v):
                    raise Problem(400, f"query parameter '{key}': {v!r} is not a finite number")
            elif v == "":
                raise Problem(400, f"query parameter '{key}' is empty")
            if p.enum and v not in p.enum:
                raise Problem(400, f"query parameter '{key}': {v!r} is not one of {list(p.enum)}")
            if p.minimum is not None and v < p.minimum or p.maximum is not None and v > p.maximum:
                raise Problem(400, f"query parameter '{key}': {v!r} is out of range [{p.minimum}, {p.maximum}]")
            conv.append(v)
        out[key] = conv if p.array else conv[0]
    for p in op.query:
        if p.required and p.name not in out:
            raise Problem(400, f"query parameter '{p.name}' is required")
    return out


# ------------------------------------------------------------------ bodies

def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _depth(data: Any) -> int:
    """Nesting depth of arrays and objects, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_BODY_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def decode_body(raw: bytes, content_type: str) -> dict:
    """A request body as a JSON object, or a 400 Problem saying what is wrong with it."""
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise Problem(400, f"request body must be application/json, got {content_type or 'no Content-Type'!r}")
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(400, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise Problem(400, "request body is not UTF-8") from None
    except RecursionError:
        raise Problem(400, f"request body is nested more than {MAX_BODY_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, NaN / Infinity
        raise Problem(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Problem(400, "request body must be a JSON object")
    if _depth(data) > MAX_BODY_DEPTH:
        raise Problem(400, f"request body is nested more than {MAX_BODY_DEPTH} levels deep")
    return data


async def read_body(request: web.Request) -> dict:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise Problem(400, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Problem(400, f"request body is larger than {MAX_BODY_BYTES} bytes") from None
    return decode_body(raw, request.content_type)


def timestamp_field(body: dict, field: str) -> float | None:
    """An ETSI TimeStamp ({"seconds": s, "nanoSeconds": n}) as Unix seconds; None when absent."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Problem(400, f"'{field}' must be a TimeStamp {{\"seconds\": ..., \"nanoSeconds\": ...}}")
    seconds, nanos = value.get("seconds"), value.get("nanoSeconds", 0)
    for name, v, top in (("seconds", seconds, 2 ** 32), ("nanoSeconds", nanos, 10 ** 9)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < top:
            raise Problem(400, f"'{field}.{name}' must be an integer in [0, {top})")
    return seconds + nanos / 1e9
