#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: follow_hop
short_description: Decide and record one hop of follow.yml from a MEC event, without rendering the event
description:
  - The deciding and recording of C(playbooks/follow.yml) (follow the vehicle), on the controller, in Python. An
    action plugin (C(plugins/action/follow_hop.py)); this file only documents it.
  - The event that ansible-rulebook passes as the extra var C(ansible_eda) is read raw from the task's variables and
    never rendered as a template. Every field used (C(kind), C(ue), C(from_zone), C(to_zone), C(access_point),
    C(previous_access_point), C(seq), C(received_at), C(at_epoch), C(eta), C(timeout), C(confidence)) is checked
    first; zone, access point and UE ids must be identifiers (C([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})). An event with a
    field that fails is refused before anything is changed. Fields not used are not copied anywhere.
  - The same holds for the event sources' state files in O(state_dir) (read with O_NOFOLLOW, each value checked),
    for the migration's record and for the follow log. The result is made of fresh, untagged strings, so that
    later templates that use it (follow.yml passes the hop to migrate.yml) never render what came from outside.
  - O(step=event) checks the input, reads the UE's latest zone, the handled file and (ahead) the latest prediction,
    ends a coalesced or stale event (RV(coalesced)) and finds the host of the zone (its C(mec_zones) or
    C(mec_zone)). O(step=hop) takes where the app runs (the C(follow_app_info) registered by
    C(mec.migration.container_info) on every host of the group), the hop and its relocation gate. O(step=record)
    writes the handled file and appends one line to C(<results_dir>/<app>.jsonl).
version_added: 0.2.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Decides as usual; step=record writes neither the handled file nor the follow log.
  diff_mode:
    support: none
    description: No diff.
  idempotent:
    support: none
    description: step=record appends one line to the follow log per run.
options:
  step:
    description: Which part of follow.yml. V(hop) and V(record) read the result of V(event) from O(decision).
    type: str
    choices: [event, hop, record]
    default: event
  app:
    description: The app's container name (follow_app); step=event only.
    type: str
  zone:
    description: The zone to follow when run by hand (follow_zone); with a rulebook event, the event's zone.
    type: str
  ue:
    description: The UE, when run by hand (follow_ue); otherwise the event's C(ue).
    type: str
  strategy:
    description: The migration strategy.
    type: str
    choices: [m1, m2, m3]
    default: m2
  hosts_group:
    description: The inventory group of the MEC hosts.
    type: str
    default: mec_hosts
  state_dir:
    description:
      - The event sources' state folder (follow_state_dir) with C(<ue>.json), C(<ue>.approach.json),
        C(<ue>.<app>.handled.json). Checked on every use to be private (a real directory of the user running the
        play, no group/other bits, parents not someone else's); a folder that fails stops the run.
      - An empty string for none (no coalescing, no gate).
    type: str
    default: ""
  ahead:
    description: An approaching event of mec.migration.mec_approach (stage now, relocate at the handover).
    type: bool
    default: false
  confirm_zone:
    description: Reactive hops relocate only while the UE is still in the hop's zone (a relocation gate).
    type: bool
    default: false
  results_dir:
    description: Where step=record appends C(<app>.jsonl) (the follow log).
    type: path
  decision:
    description: The variable name under which the step=event (and step=hop) result is registered.
    type: str
    default: follow_decision
"""

EXAMPLES = r"""
- name: Decide the hop (the event, the state files, the zone's host)
  mec.migration.follow_hop:
    step: event
    app: a2
    strategy: m2
    state_dir: /run/mec-migration/follow
  register: follow_decision

- name: Decide source, target and gate (after container_info on every host)
  mec.migration.follow_hop:
    step: hop
  register: follow_decision

- name: Record the hop (the handled file and the follow log)
  mec.migration.follow_hop:
    step: record
    results_dir: results/follow
"""

RETURN = r"""
coalesced:
  description: The event was covered by an earlier hop, or replaced by a later prediction; nothing to do.
  returned: always
  type: bool
hop:
  description: The app moves (it runs on another host than the zone's).
  returned: always
  type: bool
source:
  description: The host the app runs on (step=hop on).
  returned: always
  type: str
target:
  description: The host of the zone.
  returned: always
  type: str
target_zone:
  description: The zone followed (ahead, the predicted zone; reactive, the UE's latest zone).
  returned: always
  type: str
gate:
  description: The relocation gate for migrate.yml's migration_relocation_gate ({} for none).
  returned: always
  type: dict
seq:
  description: The event's sequence number (-1 by hand).
  returned: always
  type: int
latest_seq:
  description: The latest zone change's sequence number in the state file.
  returned: always
  type: int
event:
  description: The checked fields of the event that follow.yml uses.
  returned: always
  type: dict
line:
  description: The follow log's line (step=record).
  returned: step=record
  type: dict
"""
