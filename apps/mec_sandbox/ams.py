"""Application Mobility Service API, ETSI GS MEC 021 (amsi/v1) with AdvantEDGE 1.9.2's shapes
(MEC 021 v2.2.1 models): registrations (app_mobility_services), queries/adjacent_app_instances,
MobilityProcedureSubscription and AdjacentAppInfoSubscription, ExpiryNotification at a
subscription's ``expiryDeadline``.

A registration lists devices (``deviceInformation[].associateId.value`` = a UE address). When a
registered UE's serving MEC host changes, the matching MobilityProcedureSubscriptions get
INTERHOST_MOVEOUT_TRIGGERED; the consumer's PUT of ``contextTransferState`` gives COMPLETED or FAILED.
``filterCriteria.mobilityStatus`` selects which of these a subscription gets; left out, it is
INTERHOST_MOVEOUT_TRIGGERED only, as MEC 021 and AdvantEDGE say, and the answer shows that default.
"""

from __future__ import annotations

import re

from aiohttp import web

from .core import Sandbox
from .problems import Problem, json_response, read_body
from .spec import AMS
from .subscriptions import SubscriptionKind, expiry_deadline, expiry_notification, links_list, with_self_link

CONTEXT_STATES = ("NOT_TRANSFERRED", "USER_CONTEXT_TRANSFER_COMPLETED", "USER_CONTEXT_TRANSFER_FAILED")
MOBILITY_STATUSES = ("INTERHOST_MOVEOUT_TRIGGERED", "INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED")
# MEC 021 v2.1.1 (older AdvantEDGE models) numbered them 1 to 3; a filter may use either form
STATUS_NUMBERS = {name: i for i, name in enumerate(MOBILITY_STATUSES, 1)}
SUBSCRIPTION_TYPES = {"mobility_proc": "MobilityProcedureSubscription", "adj_app_info": "AdjacentAppInfoSubscription"}
# ETSI GS MEC 009 attribute filters, e.g. (eq,appInstanceId,app-1);(neq,mecHostInformation/hostId,mep-zone01)
_FILTER = re.compile(r"\((eq|neq|in|nin|cont|ncont),([A-Za-z0-9_/]+),([^()]*)\)")
_FILTER_ATTRIBUTES = ("appDId", "appInstanceId", "registeredInstanceId", "mecHostInformation/hostId",
                      "mecHostInformation/hostName")


class AmsApi:
    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.registrations: dict[str, dict] = {}
        self.pending_moves: dict[tuple[str, str], dict] = {}  # (registration id, ue) -> move
        sb.subs.register(SubscriptionKind(
            name="ams", collection=f"{AMS}/subscriptions", check=self._check, represent=with_self_link,
            list_body=self._list_body, deadline=expiry_deadline, expiry_note=expiry_notification))
        sb.mobility.listeners.append(self.on_changes)

    # ------------------------------------------------------------ registrations
    def _check_registration(self, body: dict) -> dict:
        consumer = body.get("serviceConsumerId")
        if not isinstance(consumer, dict) or not (consumer.get("appInstanceId") or consumer.get("mepId")):
            raise Problem(400, "'serviceConsumerId' must hold 'appInstanceId' or 'mepId'")
        for name in ("appInstanceId", "mepId"):
            if consumer.get(name) is not None and not isinstance(consumer[name], str):
                raise Problem(400, f"'serviceConsumerId.{name}' must be a string")
        devices = body.get("deviceInformation") or []
        if not isinstance(devices, list):
            raise Problem(400, "'deviceInformation' must be a list")
        for i, dev in enumerate(devices):
            aid = dev.get("associateId") if isinstance(dev, dict) else None
            if not isinstance(aid, dict) or not isinstance(aid.get("value"), str):
                raise Problem(400, f"deviceInformation[{i}].associateId must be "
                                   f"{{\"type\": ..., \"value\": <UE address>}}")
            if aid["value"] not in self.sb.scenario.ues:
                raise Problem(400, f"deviceInformation[{i}].associateId.value: no user '{aid['value']}' "
                                   "in the scenario")
            state = dev.get("contextTransferState", "NOT_TRANSFERRED")
            if state not in CONTEXT_STATES:
                raise Problem(400, f"deviceInformation[{i}].contextTransferState must be one of {list(CONTEXT_STATES)}")
            dev.setdefault("contextTransferState", "NOT_TRANSFERRED")
            dev.setdefault("appMobilityServiceLevel", "APP_MOBILITY_WITH_CONFIRMATION")
        return body

    def _registration(self, request) -> tuple[str, dict]:
        sid = request.match_info["appMobilityServiceId"]
        if sid not in self.registrations:
            raise Problem(404, f"registration '{sid}' not found")
        return sid, self.registrations[sid]

    async def reg_list(self, request, q):
        return json_response(list(self.registrations.values()))

    async def reg_create(self, request, q):
        body = self._check_registration(await read_body(request))
        sid = str(next(self.sb.ids))
        body["appMobilityServiceId"] = sid
        self.registrations[sid] = body
        self._adjacent_apps()
        return json_response(body, 201, {"Location": self.sb.url(request, f"{AMS}/app_mobility_services/{sid}")})

    async def reg_get(self, request, q):
        return json_response(self._registration(request)[1])

    async def reg_put(self, request, q):
        sid, old = self._registration(request)
        body = self._check_registration(await read_body(request))
        body["appMobilityServiceId"] = sid
        before = {d["associateId"]["value"]: d.get("contextTransferState") for d in old.get("deviceInformation") or []}
        self.registrations[sid] = body
        for dev in body.get("deviceInformation") or []:
            ue, state = dev["associateId"]["value"], dev.get("contextTransferState")
            if state == before.get(ue) or state == "NOT_TRANSFERRED":
                continue
            move = self.pending_moves.pop((sid, ue), None)
            if move is None:
                continue  # nothing in flight for this UE: a state report without a move
            status = "INTERHOST_MOVEOUT_COMPLETED" if state == "USER_CONTEXT_TRANSFER_COMPLETED" \
                else "INTERHOST_MOVEOUT_FAILED"
            self._mobility_notification(body, ue, status, move, None)
        if _app_id(old) != _app_id(body):
            self._adjacent_apps()
        return json_response(body)

    async def reg_delete(self, request, q):
        sid, _ = self._registration(request)
        del self.registrations[sid]
        for key in [k for k in self.pending_moves if k[0] == sid]:
            del self.pending_moves[key]
        self._adjacent_apps()
        return web.Response(status=204)

    async def reg_deregister(self, request, q):
        return await self.reg_delete(request, q)

    # ------------------------------------------------------------ queries/adjacent_app_instances
    def _instances(self) -> list[dict]:
        """AdjacentAppInstanceInfo of every registered application instance (one per instance id)."""
        out: dict[str, dict] = {}
        for reg in self.registrations.values():
            consumer = reg.get("serviceConsumerId") or {}
            app = consumer.get("appInstanceId")
            if not app or app in out:
                continue
            info = {"appDId": app, "appInstanceCommLink": [], "appInstanceId": app, "registeredInstanceId": app}
            if consumer.get("mepId"):
                info["mecHostInformation"] = {"hostId": consumer["mepId"]}
            out[app] = info
        return list(out.values())

    async def adjacent_app_instances(self, request, q):
        found = self._instances()
        for op, attribute, values in _parse_filter(q.get("filter")):
            found = [i for i in found if _matches(op, _attribute(i, attribute), values)]
        return json_response(found)

    # ------------------------------------------------------------ subscriptions
    @staticmethod
    def _check(body: dict) -> tuple[dict, object, str]:
        body = {k: v for k, v in body.items() if k != "_links"}
        stype = body.get("subscriptionType")
        if stype not in SUBSCRIPTION_TYPES.values():
            raise Problem(400, "'subscriptionType' must be 'MobilityProcedureSubscription' or "
                               "'AdjacentAppInfoSubscription'")
        f = body.get("filterCriteria", {})
        if not isinstance(f, dict):
            raise Problem(400, "'filterCriteria' must be an object")
        if f.get("appInstanceId") is not None and not isinstance(f["appInstanceId"], str):
            raise Problem(400, "'filterCriteria.appInstanceId' must be a string")
        if stype == "MobilityProcedureSubscription":
            ids = f.get("associateId")
            if ids is not None and (not isinstance(ids, list) or not all(isinstance(a, dict) for a in ids)):
                raise Problem(400, "'filterCriteria.associateId' must be a list of {\"type\": ..., \"value\": ...}")
            statuses = f.get("mobilityStatus")
            if statuses is None or statuses == []:
                statuses = ["INTERHOST_MOVEOUT_TRIGGERED"]  # MEC 021's default, shown in the answer
            elif not isinstance(statuses, list) or any(
                    isinstance(s, bool) or (s not in MOBILITY_STATUSES and s not in STATUS_NUMBERS.values())
                    for s in statuses):
                raise Problem(400, f"'filterCriteria.mobilityStatus' must be a list of {list(MOBILITY_STATUSES)} "
                                   "(or their numbers 1 to 3)")
            body["filterCriteria"] = dict(f, mobilityStatus=statuses)
        return body, body.get("callbackReference"), "callbackReference"

    def _list_body(self, subs, url: str, q: dict) -> dict:
        wanted = SUBSCRIPTION_TYPES.get(q.get("subscriptionType", ""))
        return links_list([s for s in subs if wanted in (None, s.body["subscriptionType"])], url)

    # ------------------------------------------------------------ events -> notifications
    def on_changes(self, changes) -> None:
        if not self.registrations:
            return
        for c in changes:
            if c.new_host == c.old_host or c.new_host is None or c.old_host is None:
                continue
            for reg_id, reg in list(self.registrations.items()):
                for dev in reg.get("deviceInformation") or []:
                    if (dev.get("associateId") or {}).get("value") != c.ue:
                        continue
                    dev["contextTransferState"] = "NOT_TRANSFERRED"
                    move = {"ue": c.ue, "source": c.old_host, "target": c.new_host, "t": c.t}
                    self.pending_moves[(reg_id, c.ue)] = move
                    self._mobility_notification(reg, c.ue, "INTERHOST_MOVEOUT_TRIGGERED", move, c.t)

    def _mobility_notification(self, reg: dict, ue: str, status: str, move: dict, t: float | None) -> None:
        app = _app_id(reg) or ""
        for sub in self.sb.subs.of("ams"):
            body = sub.body
            if body["subscriptionType"] != "MobilityProcedureSubscription":
                continue
            f = body["filterCriteria"]
            if f.get("appInstanceId") and f["appInstanceId"] != app:
                continue
            ids = [a.get("value") for a in f.get("associateId") or []]
            if ids and ue not in ids:
                continue
            if status not in f["mobilityStatus"] and STATUS_NUMBERS[status] not in f["mobilityStatus"]:
                continue
            note = {"notificationType": "MobilityProcedureNotification", "timeStamp": self.sb.ts(t),
                    "associateId": [{"type": "UE_IPv4_ADDRESS", "value": ue}], "mobilityStatus": status,
                    "targetAppInfo": {"appInstanceId": app,
                                      "commInterface": {"ipAddresses": [{"host": move["target"], "port": 80}]}},
                    "sourceMecHost": move["source"], "targetMecHost": move["target"],
                    "_links": {"subscription": {"href": sub.url}}}
            self.sb.subs.send(sub, note, ue, None if t is None else self.sb.at(t))

    def _adjacent_apps(self) -> None:
        for sub in self.sb.subs.of("ams"):
            body = sub.body
            if body["subscriptionType"] != "AdjacentAppInfoSubscription":
                continue
            own = (body.get("filterCriteria") or {}).get("appInstanceId")
            adjacent = [{"appInstanceId": i["appInstanceId"], "commInterface": {"ipAddresses": []}}
                        for i in self._instances() if i["appInstanceId"] != own]
            self.sb.subs.send(sub, {"notificationType": "AdjacentAppInfoNotification", "timeStamp": self.sb.ts(),
                                    "adjacentAppInfo": adjacent, "_links": {"subscription": {"href": sub.url}}})


def _app_id(reg: dict) -> str | None:
    return (reg.get("serviceConsumerId") or {}).get("appInstanceId")


def _parse_filter(text: str | None) -> list[tuple[str, str, list[str]]]:
    if text is None:
        return []
    out = []
    for part in text.split(";"):
        m = _FILTER.fullmatch(part.strip())
        if not m:
            raise Problem(400, f"query parameter 'filter': {part!r} is not an ETSI GS MEC 009 filter such as "
                               "(eq,appInstanceId,app-1)")
        op, attribute, values = m.group(1), m.group(2), m.group(3).split(",")
        if attribute not in _FILTER_ATTRIBUTES:
            raise Problem(400, f"query parameter 'filter': unknown attribute '{attribute}'; "
                               f"filterable: {', '.join(_FILTER_ATTRIBUTES)}")
        if op in ("eq", "neq", "cont", "ncont") and len(values) != 1:
            raise Problem(400, f"query parameter 'filter': '{op}' takes one value")
        out.append((op, attribute, values))
    return out


def _attribute(info: dict, path: str):
    value = info
    for part in path.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(op: str, value, values: list[str]) -> bool:
    if op == "eq":
        return value == values[0]
    if op == "neq":
        return value != values[0]
    if op == "in":
        return value in values
    if op == "nin":
        return value not in values
    if op == "cont":
        return isinstance(value, str) and values[0] in value
    return not (isinstance(value, str) and values[0] in value)  # ncont
