"""Property-based tests of the query parameters, derived from the sandbox's own OpenAPI document.

For every GET operation of /openapi.json, hypothesis draws query strings from the parameters the
document declares (valid values from the scenario, values of the wrong type, out-of-range numbers,
unknown parameter names) and checks the service's answer against that document.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mec_sandbox.scenario import load_scenario

SCENARIO = load_scenario()
POOLS = {
    "zoneId": SCENARIO.zones, "accessPointId": list(SCENARIO.poas), "address": list(SCENARIO.ues),
    "ue_ipv4_address": list(SCENARIO.ues), "cell_id": sorted({p.cell_id for p in SCENARIO.poas.values() if p.cell_id}),
    "interestRealm": SCENARIO.zones, "app_ins_id": ["app-1", "a2"], "requester": ["app-1"],
    "filter": ["(eq,appInstanceId,app-1)", "(neq,appInstanceId,a2);(in,appDId,x,y)",
               "(ncont,mecHostInformation/hostId,z)"],
}
PATH_POOLS = {"zoneId": SCENARIO.zones, "accessPointId": list(SCENARIO.poas)}
NOISE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10)


def _doc():
    """The document the service serves (same generator; test_live_document_is_the_one_the_properties_come_from
    checks it)."""
    from mec_sandbox import __version__
    from mec_sandbox.spec import openapi_document
    from sandbox_helpers import BASE
    return openapi_document(BASE, __version__)


DOC = _doc()
# GET operations on collections and on the scenario's own objects (zones, access points); reads of a
# subscription or registration by id need one to exist and are covered by the subscription tests.
GET_OPS = sorted((path, entry) for path, item in DOC["paths"].items() for method, entry in item.items()
                 if method == "get" and "501" not in entry["responses"] and "/sandbox-ctrl/" not in path
                 and all(p["name"] in PATH_POOLS for p in entry["parameters"] if p["in"] == "path"))


def value_strategy(param):
    """(value, valid) pairs for one query parameter, from its schema."""
    schema = param["schema"]
    item = schema["items"] if schema["type"] == "array" else schema
    name = param["name"]
    if item.get("enum"):
        good = st.sampled_from(item["enum"])
    elif item["type"] == "integer":
        good = st.integers(item.get("minimum", -10**6), item.get("maximum", 10**6))
        bad = st.one_of(NOISE.filter(lambda s: not s.strip().lstrip("+-").isdigit()),
                        st.integers(max_value=int(item.get("minimum", 0)) - 1) if "minimum" in item else st.nothing())
        return st.one_of(good.map(lambda v: (str(v), True)), bad.map(lambda v: (str(v), False)))
    elif item["type"] == "number":
        good = st.floats(item.get("minimum", -1e6), item.get("maximum", 1e6), allow_nan=False)
        bad = st.one_of(st.sampled_from(["north", "1,5", "nan", "inf"]),
                        st.floats(min_value=item["maximum"] + 0.001, max_value=1e9) if "maximum" in item
                        else st.nothing())
        return st.one_of(good.map(lambda v: (repr(v), True)), bad.map(lambda v: (str(v), False)))
    else:
        good = st.sampled_from(POOLS.get(name, ["x"]))
    return st.one_of(good.map(lambda v: (str(v), True)), NOISE.map(lambda v: (v, None)))


@st.composite
def query_for(draw, entry):
    params, valid, missing = [], True, False
    for p in entry["parameters"]:
        if p["in"] != "query":
            continue
        if p["required"] and draw(st.integers(0, 4)) == 0:
            missing = True  # leave a required parameter out now and then
            continue
        if not p["required"] and not draw(st.booleans()):
            continue
        count = draw(st.integers(1, 3)) if p["schema"]["type"] == "array" else 1
        for _ in range(count):
            value, ok = draw(value_strategy(p))
            params.append((p["name"], value))
            valid = valid and ok is True
    unknown = draw(st.one_of(st.none(), st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)))
    known = {p["name"] for p in entry["parameters"]}
    if unknown and unknown not in known:
        params.append((unknown, "1"))
    else:
        unknown = None
    return params, valid, unknown, missing


def _plausible(entry, name, value):
    schema = next(p["schema"] for p in entry["parameters"] if p["name"] == name)
    item = schema.get("items", schema)
    if item["type"] == "integer":
        return (value.strip().lstrip("+-").isdigit()
                and item.get("minimum", -1e18) <= int(value) <= item.get("maximum", 1e18))
    if item["type"] == "number":
        try:
            return item.get("minimum", -1e18) <= float(value) <= item.get("maximum", 1e18)
        except ValueError:
            return False
    return True


def test_live_document_is_the_one_the_properties_come_from(sandbox):
    assert sandbox.get("openapi.json").json() == DOC


@pytest.mark.parametrize("path, entry", GET_OPS, ids=[p for p, _ in GET_OPS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_query_parameters_follow_the_document(sandbox, path, entry, data):
    concrete = path
    for p in entry["parameters"]:
        if p["in"] == "path":
            pool = PATH_POOLS.get(p["name"], ["x"])
            if p["name"] == "accessPointId":  # keep the access point inside the drawn zone
                zone = concrete.split("/zones/")[1].split("/")[0]
                pool = [a.name for a in SCENARIO.zone_poas(zone)]
            concrete = concrete.replace("{" + p["name"] + "}", data.draw(st.sampled_from(pool)))
    params, valid, unknown, missing = data.draw(query_for(entry))
    r = sandbox.http.get(sandbox.root + concrete, params=params, timeout=5)
    declared = set(entry["responses"])
    assert str(r.status_code) in declared, (concrete, params, r.status_code, r.text)
    body = r.json()
    if r.status_code >= 400:
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert body["status"] == r.status_code and body["detail"]
    if unknown:
        assert r.status_code == 400 and unknown in body["detail"]
    elif missing:
        assert r.status_code == 400, (concrete, params, r.text)
        if valid:  # the missing parameter is the only fault: the detail says so
            assert "required" in body["detail"], (concrete, params, r.text)
    elif valid and "/queries/distance" not in path:
        assert r.status_code == 200, (concrete, params, r.text)
    if not valid and not unknown and r.status_code == 200:
        # a value of the wrong type or out of range never gets a 200; random text may be a valid id
        assert all(_plausible(entry, k, v) for k, v in params), (concrete, params)
    if r.status_code == 200 and path.endswith("/location/v2/queries/users"):
        users = body["userList"]["user"]
        filters = {}
        for k, v in params:
            filters.setdefault(k, set()).add(v)
        for u in users:
            for key in ("zoneId", "accessPointId", "address"):
                if key in filters:
                    assert u[key] in filters[key]
