"""Unit tests of the drive experiment's pure parts (apps/mec_drive: analysis, derive): served-locally time,
UE-visible outages, hop assembly from the probe's timeline + follow.yml's lines + migrate.yml's records, the
follower model. Crafted inputs, each built so that a plausible wrong implementation gives another answer."""

from __future__ import annotations

import pytest

from mec_drive import analysis, derive

ZH = {"zone01": "h1", "zone02": "h2", "zone03": "h3"}


def s(t, zone, *up, counter=None):
    return {"t": float(t), "zone": zone, "up": list(up), "counter": counter or {h: 1 for h in up}}


# ------------------------------------------------------------------------------------------ served locally
def test_served_locally_weights_by_time_not_by_sample_count():
    # 3 samples local over 1 s, then 1 sample remote that lasts 9 s: by count 75 %, by time 10 %
    samples = [s(0, "zone01", "h1"), s(0.2, "zone01", "h1"), s(0.4, "zone01", "h1"), s(1.0, "zone02", "h1")]
    r = analysis.served_locally(samples, ZH, 0.0, 10.0)
    assert r["seconds"] == {"local": 1.0, "remote": 9.0, "down": 0.0}
    assert r["ratio"] == pytest.approx(0.1)


def test_served_locally_clips_to_the_window_and_counts_down_time():
    samples = [s(0, "zone01", "h1"), s(4, "zone02"), s(6, "zone02", "h2"), s(20, "zone02", "h2")]
    r = analysis.served_locally(samples, ZH, 2.0, 10.0)  # window [2, 10): local 2..4, down 4..6, local 6..10
    assert r["seconds"] == {"local": 6.0, "remote": 0.0, "down": 2.0}
    assert r["window_s"] == 8.0 and r["ratio"] == pytest.approx(0.75)


def test_time_before_the_first_sample_is_not_counted_as_served():
    r = analysis.served_locally([s(5, "zone01", "h1")], ZH, 0.0, 10.0)
    assert r["seconds"]["down"] == 5.0 and r["ratio"] == pytest.approx(0.5)


def test_the_right_host_must_answer_not_any_host():
    # the UE is in zone02 but only h1 (zone01's host) answers: served, but not locally
    r = analysis.served_locally([s(0, "zone02", "h1")], ZH, 0.0, 4.0)
    assert r["seconds"] == {"local": 0.0, "remote": 4.0, "down": 0.0} and r["ratio"] == 0.0


# ------------------------------------------------------------------------------------------ outages, serving
def test_outages_span_last_answer_to_first_answer_and_skip_cut_ones():
    samples = [s(0, "zone01"), s(1, "zone01", "h1"), s(1.2, "zone01"), s(1.4, "zone01"), s(1.9, "zone02", "h2"),
               s(3, "zone02", "h2"), s(3.2, "zone02")]  # starts down (cut), one outage 1.0 -> 1.9, ends down (cut)
    assert analysis.outages(samples) == [{"from": 1.0, "to": 1.9, "seconds": 0.9, "first_missed": 1.2}]


def test_first_serving_is_the_start_of_the_run_that_holds_at_or_after_the_handover():
    samples = [s(0, "zone01", "h2"), s(1, "zone01"), s(5, "zone01", "h2"), s(9, "zone02", "h2"), s(12, "zone02")]
    # h2 served 0..1 (an older run), then from 5 on: at the handover (t=8) it already serves, since 5
    assert analysis.first_serving(samples, "h2", 8, 20) == 5.0
    assert analysis.first_serving(samples, "h3", 8, 20) is None
    # a run that starts only after the window's end does not count
    assert analysis.first_serving([s(0, "z"), s(30, "z", "h2")], "h2", 8, 20) is None


# ------------------------------------------------------------------------------------------ hops
def rec(run_id, src, dst, t0, stopped, running, t1, status="ok"):
    return {"schema": "mec.migration/record/v1", "run_id": run_id, "status": status, "source": {"host": src},
            "target": {"host": dst}, "downtime": {"wall": round(running - stopped, 6) if running else None},
            "timestamps": {"started_at": t0, "source_stopped_at": stopped, "target_running_at": running,
                           "finished_at": t1}}


def line(seq, zone, src, dst, moved, coalesced, ev_at, recv, pb, fin):
    return {"seq": seq, "zone": zone, "source": src, "target": dst, "moved": moved, "coalesced": coalesced,
            "event_at": ev_at, "event_received_at": recv, "playbook_started_at": pb, "finished_at": fin}


def test_assemble_hops_pairs_events_runs_and_records_and_measures_what_the_ue_saw():
    handovers = [{"at": 100.0, "from_zone": "zone01", "to_zone": "zone02"},
                 {"at": 130.0, "from_zone": "zone02", "to_zone": "zone03"},
                 {"at": 131.0, "from_zone": "zone03", "to_zone": "zone02"}]
    follow = [
        # event 1: moved h1 -> h2; the run started at 101.5, the app served on h2 from 112
        line(1, "zone02", "h1", "h2", True, False, 100.0, 100.3, 101.5, 116.0),
        # event 2 (zone03) ran after the UE was back in zone02: already there (seq 3 latest)
        line(2, "zone02", "h2", "h2", False, False, 130.0, 130.2, 131.5, 134.0),
        # event 3: covered by run 2
        line(3, "zone02", "", "", False, True, "131.0", "131.1", "134.2", "135.0"),
    ]
    records = [
        # a record of another hop (h3 -> h2) inside run 1's time must not be taken for it
        rec("other", "h3", "h2", 102.0, 109.0, 109.5, 115.0),
        rec("r1", "h1", "h2", 103.0, 111.0, 111.6, 115.5),
    ]
    samples = ([s(99 + 0.5 * i, "zone01" if i < 2 else "zone02", "h1") for i in range(0, 24)]  # 99..110.5 on h1
               + [s(111.0, "zone02"), s(111.5, "zone02")]  # nothing answers 111..112
               + [s(112 + 0.5 * i, "zone02", "h2") for i in range(36)]  # 112..129.5 on h2
               + [s(130 + 0.5 * i, "zone03" if i < 2 else "zone02", "h2") for i in range(20)])  # 130..139.5
    hops = analysis.assemble_hops(handovers, follow, records, samples, ZH, 140.0)
    assert [h["outcome"] for h in hops] == ["moved", "already_there", "coalesced"]
    h1 = hops[0]
    assert h1["migration"]["run_id"] == "r1" and h1["migration"]["downtime_s"] == pytest.approx(0.6)
    assert h1["event_delay_s"] == pytest.approx(0.3) and h1["event_to_playbook_s"] == pytest.approx(1.2)
    assert h1["serving_at"] == 112.0 and h1["handover_to_serving_s"] == 12.0
    assert h1["event_to_serving_s"] == pytest.approx(11.7)
    assert h1["ue_downtime_s"] == pytest.approx(1.5) and h1["ue_outages"] == 1  # 110.5 (last answer) -> 112.0
    # the stay 100..130 in zone02: served locally from 112 on: 18 of 30 s
    assert h1["stay_s"] == 30.0 and h1["served_locally_s"] == pytest.approx(18.0)
    # the 1 s stay in zone03 was never served locally; the last stay (zone02, cut by the end) was
    assert hops[1]["served_locally_ratio"] == 0.0 and hops[1]["stay_s"] == 1.0
    assert hops[2]["served_locally_ratio"] == 1.0 and hops[2]["stay_cut_by_end"]


def test_a_failed_hop_has_a_record_but_no_follow_line_and_is_reported_failed():
    handovers = [{"at": 10.0, "from_zone": "zone01", "to_zone": "zone02"},
                 {"at": 50.0, "from_zone": "zone02", "to_zone": "zone03"}]
    follow = [line(2, "zone03", "h1", "h3", True, False, 50.0, 50.2, 51.0, 66.0)]
    records = [rec("bad", "h1", "h2", 12.0, None, None, 20.0, status="failed"),
               rec("good", "h1", "h3", 53.0, 60.0, 60.5, 65.0)]
    samples = [s(t, "zone01" if t < 10 else ("zone02" if t < 50 else "zone03"), "h1" if t < 61 else "h3")
               for t in range(0, 80)]
    hops = analysis.assemble_hops(handovers, follow, records, samples, ZH, 80.0)
    assert [h["outcome"] for h in hops] == ["failed", "moved"]
    assert hops[0]["migration"]["run_id"] == "bad" and hops[0]["follow"] is None
    assert hops[0]["served_locally_s"] == 0.0  # h1 served zone02's UE the whole stay
    assert hops[1]["migration"]["run_id"] == "good"


def test_a_run_that_went_to_a_later_zone_gives_its_record_to_that_zone_s_hop():
    # zone02 at 10, zone03 at 11: event 1's run starts at 12, reads the latest zone (zone03) and moves there;
    # event 2's run is covered (coalesced). The move belongs to the hop into zone03, not to the one into zone02.
    handovers = [{"at": 10.0, "from_zone": "zone01", "to_zone": "zone02"},
                 {"at": 11.0, "from_zone": "zone02", "to_zone": "zone03"}]
    follow = [line(1, "zone03", "h1", "h3", True, False, 10.0, 10.1, 12.0, 30.0),
              line(2, "zone03", "", "", False, True, 11.0, 11.1, 30.5, 31.0)]
    records = [rec("r", "h1", "h3", 14.0, 24.0, 24.5, 29.0)]
    samples = [s(t, "zone01" if t < 10 else ("zone02" if t < 11 else "zone03"), "h1" if t < 24 else "h3")
               for t in range(0, 40)]
    hops = analysis.assemble_hops(handovers, follow, records, samples, ZH, 40.0)
    assert [h["outcome"] for h in hops] == ["superseded", "moved"]
    assert hops[0]["migration"] is None and hops[1]["migration"]["run_id"] == "r"
    assert hops[1]["serving_at"] == 24.0 and hops[1]["event_to_serving_s"] == pytest.approx(12.9)


def test_ahead_the_move_made_before_the_handover_is_the_hop_s_and_an_abandoned_staging_is_no_failure():
    # a prediction (zone02) at 90: its run stages the app on h2 behind the gate; the gate opens at the handover
    # (100) and h2 serves from 101.5; the zone change's own run ends at once (handled). A second prediction
    # (zone03, at 105) is abandoned when the UE stays: rolled back, status failed, gate abandoned.
    handovers = [{"at": 100.0, "from_zone": "zone01", "to_zone": "zone02"}]
    follow = [dict(line(1, "zone02", "h1", "h2", True, False, 90.0, 90.1, 90.5, 104.0), run_id="ahead1"),
              line(2, "zone02", "", "", False, True, 100.0, 100.05, 104.5, 105.0),
              dict(line(3, "zone03", "h2", "h3", True, False, 105.0, 105.1, 105.5, 140.0), run_id="gave-up")]
    staged = rec("ahead1", "h1", "h2", 92.0, 100.9, 101.4, 103.5)
    staged["gate"] = {"outcome": "open", "waited": 5.0, "opened_at": 100.6}
    abandoned = rec("gave-up", "h2", "h3", 107.0, None, None, 139.0, status="failed")
    abandoned["gate"] = {"outcome": "abandoned", "waited": 30.0, "opened_at": None}
    samples = [s(90 + 0.5 * i, "zone01" if i < 20 else "zone02", "h1" if i < 21 else ("h2" if i >= 23 else None))
               for i in range(100)]
    for x in samples:
        x["up"] = [h for h in x["up"] if h]
    hops = analysis.assemble_hops(handovers, follow, [abandoned, staged], samples, ZH, 140.0)
    h = hops[0]
    assert h["outcome"] == "moved" and h["migration"]["run_id"] == "ahead1"
    assert h["event_to_playbook_s"] == pytest.approx(-9.55)  # the moving run began 9.55 s before the event
    assert h["serving_at"] == 101.5 and h["handover_to_serving_s"] == 1.5
    assert h["handover_to_gate_open_s"] == pytest.approx(0.6)  # the gate's opening, from the handover
    b = h["breakdown"]
    assert b["gate_wait_s"] == 5.0 and b["relocation_s"] == pytest.approx(0.5)
    assert b["pre_relocation_s"] == pytest.approx(8.9) and b["follow_decide_s"] == pytest.approx(1.5)
    assert analysis.staging_given_up(abandoned) and not analysis.hop_failed(abandoned)
    assert analysis.hop_failed(rec("x", "h1", "h2", 1, None, None, 2, status="failed"))


def test_a_late_move_is_timed_from_its_own_record_not_from_an_app_still_there_or_the_stay_s_end():
    # zone02 at 10 (the move h1 -> h2 serves only at 40, after the stay), zone01 at 30 (the UE is back while
    # the app still runs on h1, then leaves it: its move h2 -> h1 ends at 70). Hop 2 must not count h1's old
    # service (0..38) as its serving; hop 1 is served at 40, late (30 s after its handover, 0 s of its stay).
    handovers = [{"at": 10.0, "from_zone": "zone01", "to_zone": "zone02"},
                 {"at": 30.0, "from_zone": "zone02", "to_zone": "zone01"}]
    follow = [line(1, "zone02", "h1", "h2", True, False, 10.0, 10.1, 11.0, 45.0),
              line(2, "zone01", "h2", "h1", True, False, 30.0, 30.1, 45.5, 75.0)]
    records = [rec("a", "h1", "h2", 13.0, 38.5, 39.5, 44.0), rec("b", "h2", "h1", 47.0, 68.5, 69.6, 74.0)]
    samples = [s(t, "zone01" if t < 10 or t >= 30 else "zone02", "h1" if t < 39 else ("h2" if 40 <= t < 69 else
                 ("h1" if t >= 70 else None))) for t in range(0, 90)]
    for x in samples:
        x["up"] = [h for h in x["up"] if h]
    hops = analysis.assemble_hops(handovers, follow, records, samples, ZH, 90.0)
    assert [(h["outcome"], h["serving_at"]) for h in hops] == [("moved", 40.0), ("moved", 70.0)]
    assert hops[0]["handover_to_serving_s"] == 30.0 and hops[0]["served_locally_s"] == 0.0
    assert hops[1]["event_to_serving_s"] == pytest.approx(39.9)
    assert not hops[0]["queued"] and hops[1]["queued"]  # event 2 came while run 1 was moving the app


def test_an_event_too_far_from_the_handover_is_not_taken_for_it():
    handovers = [{"at": 10.0, "from_zone": "zone01", "to_zone": "zone02"}]
    follow = [line(1, "zone02", "h1", "h2", True, False, 12.5, 12.6, 13.0, 20.0)]  # 2.5 s off: another event
    hops = analysis.assemble_hops(handovers, follow, [], [s(0, "zone01", "h1")], ZH, 30.0)
    assert hops[0]["outcome"] == "no_event" and hops[0]["follow"] is None


def test_stats_and_zones_entered():
    assert analysis.stats([3, None, 1, 2]) == {"count": 3, "median": 2, "max": 3, "min": 1}
    assert analysis.stats([]) == {"count": 0, "median": None, "max": None, "min": None}
    assert analysis.zones_entered("zone01", [{}] * 9) == 10


# ------------------------------------------------------------------------------------------ derived placement
def model(**kw):
    base = dict(event_delay_s=0.0, to_playbook_s=1.0, move_s=9.0, downtime_s=1.0, tail_s=0.0, noop_s=2.0)
    base.update(kw)
    return derive.FollowModel(**base)


def test_replay_one_hop_loses_the_move_time_and_nothing_else():
    tl = [(0.0, "h1"), (50.0, "h2")]
    r = derive.replay(tl, model(), 100.0)
    # local 0..50 on h1, then h2 serves from 50 + 1 + 9 = 60: 90 of 100 s
    assert r["served_locally_s"] == pytest.approx(90.0) and r["moves"] == 1 and r["runs"] == 1


def test_replay_serialises_runs_and_goes_to_the_latest_host():
    # h2 at 10, h3 at 12 (while the first run moves to h2), back to h1 at 40
    tl = [(0.0, "h1"), (10.0, "h2"), (12.0, "h3"), (40.0, "h1")]
    r = derive.replay(tl, model(), 60.0)
    # run 1: starts 11, h2 serves from 20 (never local: the UE is in h3 since 12);
    # run 2 (event 12) waits for run 1 (ends 20), starts 21, goes to h3, serves from 30 (down 29..30);
    # run 3 (event 40): starts 41, h1 from 50. Local: 0..10 (h1), 30..40 (h3), 50..60 (h1) = 30 s
    assert r["served_locally_s"] == pytest.approx(30.0)
    assert r["runs"] == 3 and r["moves"] == 3


def test_replay_coalesces_events_an_earlier_run_covered():
    # two changes while the app waits behind a long run: the second run goes to the latest host, the third ends
    tl = [(0.0, "h1"), (10.0, "h2"), (11.0, "h3"), (11.5, "h2")]
    r = derive.replay(tl, model(move_s=20.0), 80.0)
    # run 1 (event 10): start 11, decides at 11: latest change by 11 is h3 (11.0) -> handled up to index 2
    # run 2 (event 11, index 2): covered -> coalesced (noop); run 3 (event 11.5): h2, moves after run 1 (ends 31)
    assert r["runs"] == 3 and r["moves"] == 2


def test_ceiling_loses_the_lag_per_change_and_short_stays_whole():
    tl = [(0.0, "h1"), (50.0, "h2"), (53.0, "h3"), (90.0, "h1")]
    r = derive.ceiling(tl, 5.0, 100.0)
    # 0..50 whole; the 3 s stay lost whole; 53..90 loses 5; 90..100 loses 5
    assert r["served_locally_s"] == pytest.approx(50 + 0 + 32 + 5) and r["ratio"] == pytest.approx(0.87)


# ------------------------------------------------------------------------------------------ runner's checks
def test_sampled_zone_changes_are_checked_against_the_replayed_ones():
    from mec_drive.runner import check_sampled_zones

    handovers = [{"at": 10.0, "to_zone": "zone02"}, {"at": 20.0, "to_zone": "zone03"}]
    samples = [s(9.9, "zone01"), s(10.1, "zone02"), s(15, None), s(20.3, "zone03")]  # a zone-less sample ignored
    assert check_sampled_zones(samples, handovers) == {"same_sequence": True, "sampled": 2, "replayed": 2,
                                                       "max_lag_s": 0.3}
    wrong = [s(9.9, "zone01"), s(10.1, "zone03")]
    assert check_sampled_zones(wrong, handovers)["same_sequence"] is False


def test_failed_rulebook_runs_are_the_run_playbook_errors(tmp_path):
    from mec_drive.runner import rulebook_failures

    log = tmp_path / "rulebook.log"
    log.write_text("PLAY RECAP\nh : ok=3 failed=1\n2026-11-27 18:49:08,655 - ansible_rulebook.action.run_playbook - "
                   "ERROR - [WARNING]: ...\nh : ok=3 failed=1\n"  # one failed run, its output logged twice
                   "2026-11-27 18:59:08,655 - ansible_rulebook.action.run_playbook - ERROR - x\n")
    assert rulebook_failures(log) == 2
    assert rulebook_failures(tmp_path / "missing.log") == 0


def test_staged_ahead_is_limited_by_the_staging_after_the_previous_handover():
    # staging 20 s from the previous handover on, outage 1 s: h2 (50-60) staged in time (ready at 50): 9 s;
    # h3 (60-70) ready at 50 + 20 = 70, the stay's end: lost whole; h4 (70-75) ready at 80: lost whole (the app is
    # still on h2); h3 (75-110) ready at 70 + 20 = 90, late: 19 s; h2 (110-130) ready at 110: 19 s
    tl = [(0.0, "h1"), (50.0, "h2"), (60.0, "h3"), (70.0, "h4"), (75.0, "h3"), (110.0, "h2")]
    r = derive.staged_ahead(tl, staging_s=20.0, outage_s=1.0, end=130.0)
    assert r["served_locally_s"] == pytest.approx(50 + 9 + 0 + 0 + 19 + 19)
    assert (r["hops_staged_in_time"], r["hops_late"], r["stays_lost"]) == (2, 1, 2)
    assert r["ratio"] == pytest.approx(97 / 130)


def test_staged_ahead_serial_waits_for_the_previous_hop_and_bounds_the_range_from_below():
    # the same stays, staging only once the previous hop ended: h2 ready at 50 (9 s, ends 51); h3 from 51: ready 71,
    # lost (busy until 70); h4 from 70: ready 90, lost (busy until 75); h3 from 75: ready 95, late: 14 s (ends 96);
    # h2 from 96: ready 116, late: 13 s
    tl = [(0.0, "h1"), (50.0, "h2"), (60.0, "h3"), (70.0, "h4"), (75.0, "h3"), (110.0, "h2")]
    r = derive.staged_ahead(tl, staging_s=20.0, outage_s=1.0, end=130.0, serial=True)
    assert r["served_locally_s"] == pytest.approx(50 + 9 + 0 + 0 + 14 + 13)
    assert (r["hops_staged_in_time"], r["hops_late"], r["stays_lost"]) == (1, 2, 2)
    rng = derive.staged_ahead_range(tl, staging_s=20.0, outage_s=1.0, end=130.0)
    assert rng["low"]["ratio"] == pytest.approx(86 / 130) and rng["high"]["ratio"] == pytest.approx(97 / 130)
    assert (rng["low"]["serial"], rng["high"]["serial"]) == (True, False)


def test_a_hop_given_up_because_the_ue_left_is_no_missing_event_and_no_failure():
    # zone02 at 10 for 6 s: its reactive hop (no follow line: follow.yml writes none when migrate.yml fails) was
    # given up at its gate (follow_confirm_zone: the UE was back in zone01); the app never left h1
    handovers = [{"at": 10.0, "from_zone": "zone01", "to_zone": "zone02"},
                 {"at": 16.0, "from_zone": "zone02", "to_zone": "zone01"}]
    gave_up = rec("g", "h1", "h2", 17.0, None, None, 20.0, status="failed")  # its run queued past the stay
    gave_up["gate"] = {"outcome": "abandoned", "waited": 0.0, "opened_at": None}
    follow = [line(2, "zone01", "", "", False, True, 16.0, 16.01, 21.0, 21.5)]
    samples = [s(0.5 * i, "zone02" if 20 <= i < 32 else "zone01", "h1") for i in range(60)]
    hops = analysis.assemble_hops(handovers, follow, [gave_up], samples, ZH, 30.0)
    assert [h["outcome"] for h in hops] == ["given_up", "coalesced"]
    assert not analysis.hop_failed(gave_up)


def test_a_handover_is_timed_when_the_sandbox_reached_it_not_at_epoch_plus_its_simulated_time():
    """The machine was held 15 s at wall 100 (the sandbox's monotonic clock stood still: its simulated time then
    lags the wall clock by 15 s): a handover at simulated 150 s happens for the UE at wall 165 s, which the probe's
    samples (wall t, simulated sim) show."""
    samples = [{"t": t, "sim": t if t <= 100 else t - 15.0} for t in (0.0, 50.0, 100.0, 115.2, 130.0, 170.0, 200.0)]
    assert analysis.wall_time_of(samples, 150.0, 0.0) == pytest.approx(165.0)
    assert analysis.wall_time_of(samples, 25.0, 0.0) == pytest.approx(25.0)  # before the hold: epoch + t
    assert analysis.wall_time_of(samples, 190.0, 0.0) == pytest.approx(205.0)  # after the last sample
    assert analysis.wall_time_of([], 12.0, 1000.0) == 1012.0
    # the event carries the platform's time stamp (epoch + simulated): it is matched by event_at, timed by at
    handovers = [{"at": 165.0, "event_at": 150.0, "from_zone": "zone01", "to_zone": "zone02"}]
    lines = [line(1, "zone02", "h1", "h2", True, False, 150.0, 165.01, 166.0, 180.0)]
    hops = analysis.assemble_hops(handovers, lines, [], [], {"zone01": "h1", "zone02": "h2"}, 300.0)
    assert hops[0]["event_delay_s"] == pytest.approx(0.01) and hops[0]["event_received_at"] == 165.01
