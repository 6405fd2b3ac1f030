"""The drive experiment of "follow the vehicle" (issue #11): a car UE drives its Monaco path at 20 m/s while A2
follows it across the zones lab's hosts under the rulebook extensions/eda/rulebooks/follow_ue.yml. See docs/drive.md.

    PYTHONPATH=apps .venv/bin/python -m mec_drive --minutes 10 --mode both --strategy m2
"""
