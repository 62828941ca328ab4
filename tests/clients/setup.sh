#!/usr/bin/env bash
# Prepares the real clients for the HTTP end-to-end tests: a Python virtual environment under
# target/py-venv with the pinned packages of requirements.txt (cached: redone only when the
# requirements change), and rclone from Debian when it is missing. Called by .ci/run and by the
# Rust tests themselves when the venv is missing, so `cargo test` alone works too.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${SHOAL_PY_VENV:-$root/target/py-venv}"
req="$root/tests/clients/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "creating the client venv in $venv"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi

if ! command -v rclone >/dev/null 2>&1; then
  echo "installing rclone (Debian)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq rclone >/dev/null
fi
