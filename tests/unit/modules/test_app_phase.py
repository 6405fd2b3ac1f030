from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.modules import app_phase
from .conftest import AnsibleFailJson


def _response(status, body):
    resp = mock.MagicMock()
    resp.getcode.return_value = status
    resp.read.return_value = body
    return resp


def test_calls_phase_endpoint(run_module):
    with mock.patch("ansible.module_utils.urls.open_url", return_value=_response(200, b"phase=1")) as url:
        result = run_module(app_phase, {"url": "http://127.0.0.1:8080/changePhase?inMigration=1"})
    url.assert_called_once_with("http://127.0.0.1:8080/changePhase?inMigration=1", method="GET", timeout=5,
                                validate_certs=True)
    assert result["changed"] is True
    assert (result["status"], result["body"]) == (200, "phase=1")
    assert result["duration"] >= 0


def test_unexpected_status_fails(run_module):
    with mock.patch("ansible.module_utils.urls.open_url", return_value=_response(204, b"")):
        with pytest.raises(AnsibleFailJson) as exc:
            run_module(app_phase, {"url": "http://127.0.0.1:1/x", "status_code": [200]})
    assert "answered 204" in exc.value.result["msg"]


def test_check_mode_does_not_call(run_module):
    with mock.patch.object(app_phase, "notify_phase") as notify:
        result = run_module(app_phase, {"url": "http://127.0.0.1:1/x", "_ansible_check_mode": True})
    notify.assert_not_called()
    assert result["changed"] is True


def test_unreachable_endpoint_fails_clearly(run_module):
    with mock.patch("ansible.module_utils.urls.open_url", side_effect=OSError("connection refused")):
        with pytest.raises(AnsibleFailJson) as exc:
            run_module(app_phase, {"url": "http://127.0.0.1:1/x"})
    assert "did not answer" in exc.value.result["msg"]
    assert "connection refused" in exc.value.result["msg"]
