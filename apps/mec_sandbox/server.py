"""The aiohttp application: routes every operation of the table in ``spec.py`` to its API
(location.py: MEC 013, rni.py: MEC 012, ams.py: MEC 021, subscriptions.py: the subscription resource
they share, control.py: sandbox-ctrl) over the shared state of ``core.py``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from urllib.parse import unquote_plus

from aiohttp import web

from . import __version__
from .ams import AmsApi
from .auth import TOKEN_PATH, Authority, TokenError
from .control import ControlApi
from .core import Clock, Sandbox
from .location import LocationApi
from .problems import (MAX_BODY_BYTES, Problem, bytes_response, json_response, parse_query, problem_middleware,
                       problem_response)
from .rni import RniApi
from .spec import OPERATIONS, Op, openapi_document

__all__ = ["Clock", "Sandbox", "build_app"]


def _make_handler(sb: Sandbox, apis: dict, op: Op):
    target, _, arg = op.handler.partition(":")
    api, _, method = target.partition(".")
    fn = getattr(apis[api], method)
    required = any(p.required for p in op.query)
    cacheable = getattr(fn, "cacheable", False)

    async def handle(request: web.Request) -> web.StreamResponse:
        mep = request.match_info.get("mep")
        if mep is not None and mep not in sb.meps:
            raise Problem(404, f"MEC platform '{mep}' not found")
        sb.sync()
        if cacheable:  # same step, root, path and query string: the same answer
            key = (request.path, sb.root(request), request.query_string)
            cache = sb.cache()
            body = cache.get(key)
            if body is not None:
                return bytes_response(body)
        q = parse_query(op, request) if request.query_string or required else {}
        response = await (fn(request, q, arg) if arg else fn(request, q))
        if cacheable and response.status == 200:
            cache[key] = response.body
        return response
    handle.mec_scope = required_scope(op)
    return handle


def required_scope(op: Op) -> str:
    """control: changing the sandbox; subscribe: subscriptions (their listing and reading too: a callback URL
    may carry its consumer's secret) and changes of AMS registrations; read: the rest."""
    if op.tag == "sandbox-ctrl" and op.method != "GET":
        return "control"
    if op.handler.startswith("subs.") or op.method != "GET":
        return "subscribe"
    return "read"


def _auth_middleware(authority: Authority, token_path: str):
    """Every request but the token endpoint's carries a bearer token with the scope of its route
    (``mec_scope`` of the handler; ``read`` for any other route, and any valid token for a path that
    does not exist, so that what exists is not told to strangers)."""

    @web.middleware
    async def check_token(request: web.Request, handler):
        if request.path == token_path:
            return await handler(request)
        match = request.match_info
        scope = None if getattr(match, "http_exception", None) is not None else getattr(match.handler, "mec_scope",
                                                                                        "read")
        try:
            authority.check(request.headers.get("Authorization"), scope)
        except TokenError as exc:
            if exc.status == 403:
                response = problem_response(403, "Forbidden", exc.description, request.path)
            else:
                response = problem_response(401, "Unauthorized", exc.description or
                                            f"a bearer token is required: POST {token_path} with the client "
                                            "credentials grant", request.path)
            response.headers["WWW-Authenticate"] = exc.challenge()
            return response
        return await handler(request)
    return check_token


def _token_error(status: int, error: str, description: str, basic: bool = False) -> web.Response:
    response = json_response({"error": error, "error_description": description}, status=status,
                             headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
    if basic:
        response.headers["WWW-Authenticate"] = 'Basic realm="mec_sandbox"'
    return response


def _token_handler(authority: Authority):
    """RFC 6749 section 4.4: POST grant_type=client_credentials (form-encoded), the client authenticated by
    HTTP Basic (id and secret form-urlencoded, section 2.3.1) or by client_id/client_secret in the form."""

    async def token(request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return _token_error(400, "invalid_request", "send the request as application/x-www-form-urlencoded")
        if request.content_length is not None and request.content_length > 4096:
            return _token_error(400, "invalid_request", "request too large")
        form = await request.post()
        header = request.headers.get("Authorization", "")
        basic = header[:6].lower() == "basic "
        if basic:
            try:
                cid, sep, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                cid, sep, secret = "", "", ""
            if not sep:
                return _token_error(401, "invalid_client", "malformed Basic credentials", basic=True)
            cid, secret = unquote_plus(cid), unquote_plus(secret)
            if "client_secret" in form:
                return _token_error(400, "invalid_request", "authenticate the client one way only")
        else:
            cid, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if form.get("grant_type") != "client_credentials":
            return _token_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
        client = authority.authenticate_client(cid, secret) if cid else None
        if client is None:
            return _token_error(401, "invalid_client", "unknown client or wrong secret", basic=basic)
        try:
            answer = authority.issue(client, form.get("scope"))
        except TokenError as exc:
            return _token_error(exc.status, exc.error, exc.description)
        return json_response(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
    return token


def build_app(sb: Sandbox, authority: Authority) -> web.Application:
    """The application; every route but the token endpoint needs a bearer token from ``authority``."""
    token_path = f"{sb.base}/{TOKEN_PATH}"
    app = web.Application(middlewares=[problem_middleware, _auth_middleware(authority, token_path)],
                          client_max_size=MAX_BODY_BYTES)
    apis = {"location": LocationApi(sb), "rni": RniApi(sb), "ams": AmsApi(sb), "ctrl": ControlApi(sb),
            "subs": sb.subs}
    app["sandbox"] = sb
    app["apis"] = apis
    doc = json.dumps(openapi_document(sb.base, __version__), indent=1).encode()

    async def openapi(request):
        return web.Response(body=doc, content_type="application/json")

    app.router.add_get(f"{sb.base}/openapi.json", openapi)
    app.router.add_post(token_path, _token_handler(authority))
    for op in OPERATIONS:
        h = _make_handler(sb, apis, op)
        app.router.add_route(op.method, sb.base + op.path, h)
        if op.tag != "sandbox-ctrl":
            app.router.add_route(op.method, f"{sb.base}/{{mep}}{op.path}", h)

    async def on_startup(app):
        await sb.notifier.start()
        if sb.epoch_from_start:  # simulated time 0 = now, so timestamps match the wall clock at speed 1
            sb.clock.epoch = time.time() - sb.mobility.time
        if sb.clock.speed > 0:
            sb.clock.jump(sb.mobility.time)
            sb._ticker = asyncio.get_running_loop().create_task(sb.run_ticker())

    async def on_cleanup(app):
        if sb._ticker:
            sb._ticker.cancel()
            await asyncio.gather(sb._ticker, return_exceptions=True)
        await sb.notifier.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
