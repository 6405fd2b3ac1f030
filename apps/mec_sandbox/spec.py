"""The operations the sandbox serves, as data: routing, query validation and the OpenAPI document
are all derived from this one table, so the document cannot drift from what is served."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"  # string | integer | number
    array: bool = False
    required: bool = False
    enum: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""

    def schema(self) -> dict:
        item: dict = {"type": self.type}
        if self.enum:
            item["enum"] = list(self.enum)
        if self.minimum is not None:
            item["minimum"] = self.minimum
        if self.maximum is not None:
            item["maximum"] = self.maximum
        return {"type": "array", "items": item} if self.array else item


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # relative to the base path, with {placeholders}
    handler: str
    summary: str
    tag: str
    query: tuple[Param, ...] = ()
    body: str | None = None  # name of the request body wrapper, documentation only
    status: int = 200
    implemented: bool = True
    responses: dict = field(default_factory=dict)


EVENTS = ("Entering", "Leaving", "Transferring")
LOC = "location/v2"
RNI = "rni/v2"
AMS = "amsi/v1"
CTRL = "sandbox-ctrl/v1"

_RNI_COMMON = (Param("app_ins_id", description="application instance id"),
               Param("cell_id", array=True, description="E-UTRAN cell identities"),
               Param("ue_ipv4_address", array=True, description="UE IPv4 addresses (the scenario's UE names)"))

OPERATIONS: tuple[Op, ...] = (
    # --- Location, ETSI GS MEC 013 ---
    Op("GET", f"/{LOC}/queries/users", "location.users", "Users in the network (filters combine with AND)", "location",
       (Param("zoneId", array=True), Param("accessPointId", array=True), Param("address", array=True))),
    Op("GET", f"/{LOC}/queries/zones", "location.zones", "All zones", "location"),
    Op("GET", f"/{LOC}/queries/zones/{{zoneId}}", "location.zone", "One zone", "location"),
    Op("GET", f"/{LOC}/queries/zones/{{zoneId}}/accessPoints", "location.access_points", "Access points of a zone",
       "location", (Param("interestRealm"),)),
    Op("GET", f"/{LOC}/queries/zones/{{zoneId}}/accessPoints/{{accessPointId}}", "location.access_point",
       "One access point", "location"),
    Op("GET", f"/{LOC}/queries/distance", "location.distance",
       "Distance between two UEs, or a UE and a point", "location",
       (Param("address", array=True, required=True, description="one or two UE addresses"),
        Param("requester"), Param("latitude", "number", minimum=-90, maximum=90),
        Param("longitude", "number", minimum=-180, maximum=180))),
    *[op for kind in ("userTracking", "zonalTraffic", "zoneStatus") for op in (
        Op("GET", f"/{LOC}/subscriptions/{kind}", f"subs.list:{kind}", f"List {kind} subscriptions", "location"),
        Op("POST", f"/{LOC}/subscriptions/{kind}", f"subs.create:{kind}", f"Create a {kind} subscription",
           "location", body=f"{kind}Subscription", status=201),
        Op("GET", f"/{LOC}/subscriptions/{kind}/{{subscriptionId}}", f"subs.get:{kind}",
           f"Read a {kind} subscription", "location"),
        Op("PUT", f"/{LOC}/subscriptions/{kind}/{{subscriptionId}}", f"subs.put:{kind}",
           f"Replace a {kind} subscription", "location", body=f"{kind}Subscription"),
        Op("DELETE", f"/{LOC}/subscriptions/{kind}/{{subscriptionId}}", f"subs.delete:{kind}",
           f"Delete a {kind} subscription", "location", status=204))],
    *[Op(m, f"/{LOC}/subscriptions/{kind}", "ctrl.not_implemented", f"{kind} subscriptions (not implemented)",
         "location", implemented=False) for kind in ("periodic", "circle", "distance") for m in ("GET", "POST")],
    # --- Radio Network Information, ETSI GS MEC 012 ---
    Op("GET", f"/{RNI}/queries/rab_info", "rni.rab_info", "E-RAB information of UEs on 4G cells", "rni",
       (*_RNI_COMMON, Param("erab_id", "integer", minimum=1, maximum=15), Param("qci", "integer", minimum=1,
                                                                                maximum=255))),
    Op("GET", f"/{RNI}/queries/plmn_info", "rni.plmn_info", "PLMN of the network", "rni",
       (Param("app_ins_id", array=True, required=True),)),
    Op("GET", f"/{RNI}/queries/layer2_meas", "rni.layer2_meas", "Layer 2 measurements (synthetic)", "rni",
       _RNI_COMMON),
    Op("GET", f"/{RNI}/queries/s1_bearer_info", "ctrl.not_implemented", "S1 bearer information (not implemented)",
       "rni", implemented=False),
    Op("GET", f"/{RNI}/subscriptions", "subs.list:rni", "List RNI subscriptions", "rni",
       (Param("subscription_type", enum=("cell_change",)),)),
    Op("POST", f"/{RNI}/subscriptions", "subs.create:rni", "Create a CellChangeSubscription", "rni",
       body="CellChangeSubscription", status=201),
    Op("GET", f"/{RNI}/subscriptions/{{subscriptionId}}", "subs.get:rni", "Read an RNI subscription", "rni"),
    Op("PUT", f"/{RNI}/subscriptions/{{subscriptionId}}", "subs.put:rni", "Replace an RNI subscription", "rni",
       body="CellChangeSubscription"),
    Op("DELETE", f"/{RNI}/subscriptions/{{subscriptionId}}", "subs.delete:rni", "Delete an RNI subscription",
       "rni", status=204),
    # --- Application Mobility, ETSI GS MEC 021 ---
    Op("GET", f"/{AMS}/app_mobility_services", "ams.reg_list", "List registrations", "amsi",
       (Param("filter"), Param("all_fields"), Param("fields"), Param("exclude_fields"), Param("exclude_default"))),
    Op("POST", f"/{AMS}/app_mobility_services", "ams.reg_create", "Register an application", "amsi",
       body="RegistrationInfo", status=201),
    Op("GET", f"/{AMS}/app_mobility_services/{{appMobilityServiceId}}", "ams.reg_get", "Read a registration",
       "amsi"),
    Op("PUT", f"/{AMS}/app_mobility_services/{{appMobilityServiceId}}", "ams.reg_put",
       "Update a registration (report contextTransferState)", "amsi", body="RegistrationInfo"),
    Op("DELETE", f"/{AMS}/app_mobility_services/{{appMobilityServiceId}}", "ams.reg_delete",
       "Delete a registration", "amsi", status=204),
    Op("POST", f"/{AMS}/app_mobility_services/{{appMobilityServiceId}}/deregister_task", "ams.reg_deregister",
       "Deregister an application", "amsi", status=204),
    Op("GET", f"/{AMS}/queries/adjacent_app_instances", "ams.adjacent_app_instances",
       "Registered application instances (AdjacentAppInstanceInfo), e.g. filter=(neq,appInstanceId,<own id>)",
       "amsi", (Param("filter",
                      description="ETSI GS MEC 009 attribute filter: (op,attribute,value[,value...]) joined by ';', "
                                  "op eq|neq|in|nin|cont|ncont, attribute appDId, appInstanceId, "
                                  "registeredInstanceId, mecHostInformation/hostId"),
                Param("all_fields"), Param("fields"), Param("exclude_fields"), Param("exclude_default"))),
    Op("GET", f"/{AMS}/subscriptions", "subs.list:ams", "List AMS subscriptions", "amsi",
       (Param("subscriptionType", enum=("mobility_proc", "adj_app_info")),)),
    Op("POST", f"/{AMS}/subscriptions", "subs.create:ams",
       "Create a MobilityProcedureSubscription or AdjacentAppInfoSubscription", "amsi",
       body="MobilityProcedureSubscription", status=201),
    Op("GET", f"/{AMS}/subscriptions/{{subscriptionId}}", "subs.get:ams", "Read an AMS subscription", "amsi"),
    Op("PUT", f"/{AMS}/subscriptions/{{subscriptionId}}", "subs.put:ams", "Replace an AMS subscription", "amsi",
       body="MobilityProcedureSubscription"),
    Op("DELETE", f"/{AMS}/subscriptions/{{subscriptionId}}", "subs.delete:ams", "Delete an AMS subscription",
       "amsi", status=204),
    # --- sandbox control (not ETSI): simulated clock and state ---
    Op("GET", f"/{CTRL}/clock", "ctrl.clock", "Simulated clock", "sandbox-ctrl"),
    Op("POST", f"/{CTRL}/clock", "ctrl.clock_set",
       "Jump the simulated clock ahead: body {\"advanceBy\": s} or {\"simTime\": t}", "sandbox-ctrl",
       body="ClockJump"),
    Op("GET", f"/{CTRL}/ues", "ctrl.ues", "Every UE's position, access point, zone and MEC host",
       "sandbox-ctrl", (Param("address", array=True),)),
    Op("GET", f"/{CTRL}/placement", "ctrl.placement", "MEC host placement in use", "sandbox-ctrl"),
    Op("GET", f"/{CTRL}/notifications", "ctrl.notifications", "Delivery counters per subscription",
       "sandbox-ctrl"),
)

_PROBLEM = {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                             "status": {"type": "integer"}, "detail": {"type": "string"},
                                             "instance": {"type": "string"}}}


def openapi_document(base_path: str, version: str) -> dict:
    """OpenAPI 3.0 document describing every operation and its query parameters."""
    paths: dict = {}
    for op in OPERATIONS:
        item = paths.setdefault(base_path + op.path, {})
        params = [{"name": p.name, "in": "query", "required": p.required, "schema": p.schema(),
                   **({"description": p.description} if p.description else {}),
                   **({"style": "form", "explode": True} if p.array else {})} for p in op.query]
        for name in [s[1:-1] for s in op.path.split("/") if s.startswith("{")]:
            params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
        responses = {str(op.status): {"description": "success"}} if op.implemented else {}
        problem = {"description": "ProblemDetails",
                   "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}
        for code in (["400", "404"] if op.implemented else ["501"]):
            responses[code] = problem
        operation_id = f"{op.method.lower()}_{op.handler.replace(':', '_').replace('.', '_')}"
        entry = {"summary": op.summary, "operationId": operation_id,
                 "tags": [op.tag], "parameters": params, "responses": responses}
        if op.body:
            entry["requestBody"] = {"required": True, "description": op.body,
                                    "content": {"application/json": {"schema": {"type": "object"}}}}
        item[op.method.lower()] = entry
    return {"openapi": "3.0.3",
            "info": {"title": "mec_sandbox: local ETSI MEC Sandbox (MEC 013 location/v2, MEC 012 rni/v2, "
                              "MEC 021 amsi/v1)", "version": version},
            "servers": [{"url": "/"}],
            "paths": paths,
            "components": {"schemas": {"ProblemDetails": _PROBLEM}}}
