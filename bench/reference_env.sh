#!/usr/bin/env bash
# Prepares an overlay in which MONAI Label's own `radiology` sample app can start beside our venv,
# for benchmarking only (see /work/shared/platform.md, section 6). Idempotent; touches nothing in .venv.
#
#   bench/reference_env.sh [OVERLAY_ROOT]     (default /tmp/medlabel-ref)
#
# Creates:
#   OVERLAY_ROOT/site/            torchvision 0.28.0, installed --no-deps (pure-Python parts only are used)
#   OVERLAY_ROOT/sitecustomize/   sitecustomize.py pre-registering empty torchvision._meta_registrations
#                                 and torchvision._autograd_registrations (their compiled ops cannot load
#                                 beside CPU torch)
#   OVERLAY_ROOT/apps/radiology/  the sample app, copied out of the monailabel wheel
# and prints the PYTHONPATH to run the reference server with.
set -euo pipefail

ROOT="${1:-/tmp/medlabel-ref}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$HERE/.venv/bin/python"
TV_VERSION=0.28.0

mkdir -p "$ROOT/site" "$ROOT/sitecustomize" "$ROOT/apps"

if ! PYTHONPATH="$ROOT/site" "$PY" -c "import importlib.metadata as m, sys; sys.exit(not m.version('torchvision').split('+')[0] == '$TV_VERSION')" 2>/dev/null; then
    "$PY" -m pip install --quiet --no-deps --target "$ROOT/site" "torchvision==$TV_VERSION"
fi

cat > "$ROOT/sitecustomize/sitecustomize.py" <<'EOF'
# Benchmark overlay only: lets torchvision's pure-Python modules import beside CPU torch by
# pre-registering the two modules whose compiled operator registrations fail to load.
import sys
import types

for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))
EOF

if [ ! -f "$ROOT/apps/radiology/main.py" ]; then
    "$PY" -m monailabel.main apps --download --name radiology --output "$ROOT/apps" >/dev/null
fi

PYTHONPATH="$ROOT/site:$ROOT/sitecustomize" "$PY" -c "
import torchvision, monailabel.tasks.infer.bundle
print('torchvision', torchvision.__version__, 'imports with the overlay')" >&2

echo "$ROOT/site:$ROOT/sitecustomize"
