"""Scenario loading: the packaged Monaco scenario, and clear errors for malformed files."""

import copy
import json
import os
import subprocess
import sys

import pytest
from mec_sandbox.scenario import DEFAULT_SCENARIO, ScenarioError, add_clones, load_scenario, parse_scenario
from sandbox_helpers import APPS

# the project's shared/ folder lies beside the checkout (CI lays a copy there too)
SHARED = next((p for p in (os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data",
                                        "advantedge", "4g-5g-wifi-macro.json"),
                           "/work/shared/data/advantedge/4g-5g-wifi-macro.json") if os.path.exists(p)),
              "shared/data/advantedge/4g-5g-wifi-macro.json")


def _raw():
    with open(DEFAULT_SCENARIO, encoding="utf-8") as fh:
        return json.load(fh)


def test_default_scenario_is_the_monaco_network():
    s = load_scenario()
    kinds = [p.kind for p in s.poas.values()]
    assert (kinds.count("4g"), kinds.count("5g"), kinds.count("wifi")) == (10, 20, 11)
    assert s.zones == ["zone01", "zone02", "zone03", "zone04"]
    speeds = sorted((u.velocity, u.eop_mode if u.moving else "-") for u in s.ues.values())
    assert speeds == [(0.0, "-"), (0.0, "-"), (9.0, "REVERSE"), (9.0, "REVERSE"), (20.0, "LOOP"), (20.0, "LOOP")]
    assert s.poas["4g-macro-cell-1"].cell_id == "1010101"
    assert s.poas["w1"].mac_id == "0050C2728001"
    assert (s.mcc, s.mnc) == ("001", "001")


@pytest.mark.ci_may_skip
@pytest.mark.skipif(not os.path.exists(SHARED), reason="the project's shared/ folder is not beside this checkout: "
                    "a published copy of the collection has none, and the packaged copy is what the sandbox uses")
def test_packaged_copy_equals_the_shared_scenario():
    with open(SHARED, encoding="utf-8") as fh:
        assert json.load(fh) == _raw()


def test_dual_mep_scenario_has_two_mec_hosts():
    s = load_scenario(os.path.join(os.path.dirname(DEFAULT_SCENARIO), "dual-mep-short-path.json"))
    assert {h: e.zone for h, e in s.edge_hosts.items()} == {"mep1": "zone01", "mep2": "zone04"}
    assert len(s.ues) == 12


def _zone1(d):
    return d["deployment"]["domains"][1]["zones"][1]


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d.pop("deployment"), "deployment", "expected an object"),
    (lambda d: _zone1(d)["networkLocations"][1]["geoData"].__setitem__("radius", "far"),
     "deployment.domains[1].zones[1].networkLocations[1].geoData.radius", "expected a number"),
    (lambda d: _zone1(d)["networkLocations"][1]["geoData"]["location"].__setitem__("coordinates", [7.4]),
     "deployment.domains[1].zones[1].networkLocations[1].geoData.location.coordinates", "[longitude, latitude]"),
    (lambda d: _zone1(d)["networkLocations"][2]["physicalLocations"][0]["geoData"].__setitem__("eopMode", "BOUNCE"),
     "deployment.domains[1].zones[1].networkLocations[2].physicalLocations[0].geoData.eopMode", "LOOP or REVERSE"),
    (lambda d: _zone1(d)["networkLocations"][2]["physicalLocations"][0]["geoData"].__setitem__("velocity", -3),
     "deployment.domains[1].zones[1].networkLocations[2].physicalLocations[0].geoData.velocity", ">= 0"),
    (lambda d: _zone1(d)["networkLocations"][2]["physicalLocations"][0]["geoData"]["path"]["coordinates"]
     .__setitem__(3, ["x", 43.7]),
     "deployment.domains[1].zones[1].networkLocations[2].physicalLocations[0].geoData.path.coordinates[3][0]",
     "expected a number"),
])
def test_malformed_scenario_names_file_and_field(mutate, field, words):
    data = copy.deepcopy(_raw())
    mutate(data)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, source="city.json")
    assert err.value.field_path == field
    assert str(err.value).startswith(f"city.json: field '{field}'")
    assert words in str(err.value)


def test_cli_refuses_a_malformed_scenario_at_startup(tmp_path):
    data = _raw()
    _zone1(data)["networkLocations"][1]["geoData"]["radius"] = None
    bad = tmp_path / "bad-city.json"
    bad.write_text(json.dumps(data))
    run = subprocess.run([sys.executable, "-m", "mec_sandbox", "--scenario", str(bad), "--port", "0"],
                         env=dict(os.environ, PYTHONPATH=APPS), capture_output=True, text=True, check=False, timeout=30)
    assert run.returncode == 2
    assert str(bad) in run.stderr
    assert "deployment.domains[1].zones[1].networkLocations[1].geoData.radius" in run.stderr


def test_cli_refuses_a_file_that_is_not_json(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{\"deployment\": ")
    run = subprocess.run([sys.executable, "-m", "mec_sandbox", "--scenario", str(bad)],
                         env=dict(os.environ, PYTHONPATH=APPS), capture_output=True, text=True, check=False, timeout=30)
    assert run.returncode == 2
    assert "broken.json" in run.stderr and "not valid JSON" in run.stderr


def test_clones_fill_up_to_the_requested_number_of_distinct_ues():
    s = load_scenario()
    add_clones(s, 100)
    assert len(s.ues) == 100
    clones = [u for n, u in s.ues.items() if n.startswith("10.200.")]
    assert len(clones) == 94 and all(u.moving for u in clones)
    assert len({(u.path_lonlat[0], u.time_offset) for u in clones}) == 94
