#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what it needs (scripts/bootstrap.sh),
# runs the Python lint (ruff, ruff.toml) and ansible-test sanity, brings up the labs and their services, then runs
# pytest (unit tests, engine tests, the labs' integration tests, tests/) and the Molecule scenarios of the roles
# (roles/*/molecule/default).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not lab" -x. With arguments, only what the selected tests
# need is brought up (pytest collects them first, nothing runs: scripts/pytest_selection.py): the local lab and its
# services for tests marked lab, the zones lab for zones_lab (which counts as lab too), the Podman lab for podman_lab,
# this machine's Docker engine for docker; one pytest runs, and the Molecule scenarios do not. Without arguments
# everything runs (.ci/run), in streams that share no host (docs/overhead.md, "Test suite time"):
#   1. beside the bring-up: ruff, sanity and the tests that need no lab and no engine (results/lint-unit.log);
#   2. alone: the zones lab's drive (marker real_time: its margins are wall-clock seconds; results/pytest-drive.log);
#   3. the local lab's tests (results/pytest.log); beside them, in turn: the Podman lab's tests
#      (results/pytest-podman.log), the zones lab's others (results/pytest-zones.log), this machine's engine's
#      (results/pytest-engine.log) and the Molecule scenarios that make hosts of their own (results/molecule.log);
#   4. the Molecule scenarios that run on the local lab (mec_gateway's).
# Every part must pass; under CI=true a skip fails too.
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

sanity_root=""
cleanup() {  # the sanity copy, and any stream still running in the background
    [ -z "$sanity_root" ] || rm -rf "$sanity_root"
    jobs -p | xargs -r kill 2> /dev/null || true
}
trap cleanup EXIT

lint() {
step "Python lint: ruff check (ruff.toml)"
ruff check --output-format concise .

step "ansible-test sanity on a copy of the collection"
# ansible-test wants the collection under a real ansible_collections/<namespace>/<name> folder, outside this git
# checkout (inside it, git would hide the copy). Each check that has requirements runs in ansible-test's own virtual
# environment (~/.ansible/test/venv, its pinned pycodestyle, voluptuous, pylint, ...), installed from PyPI once; that
# install first needs pip's bootstrap script ~/.ansible/test/cache/get_pip_<version>.py, which ansible-test downloads
# from ci-files.testing.ansible.com (not reachable from the lab's machines). Where it is missing, a stand-in is put
# there: it installs that pip version from PyPI, over the pip that Python's ensurepip puts into the new environment.
# Not run: pylint (165 findings: mostly the name "_" and subprocess.run without check=, in apps/ and tests/),
# shebang (the apps' and benchmarks' "#!/usr/bin/env python3"), pslint and shellcheck (nothing they apply to).
# The modules' missing GPLv3 header is ignored (the collection is Apache-2.0) in tests/sanity/ignore-2.19.txt, the file
# of the ansible-core that bootstrap.sh installs; another ansible-core version needs its own ignore-<version>.txt.
pip_version=$(python -c 'import inspect, re, ansible_test._internal.python_requirements as r
print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r)).group(1))')
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -f "$get_pip" ]; then
    mkdir -p "$(dirname "$get_pip")"
    cat > "$get_pip" << 'EOF'
# Offline stand-in for ansible-test's get-pip script, written by mec.migration's scripts/test.sh.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)
if "--no-setuptools" in sys.argv:  # ensurepip brings setuptools; get-pip would not have
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "setuptools"])
EOF
fi
sanity_root=$(mktemp -d)
trap cleanup EXIT  # (in the background stream's subshell too, where the traps start empty)
sanity_dir=$sanity_root/ansible_collections/mec/migration
mkdir -p "$sanity_dir"
git ls-files --cached --others --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$sanity_dir/"
(cd "$sanity_dir" && ansible-test sanity --local --python 3.11 \
    --test action-plugin-docs --test ansible-doc --test changelog --test compile --test empty-init --test ignores \
    --test import --test line-endings --test no-assert --test no-get-exception --test no-illegal-filenames \
    --test no-smart-quotes --test pep8 --test replace-urlopen --test runtime-metadata --test symlinks \
    --test use-argspec-type-path --test use-compat-six --test validate-modules --test yamllint)
}

export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p results
rm -f results/*.rc
pytest_ok() {  # pytest_ok LOG RC: exit 5 (nothing collected) is a failure too; in CI a skipped test is one as well
    [ "$2" -eq 0 ] || { echo "failed (rc=$2, $1)"; exit "$2"; }
    # (tests/conftest.py turns skips into failures in CI; this is the safety net)
    if [ "${CI:-}" = "true" ] && tail -n 1 "$1" | grep -q "skipped"; then
        echo "pytest skipped tests in CI (CI=true, $1): a missing lab, engine, CRIU or tool is a failure"; exit 1
    fi
}
# pytest_log NAME ARGS...: one pytest run, its output in results/NAME.log and its exit code in results/NAME.rc
pytest_log() {
    local name=$1; shift
    set +e
    python -m pytest -p pytest_selection "$@" > "results/$name.log" 2>&1
    echo $? > "results/$name.rc"
    set -e
}
# pytest_tee NAME ARGS...: the same, its output also printed as it comes
pytest_tee() {
    local name=$1; shift
    set +e
    python -m pytest -p pytest_selection "$@" 2>&1 | tee "results/$name.log"
    echo "${PIPESTATUS[0]}" > "results/$name.rc"
    set -e
}
rc_of() { cat "results/$1.rc" 2> /dev/null || echo 1; }

if [ $# -eq 0 ]; then
    step "in the background, beside the bring-up: ruff, ansible-test sanity, then the tests that need no lab and no engine (results/lint-unit.log)"
    ( set -e; lint; python -m pytest -p pytest_selection --durations=10 -m "not lab and not docker" ) \
        > results/lint-unit.log 2>&1 &
    unit_pid=$!
else
    lint
fi

# What the selection needs (all of it without arguments).
needs=results/pytest-needs.txt
if [ $# -eq 0 ]; then
    printf '%s\n' docker local_lab zones_lab podman_lab > "$needs"
else
    step "pytest --collect-only: what the selected tests need"
    rm -f "$needs"
    set +e
    MEC_ZONES_LAB=1 MEC_SELECTION_OUT="$needs" python -m pytest --collect-only -q -p pytest_selection "$@" \
        > results/pytest-collect.log 2>&1
    rc=$?
    set -e
    # exit 5: nothing collected (the run below fails on it the same way)
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
        tail -n 30 results/pytest-collect.log; echo "pytest could not collect the selection (rc=$rc)"; exit "$rc"
    fi
    [ -f "$needs" ] || : > "$needs"
    echo "needed: $(tr '\n' ' ' < "$needs")"
fi
need() { grep -qx "$1" "$needs"; }

if need local_lab; then
    step "local lab: hosts provisioned by the collection's roles"
    ansible-playbook playbooks/lab.yml
    step "services of the lab: MEC sandbox, gateways, apps"
    ansible-playbook -i inventories/local/hosts.yml playbooks/apps.yml
elif need docker || need zones_lab; then
    step "this machine's Docker engine (the docker_engine role; no lab)"
    engine_play=$(mktemp --suffix=.yml)
    cat > "$engine_play" << 'EOF'
- name: Run this machine's Docker engine (experimental on)
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - mec.migration.docker_engine
EOF
    ansible-playbook "$engine_play"
    rm -f "$engine_play"
fi
if need zones_lab; then
    step "zones lab: four MEC hosts, one per zone of the Monaco scenario (follow the vehicle: tests/eda, marker zones_lab)"
    ansible-playbook playbooks/lab.yml -e @playbooks/vars/lab_zones.yml
    export MEC_ZONES_LAB=1
fi
# ---- Podman lab (issue 20): two Podman hosts and a Docker one, for the tests marked podman_lab --------------------
# tests/integration/test_podman_lab.py and the Podman migrations; docs/podman.md. ~2.5-3 min: 2m31s from nothing
# (images and the CRIU build cached on this machine), 2m40s for a re-run that changed nothing (load 5-7).
# The role's Molecule scenario (roles/podman_engine/molecule/default) runs with the others below: ~4 min.
# Then its services, as on the shared lab (~70 s from nothing: its own MEC sandbox on mec-pod from the shared lab's
# image cache, the gateway's image built on each host, the apps' images built by Podman on mec-pod-source; ~35 s when
# nothing changed): the apps A1-A3 run on mec-pod-source under Podman for the tests that migrate them.
if need podman_lab; then
    step "Podman lab: mec-pod-source and mec-pod-target (Podman), mec-pod-docker (Docker) (marker podman_lab)"
    ansible-playbook playbooks/lab.yml -e @playbooks/vars/lab_podman.yml
    step "services of the Podman lab: its MEC sandbox, gateways, apps A1-A3 on mec-pod-source (Podman)"
    ansible-playbook -i inventories/podman/hosts.yml playbooks/apps.yml -e apps_reset=true
fi
# ---- end of the Podman lab ------------------------------------------------------------------------------------------

if [ $# -gt 0 ]; then
    step "pytest"
    pytest_tee pytest --durations=25 "$@"
    pytest_ok results/pytest.log "$(rc_of pytest)"
    step "all tests passed"
    exit 0
fi

set +e
wait "$unit_pid"
unit_rc=$?
set -e
step "ruff, ansible-test sanity and the tests that need no lab and no engine (results/lint-unit.log)"
cat results/lint-unit.log
pytest_ok results/lint-unit.log "$unit_rc"

step "pytest: the zones lab's drive, alone (marker real_time; results/pytest-drive.log)"
pytest_tee pytest-drive --durations=5 -m real_time
pytest_ok results/pytest-drive.log "$(rc_of pytest-drive)"

# The Molecule scenarios: those whose inventory is the local lab's (mec_gateway's) run after the local lab's tests;
# the others make hosts of their own (172.30.78.0/24) and run in the stream beside them.
on_local_lab=() own_hosts=()
for scenario in roles/*/molecule/default/molecule.yml; do
    role_dir=$(dirname "$(dirname "$(dirname "$scenario")")")
    if grep -q "inventories/local/" "$scenario"; then on_local_lab+=("$role_dir"); else own_hosts+=("$role_dir"); fi
done
molecule_all() {  # molecule_all ROLE_DIR...: molecule test in each, in turn; stops at the first failure
    local role_dir
    for role_dir in "$@"; do
        step "molecule test: $(basename "$role_dir")"
        (cd "$role_dir" && molecule test) || return $?
    done
}

# The machine's CPU is what limits the suite (docs/overhead.md): the stream beside the local lab's tests holds the
# rest of the work, so that neither waits idle for the other.
step "in the background: the Podman lab's tests, the zones lab's others, this machine's engine's tests, then the Molecule scenarios with hosts of their own (results/pytest-podman.log, pytest-zones.log, pytest-engine.log, molecule.log)"
(
    MEC_FAULT_CAMPAIGN=results/fault_campaign-podman.json pytest_log pytest-podman --durations=15 -m podman_lab
    pytest_log pytest-zones --durations=10 -m "zones_lab and not real_time"
    pytest_log pytest-engine --durations=10 -m "docker and not lab"
    set +e
    molecule_all "${own_hosts[@]}" > results/molecule.log 2>&1
    echo $? > results/molecule.rc
) &
side_pid=$!

step "pytest: the local lab's tests (results/pytest.log)"
pytest_tee pytest --durations=25 -m "lab and not podman_lab and not zones_lab"
main_rc=$(rc_of pytest)
set +e
wait "$side_pid"
molecule_rc=$(rc_of molecule)
if [ "$main_rc" -eq 0 ] && [ "$molecule_rc" -eq 0 ]; then
    molecule_all "${on_local_lab[@]}"
    molecule_rc=$?
fi
set -e
for name in pytest-podman pytest-zones pytest-engine molecule; do
    step "the stream beside: results/$name.log"
    cat "results/$name.log" 2> /dev/null || echo "(not run)"
done
pytest_ok results/pytest.log "$main_rc"
pytest_ok results/pytest-podman.log "$(rc_of pytest-podman)"
pytest_ok results/pytest-zones.log "$(rc_of pytest-zones)"
pytest_ok results/pytest-engine.log "$(rc_of pytest-engine)"
[ "$molecule_rc" -eq 0 ] || { echo "molecule failed (rc=$molecule_rc)"; exit "$molecule_rc"; }
step "all tests passed"
