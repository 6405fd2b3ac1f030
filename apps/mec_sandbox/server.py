"""The aiohttp application: routes every operation of the table in ``spec.py`` to its API
(location.py: MEC 013, rni.py: MEC 012, ams.py: MEC 021, subscriptions.py: the subscription resource
they share, control.py: sandbox-ctrl) over the shared state of ``core.py``."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from . import __version__
from .ams import AmsApi
from .control import ControlApi
from .core import Clock, Sandbox
from .location import LocationApi
from .problems import MAX_BODY_BYTES, Problem, bytes_response, parse_query, problem_middleware
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
    return handle


def build_app(sb: Sandbox) -> web.Application:
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY_BYTES)
    apis = {"location": LocationApi(sb), "rni": RniApi(sb), "ams": AmsApi(sb), "ctrl": ControlApi(sb),
            "subs": sb.subs}
    app["sandbox"] = sb
    app["apis"] = apis
    doc = json.dumps(openapi_document(sb.base, __version__), indent=1).encode()

    async def openapi(request):
        return web.Response(body=doc, content_type="application/json")

    app.router.add_get(f"{sb.base}/openapi.json", openapi)
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
