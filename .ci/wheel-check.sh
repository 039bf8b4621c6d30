#!/usr/bin/env bash
# The package as an operator gets it: build the wheel from a clean copy of the checkout, install
# it into a fresh venv (no extras), and from a folder that is not the checkout run the sample
# incident, check the bundle is sealed, and prove the runtime imports no moto, jupyterlab or
# pytest and that commands needing an extra say which one.
#   bash .ci/wheel-check.sh            (PYTHON=python3.12 to pick the interpreter)
# The Dockerfile installs the wheel with the same line; tests/test_packaging.py checks they match.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
log() { printf '[wheel-check %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
started=$SECONDS

# A copy of what git would commit: setuptools reuses an in-tree build/ folder, where a file
# deleted from notebooks/ would survive and ship.
log "copying the checkout"
mkdir "$TMP/src"
git ls-files -z --cached --others --exclude-standard \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$TMP/src"

log "creating a fresh venv with $("$PY" --version)"
"$PY" -m venv "$TMP/venv"
export PATH="$TMP/venv/bin:$PATH"
export VIRTUAL_ENV="$TMP/venv"
unset PYTHONPATH

log "building the wheel"
python -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$TMP/dist" "$TMP/src"
WHEEL=$(ls "$TMP"/dist/tenancy_diag-*.whl)

log "installing $(basename "$WHEEL") (no extras)"
# This pip's local find-links locations, if any, are noise here; pip's exit status is kept.
python -m pip install --no-input --disable-pip-version-check --quiet "$WHEEL" \
  2> >(grep -v '^WARNING: Location' >&2)

mkdir "$TMP/elsewhere"
cd "$TMP/elsewhere"

log "importing the runtime"
python - <<'EOF'
import sys

import tenancy_diag.cli
import tenancy_diag.notebook
import tenancy_diag.service.app
from tenancy_diag import resources

assert "site-packages" in tenancy_diag.cli.__file__, tenancy_diag.cli.__file__
unwanted = sorted({m.split(".")[0] for m in sys.modules} & {"moto", "jupyterlab", "pytest"})
assert not unwanted, f"the runtime imports {unwanted}"
for folder in resources.FOLDERS:
    shipped = folder.path()
    assert "_shipped" in shipped.parts, shipped
EOF

log "run all --sample from $PWD"
tenancy-diag run all --sample --incident s --out OUT
python - <<'EOF'
from pathlib import Path

from tenancy_diag.running import verify_bundle

[bundle] = Path("OUT/s").iterdir()
problems = verify_bundle(bundle)
assert not problems, problems
assert len(list((bundle / "findings").glob("*.json"))) == 5, "expected five findings"
print(f"sealed: {bundle}")
EOF

log "serve --executor pool answers an incident from its warm kernels"
python - <<'EOF'
import json, os, signal, socket, subprocess, time, urllib.request
from pathlib import Path

from tenancy_diag.running import verify_bundle

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
Path("token").write_text("wheel-check-token")
serve = subprocess.Popen(
    ["tenancy-diag", "serve", f"--listen=127.0.0.1:{port}", "--state=STATE", "--out=SERVED",
     "--executor=pool", "--runner-arg=--sample"],
    env={**os.environ, "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(Path("token").resolve())},
    stdout=open("serve.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
)
try:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    body = {"incident_id": "INC-wheel", "subsystem": "policy", "region": "us-east-1",
            "time": "2026-11-27T04:00:00Z"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/incidents", data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer wheel-check-token", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10)
    deadline = time.monotonic() + 120
    while not list(Path("SERVED/INC-wheel").glob("*/manifest.json")):
        assert time.monotonic() < deadline, Path("serve.log").read_text()[-3000:]
        time.sleep(0.1)
    [bundle] = Path("SERVED/INC-wheel").iterdir()
    assert verify_bundle(bundle) == [], verify_bundle(bundle)
    print(f"sealed by the pool: {bundle}")
finally:
    os.killpg(serve.pid, signal.SIGTERM)
    serve.wait(timeout=90)
EOF

log "missing extras are named"
expect_refusal() {
  local want=$1; shift
  local code=0 err
  err=$("$@" 2>&1 >/dev/null) || code=$?
  [ "$code" -eq 2 ] && [[ $err == *"$want"* ]] && [[ $err != *Traceback* ]] || {
    log "expected exit 2 and '$want' from: $*; got exit $code: $err"; exit 1; }
}
expect_refusal "pip install 'tenancy-diag[sandbox]'" tenancy-diag sandbox up --state-dir "$TMP/sb"
expect_refusal "pip install 'tenancy-diag[lab]'" tenancy-diag lab --no-sandbox

log "a replacement parameters folder is checked like the shipped one"
mkdir params && cp "$TMP/src/parameters/signals.yaml" params/
expect_refusal "has no runbook.yaml" \
  tenancy-diag run all --sample --incident s --out OUT --parameters params

log "ok in $((SECONDS - started)) s"
