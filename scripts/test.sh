#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what it needs (scripts/bootstrap.sh),
# brings up the local lab and its services, then runs
#   1. pytest: unit tests, engine tests, the lab's integration tests (tests/),
#   2. the Molecule scenarios of the roles (roles/*/molecule/default).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not lab" -x
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

# Real servers that the apps' process tests run on loopback (installing them starts no service).
missing=()
command -v memcached > /dev/null || missing+=(memcached)
command -v apache2 > /dev/null || [ -x /usr/sbin/apache2 ] || missing+=(apache2)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "local lab: hosts provisioned by the collection's roles"
ansible-playbook playbooks/lab.yml
step "services of the lab: MEC sandbox, gateways, apps"
ansible-playbook -i inventories/local/hosts.yml playbooks/apps.yml

step "pytest"
mkdir -p results
set +e
python -m pytest "$@" 2>&1 | tee results/pytest.log
rc=${PIPESTATUS[0]}
set -e
# pytest's exit 5 means that it collected no test, a failure here too.
[ "$rc" -eq 0 ] || { echo "pytest failed (rc=$rc)"; exit "$rc"; }
# In CI a skipped test is a failed one (tests/conftest.py turns skips into failures; this is the safety net).
if [ "${CI:-}" = "true" ] && tail -n 1 results/pytest.log | grep -q "skipped"; then
    echo "pytest skipped tests in CI (CI=true): a missing lab, engine, CRIU or tool is a failure"; exit 1
fi

if [ $# -eq 0 ]; then
    for scenario in roles/*/molecule/default/molecule.yml; do
        role_dir=$(dirname "$(dirname "$(dirname "$scenario")")")
        step "molecule test: $(basename "$role_dir")"
        (cd "$role_dir" && molecule test)
    done
fi
step "all tests passed"
