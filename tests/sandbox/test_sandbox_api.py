"""API shapes of every endpoint, against a real sandbox process on loopback (manual clock)."""

import pytest
from mec_sandbox.spec import OPERATIONS
from sandbox_helpers import BASE

TS = {"seconds", "nanoSeconds"}


def problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_users_lists_every_ue_in_the_sandbox_shape(sandbox):
    body = sandbox.get("location/v2/queries/users").json()
    users = body["userList"]["user"]
    assert body["userList"]["resourceURL"].endswith(f"{BASE}/location/v2/queries/users")
    assert {u["address"] for u in users} == {"10.100.0.1", "10.100.0.2", "10.10.0.1", "10.10.0.2", "10.1.0.1",
                                             "10.1.0.2"}
    car = next(u for u in users if u["address"] == "10.100.0.1")
    assert car["zoneId"] == "zone01" and car["accessPointId"] == "4g-macro-cell-2"
    assert set(car["timestamp"]) == TS
    loc = car["locationInfo"]
    assert loc["shape"] == 2 and len(loc["latitude"]) == 1 and 43.7 < loc["latitude"][0] < 43.76
    assert 7.40 < loc["longitude"][0] < 7.45


def test_users_filters_combine(sandbox):
    ues = sandbox.ues()
    zone01 = sandbox.get("location/v2/queries/users", params={"zoneId": "zone01"}).json()["userList"]["user"]
    assert {u["address"] for u in zone01} == {a for a, u in ues.items() if u["zoneId"] == "zone01"}
    by_ap = sandbox.get("location/v2/queries/users", params={"accessPointId": "4g-macro-cell-6"}).json()
    assert [u["address"] for u in by_ap["userList"]["user"]] == ["10.1.0.1"]
    two = sandbox.get("location/v2/queries/users", params=[("address", "10.1.0.1"), ("address", "10.1.0.2")]).json()
    assert sorted(u["address"] for u in two["userList"]["user"]) == ["10.1.0.1", "10.1.0.2"]
    none = sandbox.get("location/v2/queries/users", params={"zoneId": "zone04", "address": "10.1.0.1"}).json()
    assert none["userList"]["user"] == []


def test_zones_zone_and_access_points(sandbox):
    zones = sandbox.get("location/v2/queries/zones").json()["zoneList"]
    assert [z["zoneId"] for z in zones["zone"]] == ["zone01", "zone02", "zone03", "zone04"]
    assert sum(z["numberOfUsers"] for z in zones["zone"]) == 6
    assert sum(z["numberOfAccessPoints"] for z in zones["zone"]) == 41
    zone = sandbox.get("location/v2/queries/zones/zone02").json()["zoneInfo"]
    assert zone["zoneId"] == "zone02" and zone["numberOfAccessPoints"] == 11
    assert zone["numberOfUnserviceableAccessPoints"] == 0 and zone["resourceURL"].endswith("/zones/zone02")
    aps = sandbox.get("location/v2/queries/zones/zone04/accessPoints").json()["accessPointList"]
    assert aps["zoneId"] == "zone04" and len(aps["accessPoint"]) == 15
    types = {a["accessPointId"]: a["connectionType"] for a in aps["accessPoint"]}
    assert types["4g-macro-cell-8"] == "Macro" and types["5g-small-cell-13"] == "5G" and types["w8"] == "Wifi"
    ap = sandbox.get("location/v2/queries/zones/zone03/accessPoints/4g-macro-cell-6").json()["accessPointInfo"]
    assert ap["accessPointId"] == "4g-macro-cell-6" and ap["operationStatus"] == "Serviceable"
    assert ap["numberOfUsers"] == 1 and ap["locationInfo"]["latitude"] == [43.737087]


def test_distance_between_two_users_and_to_a_point(sandbox):
    d = sandbox.get("location/v2/queries/distance", params=[("address", "10.1.0.1"), ("address", "10.1.0.2")])
    body = d.json()["terminalDistance"]
    assert 400 < body["distance"] < 600 and set(body["timestamp"]) == TS
    p = sandbox.get("location/v2/queries/distance",
                    params={"address": "10.1.0.1", "latitude": 43.736515, "longitude": 7.421802}).json()
    assert p["terminalDistance"]["distance"] == 0


@pytest.mark.parametrize("path, params", [
    ("location/v2/queries/users", {"address": "10.9.9.9"}),
    ("location/v2/queries/users", {"zoneId": "zone99"}),
    ("location/v2/queries/users", {"accessPointId": "ap-x"}),
    ("location/v2/queries/zones/zone99", None),
    ("location/v2/queries/zones/zone99/accessPoints", None),
    ("location/v2/queries/zones/zone01/accessPoints/w3", None),  # w3 is in zone02
    ("location/v2/queries/distance", {"address": ["10.1.0.1", "10.9.9.9"]}),
    ("rni/v2/queries/rab_info", {"ue_ipv4_address": "10.9.9.9"}),
    ("rni/v2/queries/rab_info", {"cell_id": "DEADBEE"}),
    ("location/v2/subscriptions/userTracking/999", None),
    ("rni/v2/subscriptions/999", None),
    ("amsi/v1/app_mobility_services/999", None),
    ("amsi/v1/subscriptions/999", None),
    ("location/v2/queries/nothing", None),
    ("nope-mep/location/v2/queries/zones", None),
])
def test_unknown_things_are_404_problem_details(sandbox, path, params):
    problem(sandbox.get(path, params=params), 404)


@pytest.mark.parametrize("path, params", [
    ("location/v2/queries/users", {"zone": "zone01"}),
    ("location/v2/queries/zones", {"x": "1"}),
    ("location/v2/queries/distance", None),
    ("location/v2/queries/distance", {"address": "10.1.0.1"}),
    ("location/v2/queries/distance", {"address": "10.1.0.1", "latitude": "north", "longitude": 7}),
    ("location/v2/queries/distance", {"address": "10.1.0.1", "latitude": 91, "longitude": 7}),
    ("rni/v2/queries/rab_info", {"erab_id": "one"}),
    ("rni/v2/queries/plmn_info", None),
    ("amsi/v1/subscriptions", {"subscriptionType": "everything"}),
])
def test_bad_query_parameters_are_400_problem_details(sandbox, path, params):
    problem(sandbox.get(path, params=params), 400)


@pytest.mark.parametrize("method, path", [
    ("GET", "location/v2/subscriptions/periodic"), ("POST", "location/v2/subscriptions/circle"),
    ("GET", "rni/v2/queries/s1_bearer_info"),
])
def test_not_implemented_is_501(sandbox, method, path):
    problem(sandbox.http.request(method, sandbox.url(path), json={}, timeout=5), 501)


def test_rni_subscription_types_other_than_cell_change_are_501(sandbox, receiver):
    problem(sandbox.post("rni/v2/subscriptions", {"subscriptionType": "MeasRepUeSubscription",
                                                  "callbackReference": receiver.url()}), 501)


def test_rab_info_is_the_unwrapped_shape_app_a1_reads(sandbox):
    body = sandbox.get("rni/v2/queries/rab_info").json()
    assert set(body["timeStamp"]) == TS
    erab = body["cellUserInfo"][0]["ueInfo"][0]["erabInfo"]  # what the seed's A1 prints
    assert erab == [{"erabId": 1, "erabQosParameters": {"qci": 80}}]
    for cell in body["cellUserInfo"]:
        assert set(cell["ecgi"]) == {"cellId", "plmn"} and cell["ecgi"]["plmn"] == {"mcc": "001", "mnc": "001"}
        for ue in cell["ueInfo"]:
            assert ue["associateId"][0]["type"] == 1
    only = sandbox.get("rni/v2/queries/rab_info", params={"cell_id": "6060606", "app_ins_id": "a1"}).json()
    assert only["appInstanceId"] == "a1"
    assert [c["ecgi"]["cellId"] for c in only["cellUserInfo"]] == ["6060606"]
    assert only["cellUserInfo"][0]["ueInfo"][0]["associateId"][0]["value"] == "10.1.0.1"


def test_plmn_info_and_layer2_meas(sandbox):
    plmn = sandbox.get("rni/v2/queries/plmn_info", params={"app_ins_id": "app-1"}).json()
    assert plmn[0]["appInstanceId"] == "app-1" and plmn[0]["plmn"] == [{"mcc": "001", "mnc": "001"}]
    l2 = sandbox.get("rni/v2/queries/layer2_meas").json()
    assert l2["cellInfo"] and l2["cellUEInfo"]
    assert {"ecgi", "dl_gbr_prb_usage_cell", "number_of_active_ue_dl_gbr_cell"} <= set(l2["cellInfo"][0])


def test_mep_scoped_paths_serve_the_same_data(sandbox):
    a = sandbox.get("location/v2/queries/zones").json()["zoneList"]["zone"]
    b = sandbox.get("mep-zone01/location/v2/queries/zones").json()["zoneList"]["zone"]
    assert [z["zoneId"] for z in a] == [z["zoneId"] for z in b]


def test_openapi_document_describes_every_operation(sandbox):
    doc = sandbox.get("openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for op in OPERATIONS:
        entry = doc["paths"][BASE + op.path][op.method.lower()]
        assert [p["name"] for p in entry["parameters"] if p["in"] == "query"] == [p.name for p in op.query]
    users = doc["paths"][f"{BASE}/location/v2/queries/users"]["get"]
    assert {p["name"] for p in users["parameters"]} == {"zoneId", "accessPointId", "address"}


def test_clock_moves_only_forward_and_moves_users(sandbox):
    before = sandbox.get("sandbox-ctrl/v1/clock").json()["simTime"]
    car_before = sandbox.ues()["10.100.0.1"]
    after = sandbox.advance(10)
    assert after["simTime"] == pytest.approx(before + 10)
    car_after = sandbox.ues()["10.100.0.1"]
    assert (car_after["longitude"], car_after["latitude"]) != (car_before["longitude"], car_before["latitude"])
    problem(sandbox.post("sandbox-ctrl/v1/clock", {"simTime": before}), 400)
    problem(sandbox.post("sandbox-ctrl/v1/clock", {"advanceBy": -1}), 400)
