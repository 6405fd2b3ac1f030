"""Issue #11: behaviour checked against AdvantEDGE 1.9.2 (MEC 013 / 012 / 021): the Host a request
came through is the one in its links, even from the cache; subscriptions expire; AMS list shape,
queries/adjacent_app_instances and the mobilityStatus filter."""

import pytest
from sandbox_helpers import BASE, START_TIME, mirror, next_host_change

CAR = "10.100.0.1"


# ------------------------------------------------------------------ links follow the Host header

@pytest.mark.parametrize("path, params, pick", [
    ("location/v2/queries/users", None, lambda b: [b["userList"]["resourceURL"]]
     + [u["resourceURL"] for u in b["userList"]["user"]]),
    ("location/v2/queries/users", {"zoneId": "zone01"}, lambda b: [b["userList"]["resourceURL"]]
     + [u["resourceURL"] for u in b["userList"]["user"]]),
    ("location/v2/queries/zones", None, lambda b: [b["zoneList"]["resourceURL"]]
     + [z["resourceURL"] for z in b["zoneList"]["zone"]]),
    ("location/v2/queries/zones/zone01/accessPoints", None, lambda b: [b["accessPointList"]["resourceURL"]]
     + [a["resourceURL"] for a in b["accessPointList"]["accessPoint"]]),
])
def test_cached_answers_carry_the_host_each_request_came_through(fresh_sandbox, path, params, pick):
    # the same step, the same query, through two gateways, back and forth: each gets its own links
    for _ in range(2):
        for gateway in ("gw-source.lab:8081", "gw-target.lab:8082"):
            r = fresh_sandbox.http.get(fresh_sandbox.url(path), params=params, headers={"Host": gateway}, timeout=5)
            assert r.status_code == 200
            urls = pick(r.json())
            assert urls and all(u.startswith(f"http://{gateway}{BASE}/location/v2/") for u in urls), (gateway, urls)
    direct = pick(fresh_sandbox.get(path, params=params).json())
    assert all(u.startswith(f"http://127.0.0.1:{fresh_sandbox.port}{BASE}/") for u in direct)


def test_cached_answers_follow_the_simulation(fresh_sandbox):
    before = fresh_sandbox.get("location/v2/queries/users", params={"address": CAR}).json()["userList"]["user"][0]
    again = fresh_sandbox.get("location/v2/queries/users", params={"address": CAR}).json()["userList"]["user"][0]
    assert again == before
    fresh_sandbox.advance(30)
    after = fresh_sandbox.get("location/v2/queries/users", params={"address": CAR}).json()["userList"]["user"][0]
    assert after["timestamp"]["seconds"] == before["timestamp"]["seconds"] + 30
    assert after["locationInfo"] != before["locationInfo"]
    zones = fresh_sandbox.get("location/v2/queries/zones").json()["zoneList"]["zone"]
    ues = fresh_sandbox.ues()
    assert {z["zoneId"]: z["numberOfUsers"] for z in zones} == {
        z: sum(1 for u in ues.values() if u["zoneId"] == z) for z in ("zone01", "zone02", "zone03", "zone04")}


def test_rab_info_request_ids_differ_while_the_rest_is_the_steps(fresh_sandbox):
    a = fresh_sandbox.get("rni/v2/queries/rab_info").json()
    b = fresh_sandbox.get("rni/v2/queries/rab_info").json()
    assert a["requestId"] != b["requestId"]
    assert {k: v for k, v in a.items() if k != "requestId"} == {k: v for k, v in b.items() if k != "requestId"}
    ues = fresh_sandbox.ues()
    on_4g = {a for a, u in ues.items() if u["accessPointId"] and u["accessPointId"].startswith("4g")}
    assert {ue["associateId"][0]["value"] for cell in a["cellUserInfo"] for ue in cell["ueInfo"]} == on_4g


# ------------------------------------------------------------------ expiry

def _cell_changes(changes, ue=CAR):
    return [(c.t, c.old_cell, c.new_cell) for c in changes if c.ue == ue and c.new_cell != c.old_cell]


def test_rni_subscription_stops_at_its_expiry_deadline_with_an_expiry_notification(fresh_sandbox, receiver):
    now = fresh_sandbox.sim_time()
    deadline = int(START_TIME + now + 150)
    r = fresh_sandbox.post("rni/v2/subscriptions", {
        "subscriptionType": "CellChangeSubscription", "callbackReference": receiver.url("/cell"),
        "filterCriteriaAssocHo": {"associateId": [{"type": 1, "value": CAR}]},
        "expiryDeadline": {"seconds": deadline, "nanoSeconds": 0}})
    assert r.status_code == 201, r.text
    assert r.json()["expiryDeadline"] == {"seconds": deadline, "nanoSeconds": 0}
    sub_url = r.json()["_links"]["self"]["href"]
    mob = mirror(fresh_sandbox)
    changes = _cell_changes(mob.advance_to(mob.time + 400))
    before = [c for c in changes if START_TIME + c[0] < deadline]
    after = [c for c in changes if START_TIME + c[0] >= deadline]
    assert before and after, "the window should have cell changes on both sides of the deadline"
    fresh_sandbox.advance(400)  # one jump over the deadline: what happened before it is still notified
    items = receiver.wait_for(lambda it: len(it) >= len(before) + 1)
    notes = [b for _, b, _ in items]
    # (queues are per UE, so the expiry notification may overtake the last cell changes)
    assert sorted(n["notificationType"] for n in notes) == (["CellChangeNotification"] * len(before)
                                                            + ["ExpiryNotification"])
    cell_ids = {p.name: p.cell_id for p in mob.scenario.poas.values()}
    assert [n["trgEcgi"][0]["cellId"] for n in notes if n["notificationType"] == "CellChangeNotification"] == \
        [cell_ids[c[2]] for c in before]
    expiry = next(n for n in notes if n["notificationType"] == "ExpiryNotification")
    assert expiry["_links"]["subscription"]["href"] == sub_url
    assert expiry["expiryDeadline"] == {"seconds": deadline, "nanoSeconds": 0}
    assert expiry["timeStamp"]["seconds"] >= deadline
    assert fresh_sandbox.http.get(sub_url, timeout=5).status_code == 404
    assert fresh_sandbox.get("rni/v2/subscriptions").json()["_links"].get("subscription", []) == []
    fresh_sandbox.advance(300)
    assert len(receiver.wait_for(lambda it: len(it) > len(notes), timeout=1.5)) == len(notes)


def test_expiry_without_a_clock_jump_and_a_replaced_deadline(fresh_sandbox, receiver):
    base = START_TIME + fresh_sandbox.sim_time()
    body = {"subscriptionType": "AdjacentAppInfoSubscription", "callbackReference": receiver.url("/adj"),
            "expiryDeadline": {"seconds": int(base) + 10, "nanoSeconds": 500_000_000}}
    r = fresh_sandbox.post("amsi/v1/subscriptions", body)
    assert r.status_code == 201, r.text
    url = r.json()["_links"]["self"]["href"]
    body["expiryDeadline"] = {"seconds": int(base) + 60, "nanoSeconds": 0}
    assert fresh_sandbox.http.put(url, json=body, timeout=5).status_code == 200  # the new deadline replaces the old
    fresh_sandbox.advance(30)
    assert fresh_sandbox.http.get(url, timeout=5).status_code == 200
    fresh_sandbox.advance(29.9)
    assert fresh_sandbox.http.get(url, timeout=5).status_code == 200
    fresh_sandbox.advance(0.1)
    assert fresh_sandbox.http.get(url, timeout=5).status_code == 404
    items = receiver.wait_for(lambda it: len(it) >= 1)
    assert items[0][1]["notificationType"] == "ExpiryNotification"
    assert items[0][1]["expiryDeadline"] == {"seconds": int(base) + 60, "nanoSeconds": 0}


def test_a_deadline_that_has_passed_or_is_malformed_is_refused(fresh_sandbox, receiver):
    now = START_TIME + fresh_sandbox.sim_time()
    for deadline in ({"seconds": int(now) - 1, "nanoSeconds": 0}, {"seconds": "soon"}, 1700000500,
                     {"seconds": int(now) + 100, "nanoSeconds": 10 ** 9}):
        r = fresh_sandbox.post("rni/v2/subscriptions", {"subscriptionType": "CellChangeSubscription",
                                                        "callbackReference": receiver.url(),
                                                        "expiryDeadline": deadline})
        assert r.status_code == 400, r.text
        assert "expiryDeadline" in r.json()["detail"] or "would expire" in r.json()["detail"], r.text
    r = fresh_sandbox.post("location/v2/subscriptions/zonalTraffic", {"zonalTrafficSubscription": {
        "callbackReference": {"notifyURL": receiver.url()}, "zoneId": "zone01", "duration": -5}})
    assert r.status_code == 400 and "duration" in r.json()["detail"]


def test_location_duration_ends_the_subscription_without_a_notification(fresh_sandbox, receiver):
    r = fresh_sandbox.post("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
        "callbackReference": {"notifyURL": receiver.url("/track")}, "address": CAR, "duration": 120}})
    assert r.status_code == 201, r.text
    sub = r.json()["userTrackingSubscription"]
    assert sub["duration"] == 120
    fresh_sandbox.advance(20)
    assert fresh_sandbox.http.get(sub["resourceURL"], timeout=5).json()["userTrackingSubscription"]["duration"] == 100
    mob = mirror(fresh_sandbox)
    start = mob.time
    changes = [c for c in mob.advance_to(start + 300) if c.ue == CAR and (c.old_poa != c.new_poa)]
    within = [c for c in changes if c.t < start + 100]
    assert within and len(within) < len(changes)
    fresh_sandbox.advance(300)
    items = receiver.wait_for(lambda it: len(it) >= len(within), timeout=5)
    assert all("zonalPresenceNotification" in b for _, b, _ in items)
    assert max(b["zonalPresenceNotification"]["timestamp"]["seconds"] for _, b, _ in items) < START_TIME + start + 100
    assert fresh_sandbox.http.get(sub["resourceURL"], timeout=5).status_code == 404
    listed = fresh_sandbox.get("location/v2/subscriptions/userTracking").json()["notificationSubscriptionList"]
    assert listed["userTrackingSubscription"] == []


# ------------------------------------------------------------------ AMS

def _register(sb, app, ues=(), mep=None):
    consumer = {"appInstanceId": app, **({"mepId": mep} if mep else {})}
    r = sb.post("amsi/v1/app_mobility_services", {
        "serviceConsumerId": consumer,
        "deviceInformation": [{"associateId": {"type": "UE_IPv4_ADDRESS", "value": ue}} for ue in ues]})
    assert r.status_code == 201, r.text
    return r.json()


def test_registrations_list_and_read_back(fresh_sandbox):
    assert fresh_sandbox.get("amsi/v1/app_mobility_services").json() == []
    one = _register(fresh_sandbox, "app-1", ues=[CAR])
    two = _register(fresh_sandbox, "app-2")
    listed = fresh_sandbox.get("amsi/v1/app_mobility_services")
    assert listed.status_code == 200  # was a 500 (the list read registrations as subscriptions)
    assert listed.json() == [one, two]
    assert one["deviceInformation"][0]["contextTransferState"] == "NOT_TRANSFERRED"
    assert fresh_sandbox.get(f"amsi/v1/app_mobility_services/{two['appMobilityServiceId']}").json() == two
    assert fresh_sandbox.post(f"amsi/v1/app_mobility_services/{two['appMobilityServiceId']}/deregister_task",
                              {}).status_code == 204
    assert fresh_sandbox.get("amsi/v1/app_mobility_services").json() == [one]


def test_adjacent_app_instances_lists_registered_instances_with_mec009_filters(fresh_sandbox):
    assert fresh_sandbox.get("amsi/v1/queries/adjacent_app_instances").json() == []
    _register(fresh_sandbox, "app-1", mep="mep-zone01")
    _register(fresh_sandbox, "app-2", mep="mep-zone04")
    _register(fresh_sandbox, "app-3")
    everyone = fresh_sandbox.get("amsi/v1/queries/adjacent_app_instances")
    assert everyone.status_code == 200
    assert [i["appInstanceId"] for i in everyone.json()] == ["app-1", "app-2", "app-3"]
    first = everyone.json()[0]
    assert set(first) >= {"appDId", "appInstanceCommLink", "appInstanceId"}
    assert first["mecHostInformation"] == {"hostId": "mep-zone01"}

    def ids(f):
        r = fresh_sandbox.get("amsi/v1/queries/adjacent_app_instances", params={"filter": f})
        assert r.status_code == 200, r.text
        return [i["appInstanceId"] for i in r.json()]
    assert ids("(neq,appInstanceId,app-1)") == ["app-2", "app-3"]
    assert ids("(in,appInstanceId,app-1,app-3)") == ["app-1", "app-3"]
    assert ids("(eq,mecHostInformation/hostId,mep-zone04)") == ["app-2"]
    assert ids("(neq,appInstanceId,app-1);(nin,appInstanceId,app-3)") == ["app-2"]
    for bad in ("appInstanceId=app-1", "(eq,colour,red)", "(eq,appInstanceId,a,b)", "(like,appInstanceId,a)"):
        r = fresh_sandbox.get("amsi/v1/queries/adjacent_app_instances", params={"filter": bad})
        assert r.status_code == 400 and "filter" in r.json()["detail"], (bad, r.text)
    # MEP-scoped path as well
    assert fresh_sandbox.get("mep-zone01/amsi/v1/queries/adjacent_app_instances").status_code == 200


def test_mobility_status_filter_selects_the_notifications(fresh_sandbox, receiver):
    reg = _register(fresh_sandbox, "app-a2", ues=[CAR])

    def subscribe(path, statuses):
        body = {"subscriptionType": "MobilityProcedureSubscription", "callbackReference": receiver.url(path),
                "filterCriteria": {"appInstanceId": "app-a2"}}
        if statuses is not None:
            body["filterCriteria"]["mobilityStatus"] = statuses
        r = fresh_sandbox.post("amsi/v1/subscriptions", body)
        assert r.status_code == 201, r.text
        return r.json()
    default = subscribe("/default", None)
    assert default["filterCriteria"]["mobilityStatus"] == ["INTERHOST_MOVEOUT_TRIGGERED"]
    subscribe("/completed", ["INTERHOST_MOVEOUT_COMPLETED"])
    assert subscribe("/failed", [3])["filterCriteria"]["mobilityStatus"] == [3]  # v2.1.1's number, kept as given
    for wrong in (["MOVED"], [4], [True], "INTERHOST_MOVEOUT_TRIGGERED"):
        bad = fresh_sandbox.post("amsi/v1/subscriptions", {
            "subscriptionType": "MobilityProcedureSubscription", "callbackReference": receiver.url("/x"),
            "filterCriteria": {"mobilityStatus": wrong}})
        assert bad.status_code == 400, (wrong, bad.text)

    mob = mirror(fresh_sandbox)
    next_host_change(mob, CAR)
    fresh_sandbox.post("sandbox-ctrl/v1/clock", {"simTime": mob.time}).raise_for_status()
    receiver.wait_for(lambda it: len(it) >= 1)
    reg["deviceInformation"][0]["contextTransferState"] = "USER_CONTEXT_TRANSFER_COMPLETED"
    assert fresh_sandbox.put(f"amsi/v1/app_mobility_services/{reg['appMobilityServiceId']}", reg).status_code == 200
    receiver.wait_for(lambda it: len(it) >= 2)
    next_host_change(mob, CAR)
    fresh_sandbox.post("sandbox-ctrl/v1/clock", {"simTime": mob.time}).raise_for_status()
    receiver.wait_for(lambda it: len(it) >= 3)
    state = fresh_sandbox.get(f"amsi/v1/app_mobility_services/{reg['appMobilityServiceId']}").json()
    state["deviceInformation"][0]["contextTransferState"] = "USER_CONTEXT_TRANSFER_FAILED"
    assert fresh_sandbox.put(f"amsi/v1/app_mobility_services/{reg['appMobilityServiceId']}", state).status_code == 200
    receiver.wait_for(lambda it: len(it) >= 4)
    receiver.wait_for(lambda it: len(it) > 4, timeout=1.0)  # nothing more should come
    got = {path: [b["mobilityStatus"] for b in receiver.bodies(path)] for path in ("/default", "/completed", "/failed")}
    assert got == {"/default": ["INTERHOST_MOVEOUT_TRIGGERED", "INTERHOST_MOVEOUT_TRIGGERED"],
                   "/completed": ["INTERHOST_MOVEOUT_COMPLETED"], "/failed": ["INTERHOST_MOVEOUT_FAILED"]}
