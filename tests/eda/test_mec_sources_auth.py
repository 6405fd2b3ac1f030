"""The event sources against a sandbox that needs a bearer token (OAuth 2.0 client credentials, issue #18 item 5),
with HTTPS callbacks: the in-process sandbox of test_mec_mobility verifies the source's certificate against a CA.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from test_mec_mobility import CAR, InProcessSandbox, _events, _run
from tlsutil import make_pki


def test_the_source_gets_a_token_and_takes_https_callbacks(mec_mobility, tmp_path):
    pki = make_pki(tmp_path / "pki")

    async def scenario():
        sbx = await InProcessSandbox(extra=("--callback-ca", str(pki / "ca.pem"))).start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "check_interval": 0.2, "tls_cert": str(pki / "cert.pem"),
             "tls_key": str(pki / "key.pem")}), queue)
        task = asyncio.create_task(src.run())
        try:
            while src.port == 0 or len(src.subs) < 4 or any(s.url is None for s in src.subs.values()):
                await asyncio.sleep(0.05)
            subs = await sbx.subscriptions()
            await sbx.advance_to(152)
            events = await _events(queue, 1)
            stats = dict(sbx.sb.notifier.stats)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sbx.stop()
        return subs, events, stats

    subs, events, stats = _run(scenario())
    urls = [s["callbackReference"]["notifyURL"] for s in subs]
    assert urls and all(u.startswith("https://127.0.0.1:") for u in urls), urls
    assert [(e["from_zone"], e["to_zone"]) for e in events] == [("zone01", "zone02")], events
    assert sum(s["delivered"] for s in stats.values()) >= 1, stats


def test_a_certificate_the_platform_does_not_trust_gets_no_callback(mec_mobility, tmp_path):
    trusted, other = make_pki(tmp_path / "trusted"), make_pki(tmp_path / "other")

    async def scenario():
        sbx = await InProcessSandbox(extra=("--callback-ca", str(trusted / "ca.pem"))).start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "check_interval": 60, "tls_cert": str(other / "cert.pem"),
             "tls_key": str(other / "key.pem")}), queue)
        await src.start()
        try:
            await sbx.advance_to(152)
            events = await _events(queue, 1, timeout=3)
            stats = dict(sbx.sb.notifier.stats)
        finally:
            await src.stop()
            await sbx.stop()
        return events, stats

    events, stats = _run(scenario())
    assert events == []
    assert sum(s["failed"] for s in stats.values()) >= 1 and sum(s["delivered"] for s in stats.values()) == 0, stats


def test_without_or_with_wrong_credentials_the_source_stops_with_a_message(mec_mobility, tmp_path):
    wrong = tmp_path / "credentials.json"

    async def scenario():
        sbx = await InProcessSandbox().start()
        messages = []
        try:
            with open(sbx.credentials_file) as fh:
                data = json.load(fh)
            data["clients"]["mec-eda"]["client_secret"] = "not-the-secret"
            wrong.write_text(json.dumps(data))
            for args in ({"platform_url": sbx.url}, dict(sbx.source_args, credentials_file=str(wrong))):
                with pytest.raises(mec_mobility.MecMobilityError) as err:
                    await mec_mobility.main(asyncio.Queue(), {**args, "ues": [CAR], "startup_timeout": 2})
                messages.append(str(err.value))
        finally:
            await sbx.stop()
        return messages

    unauthenticated, refused = _run(scenario())
    assert "HTTP 401" in unauthenticated and "credentials_file" in unauthenticated, unauthenticated
    assert "refused client mec-eda: HTTP 401" in refused and "invalid_client" in refused, refused


def test_credentials_and_tls_arguments_are_checked(mec_mobility, tmp_path):
    with pytest.raises(mec_mobility.MecMobilityError) as err:
        mec_mobility.Settings({"platform_url": "http://127.0.0.1:1", "ues": [CAR], "client_id": "x",
                               "credentials_file": str(tmp_path / "none.json"), "tls_cert": str(tmp_path / "c.pem")})
    for part in ("credentials_file=", "not readable", "tls_cert and tls_key: give both"):
        assert part in str(err.value), str(err.value)
