"""The drive's figure (timeline.png) and its printed table."""

from __future__ import annotations

from . import analysis

COLORS = {"local": "#2e8b57", "remote": "#e67e22", "down": "#c0392b"}


def timeline_figure(path, samples, hops, zone_host, start, end, title) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zones = sorted(zone_host)
    host_zone = {h: z for z, h in zone_host.items()}
    y = {z: i for i, z in enumerate(zones)}
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(13, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    # the UE's zone (grey band) and the host that served A2 (coloured by state)
    ts = [s["t"] - start for s in samples]
    ax.step(ts, [y.get(s["zone"], -1) for s in samples], where="post", color="#bbbbbb", linewidth=9,
            label="UE's zone", solid_capstyle="butt")
    for state in ("local", "remote"):
        xs = [s["t"] - start for s in samples if analysis.sample_state(s, zone_host) == state]
        ys = [y.get(host_zone.get(s["up"][0]), -1) for s in samples if analysis.sample_state(s, zone_host) == state]
        ax.scatter(xs, ys, s=4, color=COLORS[state], label=f"A2 served from {state} host", zorder=3)
    downs = [s["t"] - start for s in samples if analysis.sample_state(s, zone_host) == "down"]
    ax.scatter(downs, [-0.6] * len(downs), marker="|", s=80, color=COLORS["down"], label="A2 answered nowhere")
    for h in hops:
        ax.axvline(h["at"] - start, color="#555555", linestyle=":", linewidth=0.8)
        if h["event_received_at"]:
            ax.scatter([h["event_received_at"] - start], [y[h["to_zone"]] + 0.3], marker="v", color="#34495e", s=18)
    ax.set_yticks(list(range(len(zones))))
    ax.set_yticklabels([f"{z}\n{zone_host[z]}" for z in zones], fontsize=8)
    ax.set_ylim(-1, len(zones))
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    # per hop: handover -> event -> playbook start -> serving on the zone's host
    for k, h in enumerate(hops):
        row = k % 3
        a = h["at"] - start
        segs = []
        if h["event_received_at"] and h["playbook_started_at"]:
            segs.append((a, h["playbook_started_at"] - h["at"], "#95a5a6"))
        if h["serving_at"] is not None and h["playbook_started_at"] and h["serving_at"] > h["playbook_started_at"]:
            segs.append((h["playbook_started_at"] - start, h["serving_at"] - h["playbook_started_at"], "#3b6ea5"))
        for x0, w, c in segs:
            bx.broken_barh([(x0, w)], (row - 0.35, 0.7), color=c)
        label = {"moved": "", "superseded": "s", "coalesced": "c", "already_there": "=", "failed": "FAIL",
                 "given_up": "g", "no_event": "?"}[h["outcome"]]
        if h["serving_at"] is not None and h["outcome"] == "moved":
            label = f"{h['handover_to_serving_s']:.1f}s"
        bx.text(a, row + 0.4, label, fontsize=6)
    bx.set_yticks([])
    bx.set_ylim(-0.6, 3)
    bx.set_xlabel("drive time (s); dotted: handovers, v: event received; below: handover to playbook start "
                  "(grey), playbook to A2 serving on the zone's host (blue); c coalesced, g given up")
    bx.set_xlim(0, end - start)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


def _f(x, unit="s"):
    return "-" if x is None else f"{x:.2f}{unit}"


def table(summary: dict, hops: list[dict]) -> str:
    s = summary
    loc = s["served_locally"]
    lines = [f"drive {s['mode']} ({s['strategy']}, {s['placement']}, {s['network']}), UE {s['ue']}, "
             f"{s['minutes']:g} min, {s['samples']} samples",
             f"  served locally: {100 * (loc['ratio'] or 0):.1f} % ({loc['seconds']['local']:.1f} s of "
             f"{loc['window_s']:.0f}; remote {loc['seconds']['remote']:.1f} s, down {loc['seconds']['down']:.1f} s); "
             f"after the first handover {_pct((loc.get('after_first_handover') or {}).get('ratio'))}",
             f"  A2's counter {s['counter']['a2']} vs zones entered {s['counter']['zones_entered']}",
             f"  hops: {s['hops']['handovers']} handovers {s['hops']['by_outcome']}, migrations "
             f"{s['hops']['migrations']} ({s['hops']['migrations_failed']} failed), rulebook runs "
             f"{s['hops']['rulebook_runs']} + {s['hops']['rulebook_runs_failed']} that failed "
             f"({s['hops']['stagings_given_up']} stagings given up, as designed)",
             "",
             "  #  handover  from->to        stay   outcome       ev->pb  ev->serve  ho->serve  UE down  local"]
    for h in hops:
        lines.append(f"  {h['index']:<2} {h['at'] - s['started_at']:8.1f}  {h['from_zone']}->{h['to_zone']}  "
                     f"{h['stay_s']:6.1f}  {h['outcome']:<13} {_f(h['event_to_playbook_s']):>7} "
                     f"{_f(h['event_to_serving_s']):>9} {_f(h['handover_to_serving_s']):>10} "
                     f"{_f(h['ue_downtime_s']):>8} {100 * (h['served_locally_ratio'] or 0):5.0f}%")
    lines.append("")
    for name, st in s["figures"].items():
        lines.append(f"  {name:<24} median {_f(st['median']):>8}  max {_f(st['max']):>8}  (n={st['count']})")
    t = s["targets"]
    lines.append(f"  targets: served locally >= 95 %: {t['served_locally_ge_95']}; counter = zones entered: "
                 f"{t['counter_equals_zones_entered']}; no hop failed: {t['no_hop_failed']}")
    d = s.get("derived", {})
    if "per_ap_ceiling" in d and "per_ap_staged" not in d:  # ahead: the staged model below says more
        lines.append(f"  DERIVED: if every hop took {_f(d['handover_to_serving_median_s'])} (this drive's median "
                     f"handover -> serving): per zone {_pct(d['per_zone_ceiling']['ratio'])}, per access point "
                     f"{_pct(d['per_ap_ceiling']['ratio'])} ({d['per_ap_host_changes']} host changes, stays median "
                     f"{_f(d['per_ap_stays_s']['median'])}, {d['per_ap_stays_shorter_than_the_lag']} shorter)")
    if "per_ap_staged" in d:
        z, a = d["per_zone_staged"], d["per_ap_staged"]
        lines.append(f"  DERIVED, staged ahead (perfect prediction; staging {_f(z['high']['staging_s'])}, outage "
                     f"{_f(z['high']['outage_s'])} per hop; staging after the previous hop ended .. in parallel): "
                     f"per zone {_pct(z['low']['ratio'])} .. {_pct(z['high']['ratio'])} (measured "
                     f"{_pct(d['per_zone_measured_ratio'])}), per access point {_pct(a['low']['ratio'])} .. "
                     f"{_pct(a['high']['ratio'])} (stays lost whole {a['low']['stays_lost']} .. "
                     f"{a['high']['stays_lost']})")
    if "per_ap_replayed" in d:
        lines.append(f"  DERIVED, reactive follower replayed: per zone {_pct(d['per_zone_replayed']['ratio'])} "
                     f"(measured {_pct(d['per_zone_measured_ratio'])}), per access point "
                     f"{_pct(d['per_ap_replayed']['ratio'])}")
    return "\n".join(lines)
