"""Pure tests of the records, the CSV, the report's tables and the seed comparison on synthetic records."""

from __future__ import annotations

import csv
import io
import json

import pytest
from experiment_helpers import synthetic_record
from mec_experiment import probe, records
from mec_report import analysis
from mec_report.__main__ import main as report_main


def write_runs(folder, recs, extra=None):
    runs = folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for rec in recs:
        path = records.record_path(folder, rec["app"], rec["strategy"], rec["network"], rec["experiment"]["rep"],
                                   rec["experiment"].get("attempt", 1))
        path.write_text(json.dumps(rec))
    for name, text in (extra or {}).items():
        (runs / name).write_text(text)
    return folder


def test_load_records_skips_and_names_corrupt_files(tmp_path):
    write_runs(tmp_path, [synthetic_record()], {"bad.json": "{oops", "foreign.json": '{"schema": "other"}',
                                                "list.json": "[1, 2]"})
    recs, skipped = records.load_records(tmp_path)
    assert [r["app"] for r in recs] == ["a2"]
    assert sorted(name for name, _ in skipped) == ["bad.json", "foreign.json", "list.json"]
    assert any("not JSON" in why for _, why in skipped)


def test_load_records_without_runs_folder(tmp_path):
    recs, skipped = records.load_records(tmp_path)
    assert recs == [] and skipped == [(str(tmp_path / "runs"), "no runs/ folder")]


def test_csv_has_one_row_per_record_with_the_record_values(tmp_path):
    recs = [synthetic_record("a2", "m1", "n1", 1, downtime=0.5), synthetic_record("a3", "m3", "n2", 2, downtime=2.5),
            synthetic_record("a1", "m2", "n1", 1, status="failed")]
    rows = list(csv.DictReader(io.StringIO(records.csv_text(recs))))
    assert [(r["app"], r["strategy"], r["network"], r["rep"], r["status"]) for r in rows] == [
        ("a1", "m2", "n1", "1", "failed"), ("a2", "m1", "n1", "1", "ok"), ("a3", "m3", "n2", "2", "ok")]
    assert rows[1]["downtime_wall"] == "0.5" and rows[2]["downtime_wall"] == "2.5"
    assert rows[0]["error"] == "migrate: boom" and rows[0]["downtime_wall"] == ""
    assert rows[2]["measured_mbit_s"] == "94.6"


def test_phase_total_sums_the_steps_that_ran():
    rec = synthetic_record()
    assert records.phase_total(rec, "pre_relocation", "source") == 2.0
    rec["durations"]["pre_relocation"]["source"] = {"commit": None, "save": None}
    assert records.phase_total(rec, "pre_relocation", "source") is None


def test_load_records_checks_the_record_schema(tmp_path):
    """A record whose figure is text (as the Jinja-built records had) is named and skipped, not coerced."""
    bad = synthetic_record("a3", rep=2)
    bad["downtime"]["wall"] = "0.5"
    write_runs(tmp_path, [synthetic_record(), bad])
    recs, skipped = records.load_records(tmp_path)
    assert [r["app"] for r in recs] == ["a2"]
    assert skipped == [("a3-m1-n1-r2.json", "not a mec.migration/record/v1 record: downtime.wall: '0.5' is not a "
                                            "number")]


def test_table_81_is_derived_from_state_checks():
    recs = [synthetic_record("a2", "m1", "n1", 1, passed=False), synthetic_record("a2", "m1", "n2", 1, passed=False),
            synthetic_record("a2", "m2", "n1", 1, passed=True), synthetic_record("a2", "m2", "n2", 1, passed=True),
            synthetic_record("a3", "m3", "n1", 1, status="failed"), synthetic_record("a1", "m1", "n1", 1),
            synthetic_record("a1", "m3", "n1", 1), synthetic_record("a1", "m3", "n1", 2, passed=False)]
    t = analysis.table_81(recs)
    assert t[("a2", "m1")]["text"] == "no: state lost 0/2" and not t[("a2", "m1")]["viable"]
    assert t[("a2", "m2")]["text"] == "yes 2/2" and t[("a2", "m2")]["viable"]
    assert t[("a3", "m3")]["text"] == "no: migration failed 0/1" and t[("a3", "m3")]["cause"] == "migrate: boom"
    assert t[("a1", "m1")]["text"] == "yes (manual input: start command) 1/1"
    assert t[("a1", "m3")]["text"] == "partly 1/2"
    assert ("a3", "m1") not in t


def test_table_82_fits_against_stays():
    recs = [synthetic_record("a2", "m1", "n1", 1, downtime=1.0)]  # migration time 2 + 1.5 + 1 + 1 = 5.5 s
    rows = analysis.table_82(recs, {"per-ap": [1.0, 4.0, 6.0, 13.0], "per-zone": [50.0, 60.0]})
    assert len(rows) == 1
    row = rows[0]
    assert row["migration_time"] == 5.5
    ap, zone = row["placements"]["per-ap"], row["placements"]["per-zone"]
    assert ap["fits_average"] and not ap["fits_shortest"] and ap["fraction"] == 0.5
    assert zone["fits_average"] and zone["fits_shortest"] and zone["fraction"] == 1.0


def test_compare_with_seed_agrees_and_disagrees_with_numbers():
    agree = []
    for net in ("n1", "n2"):
        for s, dt in (("m1", 1.0), ("m2", 1.2), ("m3", 2.0 if net == "n1" else 4.0)):
            agree.append(synthetic_record("a2", s, net, 1, downtime=dt, volume=100 if net == "n1" else 400))
    verdicts = {f: v for f, v, _ in analysis.compare_with_seed(agree)}
    assert list(verdicts.values()) == ["agree"] * 7
    disagree = [synthetic_record("a2", "m1", "n1", 1, downtime=3.0),
                synthetic_record("a2", "m2", "n1", 1, downtime=1.0),
                synthetic_record("a2", "m3", "n1", 1, downtime=2.0, full=30_000_000, transferred=30_020_000,
                                 reloc_source=0.2)]
    found = analysis.compare_with_seed(disagree)
    assert found[0][1] == "disagree" and "m1 3.000 s" in found[0][2]
    assert found[1][1] == "disagree"
    assert found[2][1] == "no data" and found[3][1] == "no data"
    # final 30.02 MB against a delta of 30.02 MB: no speedup at all
    assert found[4][1] == "disagree" and "median 1.00x" in found[4][2]
    assert found[5][1] == "disagree" and "a2 30.00 MB" in found[5][2]
    assert found[6][1] == "disagree" and "0 of 1 cells" in found[6][2]


def test_m3_rows_give_the_delta_ratio_checkpoint_sizes_and_source_relocation_with_spreads():
    recs = [synthetic_record("a3", "m3", "n1", rep, full=16_000_000, transferred=t, reloc_source=rs)
            for rep, t, rs in ((1, 4_000_000, 0.9), (2, 2_000_000, 1.1), (3, 8_000_000, 1.0))]
    recs += [synthetic_record("a3", "m2", "n1", 1, reloc_source=0.4),
             synthetic_record("a3", "m1", "n1", 1, reloc_source=0.3)]
    recs.append(synthetic_record("a3", "m3", "n1", 4, status="failed"))
    (row,) = analysis.m3_rows(recs)
    assert (row["app"], row["network"]) == ("a3", "n1")
    # ratio = checkpoint_final (16.02 MB) / checkpoint_delta, per run; failed runs left out
    assert row["delta_ratio"]["n"] == 3
    assert row["delta_ratio"]["median"] == pytest.approx(16_020_000 / 4_000_000, abs=1e-3)
    assert row["delta_ratio"]["min"] == pytest.approx(16_020_000 / 8_000_000, abs=1e-3)
    assert row["delta_ratio"]["max"] == pytest.approx(16_020_000 / 2_000_000, abs=1e-3)
    assert row["checkpoint_full"]["median"] == 16_000_000 and row["checkpoint_delta"]["median"] == 4_000_000
    assert row["reloc_source_m3"]["median"] == 1.0 and row["reloc_source_m3"]["min"] == 0.9
    assert row["reloc_source_m2"]["median"] == 0.4 and row["reloc_source_m1"]["median"] == 0.3
    assert row["criu_dump"]["median"] == 0.2


def test_delta_ratio_of_records_before_the_stream_transfer():
    old = synthetic_record("a2", "m3", "n1", 1, full=13_000_000, transferred=2_600_000)
    old["sizes"].update(checkpoint_final=None, checkpoint_delta=None, rsync_transferred_bytes=2_600_000)
    assert analysis.delta_ratio(old) == 5.0
    assert analysis.delta_ratio(synthetic_record("a2", "m1")) is None


def test_spread_median_min_max_p90():
    s = analysis.spread([3.0, None, 1.0, 2.0, 10.0])
    assert s == {"n": 4, "median": 2.5, "min": 1.0, "max": 10.0, "p90": 10.0}
    assert analysis.spread([None]) is None


def test_report_has_the_m3_section_table_81_per_cell_and_the_failure_cause(tmp_path):
    recs = [synthetic_record("a3", "m3", "n1", 1, full=16_000_000, transferred=4_000_000),
            synthetic_record("a3", "m3", "n1", 2, status="failed"),
            synthetic_record("a3", "m1", "n1", 1, passed=False), synthetic_record("a3", "m1", "n2", 1)]
    write_runs(tmp_path, recs)
    assert report_main([str(tmp_path), "--no-stays"]) == 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "| a3 | n1 | 1 | 16.00 | 16.02 | 4.00 | 4.00 | 4.01 | 0.200 | 0.600 / - / 0.300 |" in page
    assert "| a3 | n1 | 0/1 (1 lost) | 1/2 (1 failed) |" in page and "| a3 | n2 | 1/1 | - |" in page
    assert ("- a3 m3 n1 #2: migrate: boom (stage migrate, outcome rolled_back, phase relocation); CRIU: "
            "Error (criu/sk-inet.c:191)") in page


def test_report_renders_from_partial_data_and_names_skipped(tmp_path, capsys):
    recs = [synthetic_record("a2", "m1", "n1", 1), synthetic_record("a2", "m2", "n1", 1, status="failed")]
    write_runs(tmp_path, recs, {"broken.json": "not json"})
    assert report_main([str(tmp_path), "--no-stays"]) == 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "`broken.json`" in page
    assert ("2 runs; **1 of 2 ok at their first attempt**, 1 ok after retries (0 runs retried, 2 attempts in all); "
            "1 files skipped") in page
    assert "| a2 | yes (manual input: start command) 1/1 (seed: no) | no: migration failed 0/1 (seed: yes) |" in page
    for fig in ("fig_8_1_image_sizes.png", "fig_8_7_a2_volume.png", "fig_8_11_downtime.png"):
        assert (tmp_path / "report" / fig).stat().st_size > 1000
    assert "broken.json" in capsys.readouterr().out


def test_report_over_an_empty_folder(tmp_path):
    assert report_main([str(tmp_path), "--no-stays"]) == 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "0 runs; **0 of 0 ok at their first attempt**" in page and "no runs/ folder" in page


def test_gateway_log_parsing_and_gap():
    log = "\n".join([
        '2026-11-26T13:10:02.000+0000 10.77.0.3 "GET /rni/v2/queries/rab_info HTTP/1.1" 200 412 2301us',
        '2026-11-26T13:10:02.200+0000 10.77.0.3 "GET /rni/v2/queries/rab_info HTTP/1.1" 503 10 2301us',
        '2026-11-26T13:10:02.300+0000 10.77.0.4 "GET /location/v2/queries/users HTTP/1.1" 200 412 2301us',
        'garbage line'])
    times = probe.parse_gateway_log(log)
    assert len(times) == 1
    target = probe.parse_gateway_log(log.replace("13:10:02.000", "13:10:04.500"))
    gap = probe.gateway_gap(times, target, since=0)
    assert gap["downtime"] == pytest.approx(2.5)
    assert probe.gateway_gap(times, [], since=0)["downtime"] is None


def test_user_gap_takes_last_source_answer_before_first_target_answer():
    src = probe.EndpointLog("source", good_times=[1.0, 1.02, 1.04, 9.0])
    tgt = probe.EndpointLog("target", good_times=[3.5, 3.52])
    assert probe.user_gap(src, tgt)["downtime"] == pytest.approx(2.46)
    assert probe.user_gap(probe.EndpointLog("s"), tgt)["downtime"] is None


def test_memcached_reply_parsing():
    reply = b"VALUE zone01 0 1\r\n3\r\nVALUE zone02 0 2\r\n12\r\nEND\r\n"
    assert probe.parse_get_reply(reply) == {"zone01": "3", "zone02": "12"}
    assert probe.parse_get_reply(b"END\r\n") == {}


def test_table_81_leaves_out_runs_that_failed_before_the_migration():
    reset_failed = synthetic_record("a1", "m2", "n2", 1, status="failed")
    reset_failed["experiment"]["stage_failed"] = "reset"
    t = analysis.table_81([synthetic_record("a1", "m2", "n1", 1), reset_failed])
    assert t[("a1", "m2")]["text"] == "yes 1/1"


def test_report_counts_first_attempts_and_a_retried_run_once(tmp_path):
    def rec(rep, attempt, status, downtime):
        r = synthetic_record("a2", "m2", "n1", rep, status=status, downtime=downtime)
        r["experiment"]["attempt"] = attempt
        return r
    # rep 1 ok at once; rep 2 failed, then ok at its second attempt; rep 3 failed twice
    recs = [rec(1, 1, "ok", 1.0), rec(2, 1, "failed", 9.0), rec(2, 2, "ok", 3.0), rec(3, 1, "failed", 9.0),
            rec(3, 2, "failed", 9.0)]
    write_runs(tmp_path, recs)
    assert analysis.attempt_summary(recs) == {"runs": 3, "first": 3, "first_ok": 1, "final_ok": 2, "retried": 2,
                                              "attempts": 5}
    final = analysis.final_attempts(recs)
    assert sorted((r["experiment"]["rep"], r["experiment"]["attempt"]) for r in final) == [(1, 1), (2, 2), (3, 2)]
    cell = analysis.cell_medians(final)[("a2", "m2", "n1")]
    assert (cell["runs"], cell["ok"], cell["first_ok"]) == (3, 2, 1)
    assert cell["downtime_wall"] == 2.0  # the ok runs' last attempts: 1.0 and 3.0
    assert report_main([str(tmp_path), "--no-stays"]) == 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "3 runs; **1 of 3 ok at their first attempt**, 2 ok after retries (2 runs retried, 5 attempts in all)" \
        in page
    assert "| a2 | m2 | n1 | 3 | 2 (1) |" in page
    assert "### Failed attempts that were retried" in page and "- a2 m2 n1 #2 attempt 1: migrate: boom" in page


def test_the_probe_keeps_its_grid_while_requests_hang_and_measures_the_freeze():
    """An endpoint frozen for 1.0 s (every request sent meanwhile hangs until it thaws, as a paused app's do):
    the requests go on every 20 ms, the freeze is measured within 50 ms, and it is a freeze, not a downtime."""
    import threading
    import time as _time
    thaw = threading.Event()
    frozen = {}

    def ask():
        if frozen.get("from") is not None and not thaw.is_set():
            thaw.wait(5)
        return True, {"requestsOk": 1}
    p = probe.Poller("source", ask, interval=0.02, deadline=10)
    p.start()
    _time.sleep(0.5)
    frozen["from"] = _time.time()
    _time.sleep(1.0)
    thaw.set()
    frozen["to"] = _time.time()
    _time.sleep(0.5)
    p.stop()
    p.join(2)
    res = p.resolution()
    # the grid went on through the hang: about 50 requests were sent during the frozen second (a poller that
    # waits for its request sends one), and the longest spacing is far below the hang (20 ms when this
    # machine is not overloaded; the probe reports it with every run)
    during = [t for t in p.sent_times if frozen["from"] < t < frozen["to"]]
    assert len(during) >= 25 and res["skipped"] == 0, (len(during), res)
    assert res["send_gap_max"] <= 0.2, res
    f = probe.freezes(p.log.good_times, 0.02)
    tolerance = max(0.05, res["send_gap_max"] + 0.02)
    assert f["count"] == 1 and abs(f["longest"] - 1.0) <= tolerance, (f, res)
    assert frozen["from"] - tolerance <= f["gaps"][0][0] <= frozen["from"] + 0.001


def test_freezes_are_gaps_between_good_answers():
    times = [0.0, 0.02, 0.04, 0.06, 0.56, 0.58, 0.60, 0.70, 0.72]
    assert probe.freezes(times, 0.02) == {"longest": 0.5, "total": 0.6, "count": 2,
                                          "gaps": [[0.06, 0.5], [0.6, 0.1]]}
    assert probe.freezes([1.0], 0.02)["longest"] is None
