"""The experiment's report: ``python -m mec_report RESULTS_DIR`` -> RESULTS_DIR/report/report.md + PNGs."""
