"""Subscriptions with a real HTTP callback receiver on loopback.

The sandbox runs with a manual clock; the expected events come from an in-process simulation of the
same scenario advanced to the same simulated times (the simulation is deterministic).
"""

import time

from sandbox_helpers import Receiver, mirror, next_host_change

CAR = "10.100.0.1"


def expected_presence(changes, zones=None, address=None):
    out = []
    for c in changes:
        if address and c.ue != address:
            continue
        if c.old_zone != c.new_zone:
            if c.old_zone and (zones is None or c.old_zone in zones):
                out.append((c.ue, "Leaving", c.old_zone))
            if c.new_zone and (zones is None or c.new_zone in zones):
                out.append((c.ue, "Entering", c.new_zone))
        elif c.old_poa != c.new_poa and (zones is None or c.new_zone in zones):
            out.append((c.ue, "Transferring", c.new_zone))
    return out


def test_zonal_traffic_reports_every_move_in_order(fresh_sandbox, receiver):
    for zone in ("zone01", "zone02", "zone03", "zone04"):
        r = fresh_sandbox.post("location/v2/subscriptions/zonalTraffic", {"zonalTrafficSubscription": {
            "callbackReference": {"notifyURL": receiver.url("/zonal"), "callbackData": zone}, "zoneId": zone}})
        assert r.status_code == 201, r.text
        assert r.headers["Location"] == r.json()["zonalTrafficSubscription"]["resourceURL"]
    mob = mirror(fresh_sandbox)
    fresh_sandbox.advance(300)
    want = expected_presence(mob.advance_to(mob.time + 300))
    assert any(e[1] == "Leaving" for e in want), "the window should include a zone change"
    items = receiver.wait_for(lambda it: len(it) >= len(want))
    got = [(b["zonalPresenceNotification"]["address"], b["zonalPresenceNotification"]["userEventType"],
            b["zonalPresenceNotification"]["zoneId"]) for _, b, _ in items]
    assert sorted(got) == sorted(want)  # the same events ...
    for ue in {e[0] for e in want}:  # ... and, per UE, in the same order: Leaving before Entering
        assert [e for e in got if e[0] == ue] == [e for e in want if e[0] == ue]
    note = items[0][1]["zonalPresenceNotification"]
    assert note["callbackData"] == note["zoneId"]
    assert set(note["timestamp"]) == {"seconds", "nanoSeconds"} and note["currentAccessPointId"]
    listed = fresh_sandbox.get("location/v2/subscriptions/zonalTraffic").json()["notificationSubscriptionList"]
    assert len(listed["zonalTrafficSubscription"]) == 4


def test_user_tracking_follows_one_user_and_can_be_deleted(fresh_sandbox, receiver):
    r = fresh_sandbox.post("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
        "callbackReference": {"notifyURL": receiver.url("/track")}, "address": CAR,
        "userEventCriteria": ["Entering", "Leaving"]}})
    assert r.status_code == 201
    sub_url = r.json()["userTrackingSubscription"]["resourceURL"]
    mob = mirror(fresh_sandbox)
    fresh_sandbox.advance(400)
    want = [e for e in expected_presence(mob.advance_to(mob.time + 400), address=CAR) if e[1] != "Transferring"]
    assert want
    items = receiver.wait_for(lambda it: len(it) >= len(want))
    assert [(b["zonalPresenceNotification"]["userEventType"], b["zonalPresenceNotification"]["zoneId"])
            for _, b, _ in items] == [(e[1], e[2]) for e in want]
    assert fresh_sandbox.http.delete(sub_url, timeout=5).status_code == 204
    assert fresh_sandbox.http.get(sub_url, timeout=5).status_code == 404


def test_zone_status_reports_user_counts_over_the_threshold(fresh_sandbox, receiver):
    r = fresh_sandbox.post("location/v2/subscriptions/zoneStatus", {"zoneStatusSubscription": {
        "callbackReference": {"notifyURL": receiver.url("/status")}, "zoneId": "zone01",
        "numberOfUsersZoneThreshold": 1}})
    assert r.status_code == 201
    mob = mirror(fresh_sandbox)
    want = []
    for _ in range(40):
        fresh_sandbox.advance(5)
        changes = mob.advance_to(mob.time + 5)
        count = sum(1 for st in mob.states.values() if st.zone == "zone01")
        if any("zone01" in (c.old_zone, c.new_zone) for c in changes) and count >= 1:
            want.append(count)
    assert want
    items = receiver.wait_for(lambda it: len(it) >= len(want))
    assert [b["zoneStatusNotification"]["numberOfUsersInZone"] for _, b, _ in items] == want


def test_subscription_bodies_are_validated(fresh_sandbox, receiver):
    cases = [
        ("location/v2/subscriptions/zonalTraffic", {"zonalTrafficSubscription": {"zoneId": "zone01"}}),
        ("location/v2/subscriptions/zonalTraffic", {"zonalTrafficSubscription": {
            "callbackReference": {"notifyURL": receiver.url()}, "zoneId": "zone77"}}),
        ("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
            "callbackReference": {"notifyURL": receiver.url()}, "address": CAR, "userEventCriteria": ["Teleport"]}}),
        ("location/v2/subscriptions/zoneStatus", {"zoneStatusSubscription": {
            "callbackReference": {"notifyURL": receiver.url()}, "zoneId": "zone01"}}),
        ("rni/v2/subscriptions", {"subscriptionType": "CellChangeSubscription", "callbackReference": "ftp://x"}),
        ("amsi/v1/subscriptions", {"subscriptionType": "Nothing", "callbackReference": receiver.url()}),
        ("amsi/v1/app_mobility_services", {"deviceInformation": []}),
        ("amsi/v1/app_mobility_services", {"serviceConsumerId": {"appInstanceId": "a"},
                                           "deviceInformation": [{"associateId": {"type": 1, "value": "1.2.3.4"}}]}),
    ]
    for path, body in cases:
        r = fresh_sandbox.post(path, body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["status"] == 400
    r = fresh_sandbox.http.post(fresh_sandbox.url("rni/v2/subscriptions"), data=b"{not json", timeout=5)
    assert r.status_code == 400


def test_cell_change_notifications_for_one_ue(fresh_sandbox, receiver):
    r = fresh_sandbox.post("rni/v2/subscriptions", {
        "subscriptionType": "CellChangeSubscription", "callbackReference": receiver.url("/cell"),
        "filterCriteriaAssocHo": {"associateId": [{"type": 1, "value": CAR}]}})
    assert r.status_code == 201
    assert fresh_sandbox.get("rni/v2/subscriptions").json()["_links"]["subscription"][0]["subscriptionType"] == \
        "CellChangeSubscription"
    mob = mirror(fresh_sandbox)
    fresh_sandbox.advance(200)
    want = [(c.old_cell, c.new_cell) for c in mob.advance_to(mob.time + 200)
            if c.ue == CAR and c.new_cell != c.old_cell]
    assert want
    cell_ids = {p.name: p.cell_id for p in mob.scenario.poas.values()}
    items = receiver.wait_for(lambda it: len(it) >= len(want))
    got = [(b["srcEcgi"]["cellId"], b["trgEcgi"][0]["cellId"]) for _, b, _ in items]
    assert got == [(cell_ids[a], cell_ids[b]) for a, b in want]
    assert all(b["notificationType"] == "CellChangeNotification" and b["hoStatus"] == 3 for _, b, _ in items)


def test_application_mobility_moveout_triggered_then_completed_or_failed(fresh_sandbox, receiver):
    reg = fresh_sandbox.post("amsi/v1/app_mobility_services", {
        "serviceConsumerId": {"appInstanceId": "app-a2"},
        "deviceInformation": [{"associateId": {"type": "UE_IPv4_ADDRESS", "value": CAR},
                               "appMobilityServiceLevel": "APP_MOBILITY_WITH_CONFIRMATION"}]})
    assert reg.status_code == 201, reg.text
    reg_body = reg.json()
    reg_id = reg_body["appMobilityServiceId"]
    assert reg.headers["Location"].endswith(f"/amsi/v1/app_mobility_services/{reg_id}")
    statuses = ["INTERHOST_MOVEOUT_TRIGGERED", "INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED"]
    sub = fresh_sandbox.post("amsi/v1/subscriptions", {
        "subscriptionType": "MobilityProcedureSubscription", "callbackReference": receiver.url("/ams"),
        "filterCriteria": {"appInstanceId": "app-a2", "mobilityStatus": statuses}})
    assert sub.status_code == 201 and sub.json()["_links"]["self"]["href"]
    assert sub.json()["filterCriteria"]["mobilityStatus"] == statuses

    mob = mirror(fresh_sandbox)
    first = next_host_change(mob, CAR)
    fresh_sandbox.post("sandbox-ctrl/v1/clock", {"simTime": mob.time}).raise_for_status()
    items = receiver.wait_for(lambda it: len(it) >= 1)
    note = items[0][1]
    assert note["notificationType"] == "MobilityProcedureNotification"
    assert note["mobilityStatus"] == "INTERHOST_MOVEOUT_TRIGGERED"
    assert note["associateId"] == [{"type": "UE_IPv4_ADDRESS", "value": CAR}]
    assert note["targetAppInfo"]["commInterface"]["ipAddresses"][0]["host"] == first.new_host
    assert note["sourceMecHost"] == first.old_host

    reg_body["deviceInformation"][0]["contextTransferState"] = "USER_CONTEXT_TRANSFER_COMPLETED"
    assert fresh_sandbox.put(f"amsi/v1/app_mobility_services/{reg_id}", reg_body).status_code == 200
    items = receiver.wait_for(lambda it: len(it) >= 2)
    assert items[1][1]["mobilityStatus"] == "INTERHOST_MOVEOUT_COMPLETED"

    second = next_host_change(mob, CAR)
    fresh_sandbox.post("sandbox-ctrl/v1/clock", {"simTime": mob.time}).raise_for_status()
    items = receiver.wait_for(lambda it: len(it) >= 3)
    assert items[2][1]["mobilityStatus"] == "INTERHOST_MOVEOUT_TRIGGERED"
    assert items[2][1]["targetMecHost"] == second.new_host
    state = fresh_sandbox.get(f"amsi/v1/app_mobility_services/{reg_id}").json()
    assert state["deviceInformation"][0]["contextTransferState"] == "NOT_TRANSFERRED"
    state["deviceInformation"][0]["contextTransferState"] = "USER_CONTEXT_TRANSFER_FAILED"
    assert fresh_sandbox.put(f"amsi/v1/app_mobility_services/{reg_id}", state).status_code == 200
    items = receiver.wait_for(lambda it: len(it) >= 4)
    assert items[3][1]["mobilityStatus"] == "INTERHOST_MOVEOUT_FAILED"
    assert fresh_sandbox.delete(f"amsi/v1/app_mobility_services/{reg_id}").status_code == 204


def test_adjacent_app_info_on_registration(fresh_sandbox, receiver):
    sub = fresh_sandbox.post("amsi/v1/subscriptions", {
        "subscriptionType": "AdjacentAppInfoSubscription", "callbackReference": receiver.url("/adj"),
        "filterCriteria": {"appInstanceId": "app-1"}})
    assert sub.status_code == 201
    fresh_sandbox.post("amsi/v1/app_mobility_services", {"serviceConsumerId": {"appInstanceId": "app-2"}})
    items = receiver.wait_for(lambda it: len(it) >= 1)
    assert items[0][1]["notificationType"] == "AdjacentAppInfoNotification"
    assert [a["appInstanceId"] for a in items[0][1]["adjacentAppInfo"]] == ["app-2"]
    listed = fresh_sandbox.get("amsi/v1/subscriptions", params={"subscriptionType": "adj_app_info"}).json()
    # AdvantEDGE 1.9.2's SubscriptionLinkList: the links are under _links, next to self
    assert "subscription" not in listed
    assert [s["subscriptionType"] for s in listed["_links"]["subscription"]] == ["AdjacentAppInfoSubscription"]
    assert listed["_links"]["subscription"][0]["href"] == sub.json()["_links"]["self"]["href"]
    assert listed["_links"]["self"]["href"].endswith("/amsi/v1/subscriptions")


def test_dead_and_slow_callbacks_do_not_block_the_service_or_others(fresh_sandbox, receiver):
    slow = Receiver(delay=3.0)
    try:
        dead_url = "http://127.0.0.1:9/never"  # discard port: nothing listens, connection refused
        ids = {}
        for name, url in (("dead", dead_url), ("slow", slow.url("/slow")), ("good", receiver.url("/good"))):
            r = fresh_sandbox.post("location/v2/subscriptions/userTracking", {"userTrackingSubscription": {
                "callbackReference": {"notifyURL": url}, "address": CAR}})
            ids[name] = r.json()["userTrackingSubscription"]["resourceURL"].rsplit("/", 1)[1]
        mob = mirror(fresh_sandbox)
        fresh_sandbox.advance(300)
        want = expected_presence(mob.advance_to(mob.time + 300), address=CAR)
        assert len(want) > 5
        # the good receiver gets everything although the slow one takes 3 s per notification
        items = receiver.wait_for(lambda it: len(it) >= len(want), timeout=15)
        assert len(items) == len(want)
        assert len(slow.bodies()) < len(want)
        # the service keeps answering
        assert fresh_sandbox.get("location/v2/queries/users").status_code == 200
        # the dead subscriber's failures are counted and its subscription is kept
        deadline = time.monotonic() + 15
        stats = {}
        while time.monotonic() < deadline:
            stats = fresh_sandbox.get("sandbox-ctrl/v1/notifications").json()
            if stats.get(ids["dead"], {}).get("failed", 0) >= 1:
                break
            time.sleep(0.2)
        assert stats[ids["dead"]]["failed"] >= 1 and stats[ids["dead"]]["delivered"] == 0
        assert fresh_sandbox.get(f"location/v2/subscriptions/userTracking/{ids['dead']}").status_code == 200
    finally:
        slow.close()
    log = fresh_sandbox.stop()
    assert "failed after 2 attempt(s)" in log and "subscription kept" in log
