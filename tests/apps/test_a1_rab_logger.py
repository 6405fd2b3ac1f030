"""A1 as a real process against a fake RNIS upstream on loopback."""

import json

from apps_helpers import load_module, rab_info

ERAB = [{"erabId": 1, "erabQosParameters": {"qci": 7, "qosInformation": {"erabMbrDl": 10}}}]


def test_first_erab_info_reads_the_first_ue():
    a1 = load_module("a1_rab_logger/app.py", "a1_app")
    assert a1.first_erab_info(rab_info(ERAB)) == ERAB
    assert a1.first_erab_info({"cellUserInfo": []}) is None
    assert a1.first_erab_info({"cellUserInfo": [{"ueInfo": []}]}) is None
    assert a1.first_erab_info(["not", "a", "dict"]) is None


def test_a1_logs_the_rab_info_through_the_upstream(upstream, start_app):
    upstream.set("/rni/v2/queries/rab_info", rab_info(ERAB))
    app = start_app("a1_rab_logger/app.py", MEC_GATEWAY_URL=upstream.url, A1_INTERVAL_MS=50)
    line = app.wait_for(r"erabInfo ")
    assert json.loads(line.split("erabInfo ", 1)[1]) == ERAB
    app.wait_for(r"erabInfo ", since=app.lines.index(line) + 1)
    assert upstream.count("/rni/v2/queries/rab_info") >= 2
    assert app.stop() == 0


def test_a1_says_when_no_rab_info_is_available(upstream, start_app):
    upstream.set("/rni/v2/queries/rab_info", {"timeStamp": {"seconds": 1}, "cellUserInfo": []})
    app = start_app("a1_rab_logger/app.py", MEC_GATEWAY_URL=upstream.url, A1_INTERVAL_MS=50)
    app.wait_for(r"No RAB info available")
    assert app.stop() == 0
    assert app.count(r"erabInfo ") == 0


def test_a1_keeps_running_and_logs_each_failure_when_the_upstream_is_down(dead_url, start_app):
    app = start_app("a1_rab_logger/app.py", MEC_GATEWAY_URL=dead_url, A1_INTERVAL_MS=50)
    first = app.wait_for(r"request failed: .*refused")
    app.wait_for(r"request failed", since=app.lines.index(first) + 1)
    app.wait_for(r"request failed", since=app.lines.index(first) + 2)
    assert app.proc.poll() is None, "A1 must not exit when the gateway is unreachable"
    assert app.stop() == 0
    app.wait_for(r"received signal 15, stopping")


def test_a1_logs_http_errors_from_the_gateway(upstream, start_app):
    upstream.set("/rni/v2/queries/rab_info", {"problem": "bad gateway"}, status=502)
    app = start_app("a1_rab_logger/app.py", MEC_GATEWAY_URL=upstream.url, A1_INTERVAL_MS=50)
    app.wait_for(r"request failed: HTTP 502")
    assert app.proc.poll() is None
    assert app.stop() == 0
