#!/usr/bin/env bash
# Set-up shared by the README's commands; safe to run again.
# Installs the system packages the controller needs, a virtual environment .venv with
# requirements.txt, and links the repository as the collection mec.migration.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo > /dev/null || { echo "bootstrap: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

need_pkgs=()
command -v debootstrap > /dev/null || need_pkgs+=(debootstrap)
command -v ssh > /dev/null || need_pkgs+=(openssh-client)
command -v rsync > /dev/null || need_pkgs+=(rsync)
command -v git > /dev/null || need_pkgs+=(git)
python3 -c 'import ensurepip, venv' 2> /dev/null || need_pkgs+=(python3-venv)
# ansible-rulebook (requirements.txt) runs its rules engine on a Java 17 runtime
command -v java > /dev/null || need_pkgs+=(openjdk-17-jre-headless)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    command -v apt-get > /dev/null || { echo "bootstrap: install ${need_pkgs[*]} (no apt-get here)" >&2; exit 1; }
    echo "bootstrap: installing the system packages ${need_pkgs[*]} with apt-get (update, then install)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" > /dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: making .venv"
    python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2> /dev/null)" != "$want" ]; then
    echo "bootstrap: installing requirements.txt into .venv (Ansible, Molecule, the Docker SDK, the linters;" \
        "a minute or two the first time, a few seconds when only requirements.txt changed)"
    .venv/bin/pip install -q --upgrade pip > /dev/null
    .venv/bin/pip install -q -r requirements.txt
    echo "$want" > "$stamp"
fi

mkdir -p .build/collections/ansible_collections/mec
ln -sfn "$ROOT" .build/collections/ansible_collections/mec/migration
echo "bootstrap: ready (.venv with requirements.txt; the collection mec.migration linked into .build/collections)"
