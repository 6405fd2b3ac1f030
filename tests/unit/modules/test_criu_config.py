"""criu_config: main() with exit_json/fail_json patched (tests/unit/modules/conftest.py), on a real file in a
temporary folder; exact results and exact file contents."""
import os
import stat
from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.modules import criu_config
from .conftest import AnsibleFailJson

MARK = "# Managed by mec.migration (module criu_config)\n"
CLOSE = MARK + "# tcp policy: close\ntcp-close\nskip-in-flight\nnetwork-lock skip\n"
ESTABLISHED = MARK + "# tcp policy: established\ntcp-established\nskip-in-flight\n"
REFUSE = MARK + "# tcp policy: refuse\n"


@pytest.fixture(autouse=True)
def host_name():
    with mock.patch.object(criu_config, "hostname", return_value="host1"):
        yield


@pytest.fixture
def conf(tmp_path):
    return str(tmp_path / "criu" / "runc.conf")


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def _read(path):
    with open(path) as fh:
        return fh.read()


def test_writes_the_close_policy_where_there_was_no_file(run_module, conf):
    result = run_module(criu_config, {"path": conf})
    assert result == {"path": conf, "tcp_policy": "close", "previous_policy": "refuse", "content": CLOSE,
                      "changed": True}
    assert _read(conf) == CLOSE
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644


def test_a_second_run_changes_nothing(run_module, conf):
    run_module(criu_config, {"path": conf})
    before = os.stat(conf)
    result = run_module(criu_config, {"path": conf})
    assert result == {"path": conf, "tcp_policy": "close", "previous_policy": "close", "content": CLOSE,
                      "changed": False}
    after = os.stat(conf)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "the file was written again"


@pytest.mark.parametrize("policy, content", [("established", ESTABLISHED), ("refuse", REFUSE)])
def test_changes_its_own_file_to_another_policy(run_module, conf, policy, content):
    _write(conf, CLOSE)
    result = run_module(criu_config, {"path": conf, "tcp_policy": policy})
    assert result == {"path": conf, "tcp_policy": policy, "previous_policy": "close", "content": content,
                      "changed": True}
    assert _read(conf) == content


def test_extra_options_follow_the_policy_without_dashes_or_blanks(run_module, conf):
    result = run_module(criu_config, {"path": conf, "extra_options": ["--ghost-limit 10M", " ", "log-file x.log"]})
    assert result["content"] == CLOSE + "ghost-limit 10M\nlog-file x.log\n"
    assert _read(conf) == result["content"]


def test_a_tcp_option_among_the_extra_options_is_refused_before_any_write(run_module, conf):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(criu_config, {"path": conf, "extra_options": ["tcp-established"]})
    assert exc.value.result == {"failed": True, "msg": "Set the TCP option with the policy, not as an extra "
                                                       "option: tcp-established"}
    assert not os.path.exists(conf)


def test_a_foreign_file_is_kept_unless_forced(run_module, conf):
    _write(conf, "tcp-established\nlog-file  /var/log/criu.log\n")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(criu_config, {"path": conf})
    assert exc.value.result == {
        "failed": True,
        "msg": "%s on host host1 was not written by mec.migration (it holds: tcp-established log-file "
               "/var/log/criu.log). Merge its options into extra_options and set force=true, or move it aside."
               % conf,
        "path": conf, "tcp_policy": "close", "previous_policy": "established", "content": CLOSE, "changed": True}
    assert _read(conf) == "tcp-established\nlog-file  /var/log/criu.log\n"

    result = run_module(criu_config, {"path": conf, "force": True})
    assert (result["changed"], result["previous_policy"]) == (True, "established")
    assert _read(conf) == CLOSE


def test_check_mode_reports_the_change_and_writes_nothing(run_module, conf):
    result = run_module(criu_config, {"path": conf, "_ansible_check_mode": True})
    assert result == {"path": conf, "tcp_policy": "close", "previous_policy": "refuse", "content": CLOSE,
                      "changed": True}
    assert not os.path.exists(conf)


def test_diff_shows_the_file_before_and_after(run_module, conf):
    _write(conf, ESTABLISHED)
    result = run_module(criu_config, {"path": conf, "_ansible_diff": True})
    assert result["diff"] == {"before": ESTABLISHED, "after": CLOSE, "before_header": conf, "after_header": conf}


def test_a_file_that_cannot_be_written_fails_naming_path_and_host(run_module, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    path = str(blocker / "runc.conf")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(criu_config, {"path": path})
    msg = exc.value.result["msg"]
    assert msg.startswith("Could not write %s on host host1: " % path), msg
    assert exc.value.result["changed"] is True and exc.value.result["content"] == CLOSE


def test_an_unknown_policy_is_refused_by_the_argument_spec(run_module, conf):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(criu_config, {"path": conf, "tcp_policy": "keep"})
    assert "value of tcp_policy must be one of: close, established, refuse, got: keep" in exc.value.result["msg"]
    assert not os.path.exists(conf)
