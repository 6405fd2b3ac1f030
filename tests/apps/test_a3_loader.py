"""A3's loader as a real process against a fake Location Service and a real memcached."""

from apps_helpers import free_port, load_module, memcached_get, zones

ZONES = "/location/v2/queries/zones"
PAIRS = [("zone01", 7), ("zone02", 3), ("zone03", 12), ("zone04", 1)]


def test_loader_fills_memcached_with_every_zone(upstream, memcached, start_app):
    host, port = memcached
    upstream.set(ZONES, zones(PAIRS))
    app = start_app("a3_poa_store/loader.py", MEC_GATEWAY_URL=upstream.url, MEMCACHED_HOST=host,
                    MEMCACHED_PORT=port)
    assert app.proc.wait(timeout=20) == 0
    app.stop()
    assert memcached_get(host, port, [z for z, _ in PAIRS]) == {z: str(n) for z, n in PAIRS}
    assert app.count(r"Added zone0\d=") == len(PAIRS)
    app.wait_for(r"4/4 zones present")


def test_loader_second_run_keeps_present_values(upstream, memcached, start_app):
    host, port = memcached
    upstream.set(ZONES, zones(PAIRS))
    first = start_app("a3_poa_store/loader.py", MEC_GATEWAY_URL=upstream.url, MEMCACHED_HOST=host,
                      MEMCACHED_PORT=port)
    assert first.proc.wait(timeout=20) == 0
    upstream.set(ZONES, zones([("zone01", 99)] + PAIRS[1:]))
    second = start_app("a3_poa_store/loader.py", MEC_GATEWAY_URL=upstream.url, MEMCACHED_HOST=host,
                       MEMCACHED_PORT=port)
    assert second.proc.wait(timeout=20) == 0
    second.stop()
    assert second.count(r"Not added zone0\d\. May be present already") == len(PAIRS)
    assert memcached_get(host, port, ["zone01"]) == {"zone01": "7"}


def test_loader_exits_non_zero_on_an_empty_zone_list(upstream, memcached, start_app):
    host, port = memcached
    upstream.set(ZONES, {"zoneList": {"zone": [], "resourceURL": "x"}})
    app = start_app("a3_poa_store/loader.py", MEC_GATEWAY_URL=upstream.url, MEMCACHED_HOST=host,
                    MEMCACHED_PORT=port)
    assert app.proc.wait(timeout=20) == 2
    app.stop()
    app.wait_for(r"zone list .* is empty: nothing loaded")
    assert memcached_get(host, port, ["zone01"]) == {}


def test_loader_fails_when_memcached_is_unreachable(upstream, start_app):
    upstream.set(ZONES, zones(PAIRS))
    app = start_app("a3_poa_store/loader.py", MEC_GATEWAY_URL=upstream.url, MEMCACHED_HOST="127.0.0.1",
                    MEMCACHED_PORT=free_port(), LOADER_CONNECT_WAIT_S=1)
    assert app.proc.wait(timeout=20) == 1
    app.stop()
    app.wait_for(r"cannot connect to memcached")


def test_loader_fails_when_the_upstream_is_unreachable(dead_url, memcached, start_app):
    host, port = memcached
    app = start_app("a3_poa_store/loader.py", MEC_GATEWAY_URL=dead_url, MEMCACHED_HOST=host,
                    MEMCACHED_PORT=port)
    assert app.proc.wait(timeout=20) == 1
    app.stop()
    app.wait_for(r"cannot read zones from .*refused")


def test_memcached_client_speaks_the_text_protocol(memcached):
    loader = load_module("a3_poa_store/loader.py", "a3_loader")
    host, port = memcached
    client = loader.MemcachedClient(host, port)
    try:
        assert client.store("add", "k1", 5) is True
        assert client.store("add", "k1", 6) is False
        assert client.store("set", "k1", 8) is True
        assert client.get_many(["k1", "absent"]) == {"k1": "8"}
    finally:
        client.close()
