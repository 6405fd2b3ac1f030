"""The seed's experiment (chapter 8): the UE-side downtime probe and the matrix runner.

Run on the controller (which sits on the lab network), beside ``playbooks/migrate.yml``:
``playbooks/experiment.yml`` calls ``python -m mec_experiment run-one`` once per run.
"""
