#!/usr/bin/env bash
# Set up everything tenancy-diag needs on a fresh Debian machine (as root), then run a job:
#   bash .ci/bootstrap.sh demo   the main job on the built-in default data
#   bash .ci/bootstrap.sh test   lint, types, layering and the whole test suite
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${TENANCY_DIAG_VENV:-$ROOT/.venv}
job=${1:-test}
shift || true

log() { printf '[bootstrap %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
# kubectl (with its kustomize) renders deploy/ in the tests.
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
# A real browser for tests/integration/test_browser.py: Debian's, never one selenium downloads.
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Python >= 3.11: prefer the newest interpreter on PATH.
PY=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=$cand; break
  fi
done
[ -n "$PY" ] || { log "Python >= 3.11 is required"; exit 2; }

stamp="$VENV/.tenancy-diag-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python packages (pip install -e .[dev])"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -m pip install -q -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c 'import tenancy_diag, papermill, moto, kubernetes, prometheus_api_client'
  echo "$want" > "$stamp"
fi
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
export PATH="$VENV/bin:$PATH"

case "$job" in
  test)
    log "ruff"; ruff check tenancy_diag tests bench deploy
    log "mypy"; mypy tenancy_diag
    log "import-linter"; lint-imports
    log "pytest"; pytest -n 2 "$@"
    log "wheel check"; PYTHON=$PY exec bash .ci/wheel-check.sh
    ;;
  demo)
    exec tenancy-diag run all --sample --incident sample --out outputs "$@"
    ;;
  *)
    exec "$job" "$@"
    ;;
esac
