"""Mobility in simulated time: a car at 20 m/s changes access point and zone when the geometry says.

The reference positions here are computed independently of the simulator: arc length and distances
with the haversine formula on the scenario's [lon, lat] path, no planar projection.
"""

import itertools
import math

import pytest
from mec_sandbox.mobility import Mobility, Placement, parse_coverage
from mec_sandbox.scenario import haversine_m, load_scenario

STEP = 0.05
CAR = "10.100.0.1"


def geo_position(ue, t):
    """[lon, lat] of a UE at time t, walking its path with haversine arc lengths."""
    pts = ue.path_lonlat
    seg = [haversine_m(*a, *b) for a, b in itertools.pairwise(pts)]
    length = sum(seg)
    s = ue.velocity * t
    if ue.eop_mode == "REVERSE":
        s %= 2 * length
        s = 2 * length - s if s > length else s
    else:
        s %= length
    for (a, b), d in zip(itertools.pairwise(pts), seg):
        if s <= d and d > 0:
            f = s / d
            return (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]))
        s -= d
    return pts[-1]


def dist_to(scenario, ue, poa, t):
    lon, lat = geo_position(ue, t)
    p = scenario.poas[poa]
    return haversine_m(lon, lat, p.lon, p.lat)


def crossing_time(scenario, ue, poa, t_lo, t_hi, inside_at_hi=True):
    """Bisection for the instant the UE crosses poa's radius between t_lo and t_hi."""
    r = scenario.poas[poa].radius
    for _ in range(60):
        mid = (t_lo + t_hi) / 2
        inside = dist_to(scenario, ue, poa, mid) <= r
        if inside == inside_at_hi:
            t_hi = mid
        else:
            t_lo = mid
    return t_hi


@pytest.fixture(scope="module")
def scenario():
    return load_scenario()


@pytest.fixture(scope="module")
def car_changes(scenario):
    mob = Mobility(scenario, Placement(scenario, "per-zone"), step=STEP)
    start = (mob.states[CAR].poa, mob.states[CAR].zone)
    changes = [c for c in mob.advance_to(700.0) if c.ue == CAR]
    return start, changes


def test_car_starts_on_the_macro_cell_its_position_is_in(scenario, car_changes):
    (poa, zone), _ = car_changes
    ue = scenario.ues[CAR]
    assert (poa, zone) == ("4g-macro-cell-2", "zone01")
    assert dist_to(scenario, ue, poa, 0.0) <= scenario.poas[poa].radius
    # nothing preferred (WiFi, 5G) is in range at t=0
    assert all(dist_to(scenario, ue, p.name, 0.0) > p.radius for p in scenario.poas.values() if p.kind != "4g")


def test_car_changes_access_point_when_it_crosses_a_cell_edge(scenario, car_changes):
    _, changes = car_changes
    ue = scenario.ues[CAR]
    assert len(changes) >= 10
    for c in changes:
        new = scenario.poas[c.new_poa]
        old = scenario.poas[c.old_poa] if c.old_poa else None
        # the new access point is in range at the change ...
        assert dist_to(scenario, ue, c.new_poa, c.t) <= new.radius + 0.5, c
        # ... and the change happened within one step of a crossing: either the new one came into range
        # (a preferred type) or the old one went out of range
        entered = dist_to(scenario, ue, c.new_poa, c.t - STEP) > new.radius - 0.5
        left = old is not None and dist_to(scenario, ue, c.old_poa, c.t) > old.radius - 0.5
        assert entered or left, c


def test_first_handover_time_matches_the_geometry(scenario, car_changes):
    _, changes = car_changes
    ue = scenario.ues[CAR]
    first = changes[0]
    assert (first.old_poa, first.new_poa) == ("4g-macro-cell-2", "5g-small-cell-1")
    # the geometric instant the car enters small cell 1's 100 m circle
    t_geo = crossing_time(scenario, ue, "5g-small-cell-1", 0.0, first.t, inside_at_hi=True)
    assert t_geo <= first.t + 1e-6
    assert first.t - t_geo < STEP + 0.01  # seen at the first step after the crossing
    assert t_geo == pytest.approx(13.76, abs=0.1)


def test_car_changes_zone_when_its_access_point_is_in_another_zone(scenario, car_changes):
    _, changes = car_changes
    ue = scenario.ues[CAR]
    zone_changes = [c for c in changes if c.old_zone != c.new_zone]
    assert zone_changes, "the car should cross a zone boundary within 700 s"
    for c in zone_changes:
        assert scenario.poas[c.new_poa].zone == c.new_zone
        assert c.old_host == f"mep-{c.old_zone}" and c.new_host == f"mep-{c.new_zone}"
    c = zone_changes[0]
    old = scenario.poas[c.old_poa]
    # the geometry: either the old access point's circle was left, or the new one (preferred type) entered
    t_leave = crossing_time(scenario, ue, c.old_poa, c.t - 5, c.t, inside_at_hi=False) \
        if dist_to(scenario, ue, c.old_poa, c.t) > old.radius else None
    t_enter = crossing_time(scenario, ue, c.new_poa, c.t - 5, c.t, inside_at_hi=True)
    t_geo = t_leave if t_leave is not None else t_enter
    assert 0 <= c.t - t_geo < STEP + 0.01


def test_the_clock_is_deterministic_whatever_the_jumps(scenario):
    a = Mobility(scenario, Placement(scenario, "per-ap"), step=STEP)
    b = Mobility(scenario, Placement(scenario, "per-ap"), step=STEP)
    log_a = [(c.t, c.ue, c.new_poa) for c in a.advance_to(400.0)]
    log_b = []
    t = 0.0
    for jump in [0.01, 3.3, 0.049, 50, 7.77, 200, 138.0]:  # sums to 399.129
        t += jump
        log_b += [(c.t, c.ue, c.new_poa) for c in b.advance_to(t)]
    log_b += [(c.t, c.ue, c.new_poa) for c in b.advance_to(400.0)]
    assert log_a == log_b
    assert {n: (s.poa, round(s.x, 6)) for n, s in a.states.items()} == \
        {n: (s.poa, round(s.x, 6)) for n, s in b.states.items()}


def test_pedestrian_turns_back_at_the_end_of_a_reverse_path(scenario):
    ue = scenario.ues["10.10.0.2"]
    mob = Mobility(scenario, Placement(scenario, "per-zone"), step=STEP)
    period = ue.path_length / ue.velocity
    mob.advance_to(period)
    end = scenario.to_xy(*ue.path_lonlat[-1])
    assert math.dist((mob.states["10.10.0.2"].x, mob.states["10.10.0.2"].y), end) < ue.velocity * STEP + 0.01
    mob.advance_to(2 * period)
    start = scenario.to_xy(*ue.path_lonlat[0])
    assert math.dist((mob.states["10.10.0.2"].x, mob.states["10.10.0.2"].y), start) < ue.velocity * STEP + 0.01


def test_stationary_ues_never_change(scenario):
    mob = Mobility(scenario, Placement(scenario, "per-zone"), step=STEP)
    before = {n: mob.states[n].poa for n in ("10.1.0.1", "10.1.0.2")}
    moved = {c.ue for c in mob.advance_to(600.0)}
    assert not moved & set(before)
    assert before == {"10.1.0.1": "4g-macro-cell-6", "10.1.0.2": "5g-small-cell-3"}


def test_priority_is_configurable(scenario):
    s = load_scenario(priority=("4g", "5g", "wifi"))
    mob = Mobility(s, Placement(s, "per-zone"), step=STEP)
    assert all(s.poas[st.poa].kind == "4g" for st in mob.states.values())


@pytest.mark.parametrize("mode, host", [("per-ap", "mep-4g-macro-cell-2"), ("per-zone", "mep-zone01"),
                                        ("coverage", "mep1"), ("per-5g", None)])
def test_placements_give_the_expected_host(scenario, mode, host):
    placement = Placement(scenario, mode, coverage="mep1:zone01:zone02:zone03/mep2:zone04")
    assert placement.host_for("4g-macro-cell-2", "zone01", None) == host


def test_coverage_parsing_and_errors(scenario):
    assert parse_coverage("mep1:zone01:zone02/mep2:zone04") == {"zone01": "mep1", "zone02": "mep1", "zone04": "mep2"}
    with pytest.raises(ValueError, match="zone09"):
        Placement(scenario, "coverage", coverage="mep1:zone09")
    with pytest.raises(ValueError, match="host:zone"):
        parse_coverage("mep1")
