#!/usr/bin/env bash
# The main job on the local lab, from a fresh machine: installs what it needs, brings up the lab
# (two MEC hosts provisioned by the collection's roles), the local MEC sandbox, the API gateways and
# the seed's apps, then migrates app a2 (the zone counter) from source to target and prints the
# results record. Safe to run again (a migrated app is moved back first).
#   STRATEGY=m1|m2|m3 (default m2)   APP=a1|a2|a3 (default a2)   TRANSFER=stream|ssh (default stream)
set -euo pipefail
cd "$(dirname "$0")/.."
STRATEGY=${STRATEGY:-m2}
APP=${APP:-a2}
TRANSFER=${TRANSFER:-stream}
# Progress lines between the long steps: what runs now, the time and the seconds since the start.
step() { printf '\n=== demo %s (%s, %ds since the start)\n' "$1" "$(date -u +%H:%M:%S)" "$SECONDS"; }

step "1/4: set-up of this machine (system packages, the Python environment .venv; a first run takes a minute or two)"
./scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

step "2/4: the local lab, two MEC hosts in containers (a first run builds Debian 12 with debootstrap, then installs \
Docker and CRIU in each host: several minutes; later runs only check them)"
ansible-playbook playbooks/lab.yml
step "3/4: the services: the MEC sandbox, an API gateway on each host, apps A1-A3 on the source (a first run \
builds their images; a migrated app is moved back first)"
ansible-playbook -i inventories/local/hosts.yml playbooks/apps.yml -e apps_reset=true
step "4/4: migration of $APP from source to target with strategy $STRATEGY (the record goes to results/)"
extra=()
if [ "$APP" = a2 ]; then
    # A2 is migration-aware (the seed's phase endpoint) and answers its state on port 3000.
    extra=(-e "app_phase_url=http://127.0.0.1:3000/changePhase?inMigration=1"
           -e "state_check_url=http://127.0.0.1:3000/state")
fi
ansible-playbook -i inventories/local/hosts.yml playbooks/migrate.yml \
    -e "app=$APP" -e "strategy=$STRATEGY" -e "transfer=$TRANSFER" -e network_label=lab "${extra[@]}"

record=$(ls -t results/*.json | head -n 1)
step "done"
echo "Results record: $record"
python - "$record" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r.get("downtime", {})
print("strategy %s, app %s: status %s; downtime %.3f s wall (%.3f s of operations); state check: %s"
      % (r.get("strategy"), r.get("app"), r.get("status"), d.get("wall") or 0, d.get("operations_sum") or 0,
         (r.get("state_check") or {}).get("passed")))
PY
