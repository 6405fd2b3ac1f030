"""CRIU around the engine: the TCP policy, the runtime's configuration file, CRIU's logs, what the preflight
sees, and the checkpoint delta (plugins/module_utils/criu.py, checkpoints.py)."""
import io
import os
import time

import pytest

from ansible_collections.mec.migration.plugins.module_utils import checkpoints, criu
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

DUMP_LOG = """(00.000000) CRIU run id = 57a1
(00.000286) Version: 4.2.1 (gitid 0)
(00.001005) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.001401) freezing cgroup /sys/fs/cgroup/freezer/docker/87cc: 100 x 100ms attempts, timeout: 10s
(00.002147) freezer.state=FREEZING
(00.102344) freezer.state=FROZEN
(00.010150) Warn  (compel/arch/x86/src/lib/infect.c:419): Will restore 2623 with interrupted system call
(00.110461) Dumping pages (type: 59 pid: 13547)
(00.110403) Error (criu/sk-inet.c:200): inet: Connected TCP socket, consider using --tcp-established option.
(00.110410) Error (criu/cr-dump.c:1545): Dump files (pid: 2623) failed with -1
(00.172890) Error (criu/cr-dump.c:1975): Dumping FAILED.
"""


@pytest.mark.parametrize("policy, options", [("close", ["tcp-close", "skip-in-flight", "network-lock skip"]),
                                             ("established", ["tcp-established", "skip-in-flight"]),
                                             ("refuse", [])])
def test_each_policy_renders_its_options_and_reads_back(policy, options):
    text = criu.render_config(policy)
    assert [ln for ln in text.splitlines() if ln and not ln.startswith("#")] == options
    assert criu.CONFIG_MARK in text
    assert criu.policy_of_config(text) == policy


@pytest.mark.parametrize("bad", ["Close", "keep", "", None, "tcp-close"])
def test_unknown_policy_is_refused_with_the_valid_values(bad):
    with pytest.raises(criu.PolicyError) as exc:
        criu.validate_tcp_policy(bad)
    assert "close, established, refuse" in str(exc.value)


def test_extra_options_are_kept_but_not_a_second_tcp_option():
    assert criu.render_config("close", ["--ghost-limit 10M", ""]).splitlines()[-1] == "ghost-limit 10M"
    for opt in ("tcp-established", "skip-in-flight"):
        with pytest.raises(criu.PolicyError):
            criu.render_config("refuse", [opt])


def test_a_file_without_tcp_option_means_refuse():
    assert criu.policy_of_config(None) == "refuse"
    assert criu.policy_of_config("# tcp-close\nghost-limit 1M\n") == "refuse"
    assert criu.policy_of_config("--tcp-established\n") == "established"


def test_log_errors_give_the_real_reason_first_without_the_benign_rlimit_line():
    assert criu.log_errors(DUMP_LOG) == [
        "Error (criu/sk-inet.c:200): inet: Connected TCP socket, consider using --tcp-established option.",
        "Error (criu/cr-dump.c:1545): Dump files (pid: 2623) failed with -1",
        "Error (criu/cr-dump.c:1975): Dumping FAILED.",
    ]


def test_log_errors_keep_the_rlimit_line_when_it_is_the_only_error_and_fall_back_to_the_tail():
    only = "(00.1) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n"
    assert criu.log_errors(only) == ["Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
                                     "Operation not permitted"]
    assert criu.log_errors("(00.1) a\n(00.2) b\n(00.3) c\n(00.4) d\n") == ["b", "c", "d"]
    assert criu.log_errors("") == []


def test_log_phases_time_the_freeze_and_the_pages():
    phases = criu.log_phases(DUMP_LOG)
    assert phases["start"] == pytest.approx(0.000286)
    assert phases["freeze"] == pytest.approx(0.001401)
    assert phases["pages"] == pytest.approx(0.110461)
    assert phases["total"] == pytest.approx(0.172890)


def test_failure_report_reads_the_log_the_engine_names(tmp_path):
    log = tmp_path / "criu-dump.log"
    log.write_text(DUMP_LOG)
    message = ("Cannot checkpoint container a2: runc did not terminate successfully: exit status 1: criu failed: "
               "type NOTIFY errno 0 path= %s: unknown" % log)
    path, errors = criu.failure_report(message)
    assert path == str(log)
    assert errors[0].endswith("consider using --tcp-established option.")
    # the restore's message names its log differently
    assert criu.log_paths("log file: /var/run/x/work/restore.log: unknown") == ["/var/run/x/work/restore.log"]
    # an old log (before the run) is not taken for this run's
    assert criu.failure_report(message, since=os.path.getmtime(log) + 60) == (None, [])


RESTORE_LOG = """(00.002626) Running pre-restore scripts
(00.002637) \tRPC
(00.004966) Running setup-namespaces scripts
(00.163400) Error (criu/mount.c:2411): mnt: Can't mount at ./etc/hosts: No such file or directory
(00.163420) Error (criu/cr-restore.c:2482): Restoring FAILED.
"""


def test_a_log_the_engine_removes_during_the_call_is_kept_and_named(tmp_path):
    """containerd removes a failed restore's task folder, its log with it, before Docker answers: the log held open
    while the call ran still gives CRIU's reason."""
    task = tmp_path / "task"
    task.mkdir()
    log = task / "restore.log"
    with criu.LogKeeper("c", dirs=[str(task)]) as keeper:
        log.write_text(RESTORE_LOG[:60])
        time.sleep(0.1)  # the keeper's thread opens it
        with open(log, "a") as fh:
            fh.write(RESTORE_LOG[60:])  # CRIU goes on writing to the file the keeper holds
        os.unlink(log)
        os.rmdir(task)
    try:
        message = "OCI runtime restore failed: criu failed: type NOTIFY errno 0\nlog file: %s: unknown" % log
        path, errors = criu.failure_report(message, container_id="c", kept=keeper.logs())
    finally:
        keeper.close()
    assert path == "%s (removed by the engine; kept while it ran)" % log
    assert errors == ["Error (criu/mount.c:2411): mnt: Can't mount at ./etc/hosts: No such file or directory",
                      "Error (criu/cr-restore.c:2482): Restoring FAILED."]
    assert keeper.held == {}


def test_the_keeper_takes_a_log_written_just_before_the_call_ends_and_skips_folders(tmp_path):
    task = tmp_path / "task"
    (task / "dump.log").mkdir(parents=True)  # not a file: never held
    with criu.LogKeeper("c", dirs=[str(task)], interval=60) as keeper:
        time.sleep(0.1)  # the thread has looked once and waits
        (task / "restore.log").write_text(RESTORE_LOG)  # after the thread's first look, before the call ends
    assert [p for p, _ in keeper.logs()] == [str(task / "restore.log")]
    keeper.close()


def _status(uid, capbnd):
    return "Name:\tpython3\nUid:\t%d\t%d\t%d\t%d\nCapBnd:\t%s\n" % (uid, uid, uid, uid, capbnd)


def test_obstacles_non_root_without_cap_sys_resource(monkeypatch):
    files = {"/proc/100/status": _status(1000, "0"), "/proc/101/status": _status(0, "0"),
             "/proc/100/comm": "python3\n", "/proc/101/comm": "tini\n"}
    monkeypatch.setattr(criu, "read_text", lambda p: files.get(p))
    info = {"Name": "/a2", "Config": {"Tty": False}, "HostConfig": {"NetworkMode": "mec-apps"}}
    without = int("1fffeffffff", 16)  # every capability but 24, as on the lab hosts
    assert not criu.has_capability(without, criu.CAP_SYS_RESOURCE)
    problems = criu.dump_obstacles(info, [100, 101], bounding=without)
    assert len(problems) == 1
    assert "non-root processes (python3 (pid 100, uid 1000))" in problems[0]
    assert "CAP_SYS_RESOURCE" in problems[0] and "run the app as root" in problems[0].lower()
    # with the capability the same container is fine
    assert criu.dump_obstacles(info, [100, 101], bounding=int("1ffffffffff", 16)) == []


def test_obstacles_tty_shared_namespaces_and_refused_connections(monkeypatch):
    tcp = ("  sl  local_address rem_address   st\n"
           "   0: 00000000:0BB8 00000000:0000 0A 0\n"
           "   1: 0300000A:0BB8 0500000A:D431 01 0\n")
    monkeypatch.setattr(criu, "read_text", lambda p: tcp if p == "/proc/7/net/tcp" else None)
    info = {"Name": "/x", "Config": {"Tty": True}, "HostConfig": {"NetworkMode": "host", "PidMode": "host"}}
    problems = criu.dump_obstacles(info, [7], bounding=None, tcp_policy="refuse")
    assert [p.split(":")[0].split(" (")[0] for p in problems] == [
        "Container x has a terminal", "Container x shares a network namespace", "Container x shares a PID namespace",
        "Container x has 1 established TCP connection(s) and the TCP policy is refuse"]
    assert criu.tcp_connections(7) == [("LISTEN", "00000000:3000", "00000000:0"),
                                       ("ESTABLISHED", "0300000A:3000", "0500000A:54321")]
    # with the close policy the established connection is no obstacle
    assert len(criu.dump_obstacles(info, [7], tcp_policy="close")) == 3


# --------------------------------------------------------------------------- the checkpoint delta

def _write(d, files):
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)


def test_delta_round_trip_sends_only_changed_pages(tmp_path):
    page = 4096
    old = bytes(i % 251 for i in range(page * 10))
    new = bytearray(old)
    new[3 * page] ^= 1
    new[4 * page + 5] ^= 1    # adjacent changed pages merge into one run
    new[9 * page + 100] ^= 1
    _write(tmp_path / "base", {"pages-1.img": old, "gone.img": b"x"})
    _write(tmp_path / "new", {"pages-1.img": bytes(new), "new.img": b"fresh"})
    _write(tmp_path / "target", {"pages-1.img": old, "gone.img": b"x"})
    buf = io.BytesIO()
    sent = checkpoints.write_checkpoint_delta(buf, str(tmp_path / "new"), str(tmp_path / "base"))
    assert sent["literal_bytes"] == 3 * page + len(b"fresh")
    assert sent["stream_bytes"] == len(buf.getvalue())
    buf.seek(0)
    reader = checkpoints.LineReader(buf)
    got = checkpoints.apply_checkpoint_delta(reader, str(tmp_path / "target"))
    assert got == {"files": 2, "literal_bytes": sent["literal_bytes"]}
    assert sorted(os.listdir(tmp_path / "target")) == ["new.img", "pages-1.img"]
    assert (tmp_path / "target" / "pages-1.img").read_bytes() == bytes(new)
    assert reader.read() == b""


def test_delta_of_shifted_pages_copies_them_instead_of_sending_them(tmp_path):
    """A mapping that grew shifts every later page of CRIU's page image by whole pages: those are copied from
    where the target holds them, only the new pages travel."""
    page = 4096
    old = b"".join(bytes([i]) * page for i in range(40))
    new = old[:10 * page] + b"\xee" * (3 * page) + old[10 * page:] + old[:page]
    _write(tmp_path / "base", {"pages-1.img": old})
    _write(tmp_path / "new", {"pages-1.img": new})
    _write(tmp_path / "target", {"pages-1.img": old})
    literals, copies = checkpoints.delta_of(new, checkpoints.DeltaBase(old))
    assert literals == [(10 * page, 3 * page)]
    assert copies == [(13 * page, 10 * page, 30 * page), (43 * page, 0, page)]
    buf = io.BytesIO()
    sent = checkpoints.write_checkpoint_delta(buf, str(tmp_path / "new"), str(tmp_path / "base"))
    assert sent["literal_bytes"] == 3 * page
    buf.seek(0)
    checkpoints.apply_checkpoint_delta(checkpoints.LineReader(buf), str(tmp_path / "target"))
    assert (tmp_path / "target" / "pages-1.img").read_bytes() == new


def _shifted_and_changed(tmp_path):
    page = 4096
    old = b"".join(bytes([i]) * page for i in range(40))
    new = bytearray(old[:10 * page] + b"\xee" * (3 * page) + old[10 * page:] + old[:page])
    new[20 * page + 7] ^= 1
    _write(tmp_path / "base", {"pages-1.img": old, "core-1.img": b"core", "gone.img": b"x"})
    _write(tmp_path / "new", {"pages-1.img": bytes(new), "core-1.img": b"core2", "new.img": b"fresh"})
    return bytes(new)


def test_delta_with_the_base_read_beforehand_is_the_same_stream(tmp_path):
    """The relocation reads and indexes the target's checkpoint before the app stops (load_delta_base); the
    stream must be byte for byte the one made by reading it inside the downtime, and patch the target alike."""
    new = _shifted_and_changed(tmp_path)
    inline, preloaded = io.BytesIO(), io.BytesIO()
    checkpoints.write_checkpoint_delta(inline, str(tmp_path / "new"), str(tmp_path / "base"))
    base = checkpoints.load_delta_base(str(tmp_path / "base"))
    assert sorted(base) == ["core-1.img", "gone.img", "pages-1.img"]
    sent = checkpoints.write_checkpoint_delta(preloaded, str(tmp_path / "new"), str(tmp_path / "base"), base=base)
    assert preloaded.getvalue() == inline.getvalue()
    assert sent["literal_bytes"] == 4 * 4096 + len(b"core2") + len(b"fresh")
    _write(tmp_path / "target", {"pages-1.img": (tmp_path / "base" / "pages-1.img").read_bytes(),
                                 "core-1.img": b"core", "gone.img": b"x"})
    preloaded.seek(0)
    checkpoints.apply_checkpoint_delta(checkpoints.LineReader(preloaded), str(tmp_path / "target"))
    assert sorted(os.listdir(tmp_path / "target")) == ["core-1.img", "new.img", "pages-1.img"]
    assert (tmp_path / "target" / "pages-1.img").read_bytes() == new
    assert checkpoints.load_delta_base(str(tmp_path / "absent")) == {}


def test_a_page_found_by_its_digest_is_copied_only_when_its_bytes_match(tmp_path, monkeypatch):
    """The page index keys pages by a digest: a key that two different pages share must not make the target copy
    the wrong page (every match is compared byte for byte)."""
    new = _shifted_and_changed(tmp_path)
    monkeypatch.setattr(checkpoints, "_page_key", lambda page: b"same key for every page")
    old = (tmp_path / "base" / "pages-1.img").read_bytes()
    _, copies = checkpoints.delta_of(new, checkpoints.DeltaBase(old))
    assert all(new[o:o + n] == old[s:s + n] for o, s, n in copies)
    buf = io.BytesIO()
    checkpoints.write_checkpoint_delta(buf, str(tmp_path / "new"), str(tmp_path / "base"))
    _write(tmp_path / "target", {"pages-1.img": (tmp_path / "base" / "pages-1.img").read_bytes()})
    buf.seek(0)
    checkpoints.apply_checkpoint_delta(checkpoints.LineReader(buf), str(tmp_path / "target"))
    assert (tmp_path / "target" / "pages-1.img").read_bytes() == new


def test_delta_applied_to_a_changed_copy_is_refused(tmp_path):
    _write(tmp_path / "base", {"core.img": b"a" * 8192})
    _write(tmp_path / "new", {"core.img": b"a" * 8192})
    _write(tmp_path / "target", {"core.img": b"a" * 4096 + b"b" * 4096})
    buf = io.BytesIO()
    checkpoints.write_checkpoint_delta(buf, str(tmp_path / "new"), str(tmp_path / "base"))
    buf.seek(0)
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(checkpoints.LineReader(buf), str(tmp_path / "target"))
    assert "does not match the source's" in exc.value.msg


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b", "..", ""])
def test_delta_refuses_names_that_leave_the_directory(tmp_path, name):
    body = checkpoints.DELTA_MAGIC + (
        '{"name": "%s", "size": 1, "mode": 420, "sha256": "x", "runs": [[0, 1]]}\n' % name).encode() + b"z"
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(checkpoints.LineReader(io.BytesIO(body)), str(tmp_path / "t"))
    assert "Unsafe file name" in exc.value.msg
    assert not (tmp_path / "escape").exists()


def test_delta_does_not_write_through_a_planted_link(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(str(outside), str(target / "pages-1.img"))
    _write(tmp_path / "new", {"pages-1.img": b"new pages"})
    buf = io.BytesIO()
    checkpoints.write_checkpoint_delta(buf, str(tmp_path / "new"), str(tmp_path / "empty"))
    buf.seek(0)
    with pytest.raises(MigrationError) as exc:  # refused: only regular files of the receiver are patched
        checkpoints.apply_checkpoint_delta(checkpoints.LineReader(buf), str(target))
    assert "pages-1.img" in exc.value.msg and "a symlink" in exc.value.msg
    assert outside.read_bytes() == b"keep"


def test_truncated_delta_is_refused(tmp_path):
    _write(tmp_path / "new", {"pages-1.img": b"p" * 10000})
    buf = io.BytesIO()
    checkpoints.write_checkpoint_delta(buf, str(tmp_path / "new"), str(tmp_path / "none"))
    cut = io.BytesIO(buf.getvalue()[:-200])
    with pytest.raises(MigrationError) as exc:
        checkpoints.apply_checkpoint_delta(checkpoints.LineReader(cut), str(tmp_path / "t"))
    assert "ended early" in exc.value.msg
