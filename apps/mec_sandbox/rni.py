"""Radio Network Information API, ETSI GS MEC 012 (rni/v2) as AdvantEDGE 1.9.2 serves it: rab_info,
plmn_info, layer2_meas; CellChangeSubscription with CellChangeNotification and, at its
``expiryDeadline``, an ExpiryNotification."""

from __future__ import annotations

import json

from .core import Sandbox
from .problems import Problem, bytes_response, json_response
from .spec import RNI
from .subscriptions import SubscriptionKind, expiry_deadline, expiry_notification, links_list, with_self_link

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


class RniApi:
    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.cell_ids = {p.cell_id for p in sb.scenario.poas.values() if p.cell_id}
        sb.subs.register(SubscriptionKind(
            name="rni", collection=f"{RNI}/subscriptions", check=self._check, represent=with_self_link,
            list_body=lambda subs, url, q: links_list(subs, url), deadline=expiry_deadline,
            expiry_note=expiry_notification))
        sb.mobility.listeners.append(self.on_changes)

    # ------------------------------------------------------------ queries
    def _filter(self, q) -> tuple[set | None, set | None]:
        cells = set(q["cell_id"]) if "cell_id" in q else None
        ues = set(q["ue_ipv4_address"]) if "ue_ipv4_address" in q else None
        for ue in ues or ():
            if ue not in self.sb.scenario.ues:
                raise Problem(404, f"user '{ue}' not found")
        if cells is not None:
            missing = sorted(cells - self.cell_ids)
            if missing:
                raise Problem(404, f"cell(s) {missing} not found")
        return cells, ues

    def _ues_by_4g_cell(self, cells, ues) -> dict[str, list[str]]:
        poas = self.sb.scenario.poas
        out = {}
        for poa, members in self.sb.index().by_4g_poa.items():
            if cells is not None and poas[poa].cell_id not in cells:
                continue
            if ues is not None:
                members = [ue for ue in members if ue in ues]
                if not members:
                    continue
            out[poa] = members
        return out

    async def rab_info(self, request, q):
        # the answer is the same for the whole step but for its requestId: cache the rest, serialised
        cache = self.sb.cache()
        key = ("rab_info", request.query_string)
        tail = cache.get(key)
        if tail is None:
            cells, ues = self._filter(q)
            if q.get("erab_id", 1) != 1 or q.get("qci", 80) != 80:
                by_cell = {}
            else:
                by_cell = self._ues_by_4g_cell(cells, ues)
            info = [{"ecgi": self.sb.ecgi(poa), "ueInfo": [
                {"associateId": [{"type": 1, "value": ue}],
                 "erabInfo": [{"erabId": 1, "erabQosParameters": {"qci": 80}}]} for ue in members]}
                for poa, members in sorted(by_cell.items())]
            body = {"timeStamp": self.sb.ts(), "cellUserInfo": info}
            if "app_ins_id" in q:
                body["appInstanceId"] = q["app_ins_id"]
            tail = cache[key] = _DUMPS(body).encode()[1:]  # without the opening brace
        return bytes_response(b'{"requestId":"%d",' % next(self.sb.ids) + tail)

    async def plmn_info(self, request, q):
        plmn = {"mcc": self.sb.scenario.mcc, "mnc": self.sb.scenario.mnc}
        return json_response([{"appInstanceId": app, "plmn": [plmn], "timeStamp": self.sb.ts()}
                              for app in q["app_ins_id"]])

    async def layer2_meas(self, request, q):
        cells, ues = self._filter(q)
        by_cell = self._ues_by_4g_cell(cells, ues)
        cell_info, ue_info = [], []
        for poa, members in sorted(by_cell.items()):
            n = len(members)
            cell_info.append({"ecgi": self.sb.ecgi(poa), "dl_gbr_prb_usage_cell": min(100, 10 * n),
                              "ul_gbr_prb_usage_cell": min(100, 5 * n), "dl_nongbr_prb_usage_cell": min(100, 20 * n),
                              "ul_nongbr_prb_usage_cell": min(100, 10 * n), "number_of_active_ue_dl_gbr_cell": n,
                              "number_of_active_ue_ul_gbr_cell": n})
            for ue in members:
                ue_info.append({"ecgi": self.sb.ecgi(poa), "associateId": [{"type": 1, "value": ue}],
                                "dl_gbr_delay_ue": 10, "ul_gbr_delay_ue": 10, "dl_gbr_throughput_ue": 1000,
                                "ul_gbr_throughput_ue": 1000})
        return json_response({"timeStamp": self.sb.ts(), "cellInfo": cell_info, "cellUEInfo": ue_info})

    # ------------------------------------------------------------ subscriptions
    @staticmethod
    def _check(body: dict) -> tuple[dict, object, str]:
        body = {k: v for k, v in body.items() if k != "_links"}
        stype = body.get("subscriptionType")
        if stype != "CellChangeSubscription":
            if isinstance(stype, str) and stype.endswith("Subscription"):
                raise Problem(501, f"subscriptionType '{stype}' is not implemented; only CellChangeSubscription")
            raise Problem(400, "'subscriptionType' must be 'CellChangeSubscription'")
        f = body.get("filterCriteriaAssocHo")
        if f is not None and not isinstance(f, dict):
            raise Problem(400, "'filterCriteriaAssocHo' must be an object")
        for name in ("associateId", "ecgi", "hoStatus"):
            if f and f.get(name) is not None and not isinstance(f[name], list):
                raise Problem(400, f"'filterCriteriaAssocHo.{name}' must be a list")
        return body, body.get("callbackReference"), "callbackReference"

    def on_changes(self, changes) -> None:
        if not self.sb.subs.has("rni"):
            return
        subs = self.sb.subs.of("rni")
        for c in changes:
            if c.new_cell == c.old_cell or c.new_cell is None:
                continue
            src = self.sb.ecgi(c.old_cell) if c.old_cell else None
            trg = self.sb.ecgi(c.new_cell)
            for sub in subs:
                f = sub.body.get("filterCriteriaAssocHo") or {}
                ids = [a.get("value") for a in f.get("associateId") or [] if isinstance(a, dict)]
                if ids and c.ue not in ids:
                    continue
                cells = [e.get("cellId") for e in f.get("ecgi") or [] if isinstance(e, dict)]
                if cells and trg["cellId"] not in cells and (src is None or src["cellId"] not in cells):
                    continue
                if f.get("hoStatus") and 3 not in f["hoStatus"] and "COMPLETED" not in f["hoStatus"]:
                    continue
                note = {"notificationType": "CellChangeNotification", "timeStamp": self.sb.ts(c.t), "hoStatus": 3,
                        "associateId": [{"type": 1, "value": c.ue}], "trgEcgi": [trg],
                        "_links": {"subscription": {"href": sub.url}}}
                if src:
                    note["srcEcgi"] = src
                self.sb.subs.send(sub, note, c.ue, self.sb.at(c.t))
