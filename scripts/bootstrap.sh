#!/usr/bin/env bash
# Builds .venv with the pinned, working dependency set (see requirements/ and README "Install").
# Idempotent: a finished venv is left alone. A torch already in the venv (e.g. a CUDA build) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.medlabel-installed
HASH=$(cat requirements/*.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  $PIP install "torch==${MEDLABEL_TORCH_VERSION:-2.13.0}"
fi
$PIP install -c requirements/constraints.txt -r requirements/base.txt -r requirements/test.txt
$PIP install --no-deps -r requirements/nodeps.txt
$PIP install --no-deps -e .
echo "$HASH" > "$STAMP"
