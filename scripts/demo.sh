#!/usr/bin/env bash
# One command from a fresh clone: build .venv, build the demo studies from real packaged images, and
# serve apps/radiology on http://127.0.0.1:8000 (Slicer: that URL; OHIF: http://127.0.0.1:8000/ohif/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python -m medlabel.demo --out demo-data
export MONAI_LABEL_TRACKING_ENABLED=false
exec .venv/bin/python -m monailabel.main start_server --app apps/radiology --studies demo-data/studies/liver-ct \
  --host 127.0.0.1 --port "${PORT:-8000}" --conf models liver_ct "$@"
