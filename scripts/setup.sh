#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh machine: system packages, a virtualenv, the package.
# Used by `make demo` and `make test`; safe to re-run (it only installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# postgresql: the Postgres tests start private clusters with initdb/pg_ctl (Debian keeps them in
# /usr/lib/postgresql/<version>/bin) when no server answers on 127.0.0.1:5432.
# chromium: the web console's browser test drives Debian's chromium headless (Playwright never
# downloads a browser of its own).
# certbot + pebble: the certificate-renewal fix is tested with the real certbot against Let's Encrypt's
# own test ACME server, run locally.
APT_PACKAGES=(redis-server prometheus prometheus-alertmanager python3-venv postgresql chromium certbot pebble)
need_apt=()
for bin in redis-server prometheus promtool prometheus-alertmanager amtool chromium certbot pebble; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=(yes)
done
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt=(yes)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing system packages: ${APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  # Debian's packages start services; the tests start their own servers on free ports.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter postgresql certbot.timer; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.aiops-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python dependencies (first run takes a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  # torch is pinned to the CPU build that this machine keeps as a local file; an unpinned torch would
  # pull a multi-GB CUDA build from PyPI.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[dev,baselines]"
  touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), $(.venv/bin/aiops --help >/dev/null && echo aiops ok))"
