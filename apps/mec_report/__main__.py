"""python -m mec_report RESULTS_DIR [--out DIR] [--stay-duration S] [--stay-step S]

Reads RESULTS_DIR/runs/*.json (experiment records; corrupt or foreign files are named and skipped) and
writes DIR (default RESULTS_DIR/report) with report.md and one PNG per figure of the seed's chapter 8.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mec_experiment.records import load_records, write_atomic

from .render import render


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mec_report", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="the experiment's results folder (with runs/)")
    ap.add_argument("--out", help="output folder (default RESULTS/report)")
    ap.add_argument("--stay-duration", type=float, default=3600.0,
                    help="simulated seconds of the sandbox's time-available analysis (Table 8.2)")
    ap.add_argument("--stay-step", type=float, default=1.0, help="its time step in seconds")
    ap.add_argument("--no-stays", action="store_true", help="leave the time-available analysis out")
    args = ap.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        print("mec_report: %s is not a folder" % results, file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else results / "report"
    records, skipped = load_records(results)
    page = render(records, skipped, out, stays=None if args.no_stays else (args.stay_duration, args.stay_step),
                  title_dir=str(results))
    write_atomic(out / "report.md", page)
    print("report: %s (%d records, %d skipped%s)" % (out / "report.md", len(records), len(skipped),
                                                     "".join("\n  skipped %s: %s" % s for s in skipped)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
