#!/usr/bin/env bash
# Set up driftboard in ./.venv. Usage: scripts/setup.sh [--dev]
#
# torch is installed first and only when the venv has none: on a machine
# without an NVIDIA GPU the CPU build (2.13.0) so pip does not pull a
# several-GB CUDA build. DRIFTBOARD_TORCH overrides the requirement and
# DRIFTBOARD_TORCH_INDEX adds an index (e.g. https://download.pytorch.org/whl/cpu).
# A torch already present is never replaced: it is what capture fingerprints.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    spec=${DRIFTBOARD_TORCH:-torch}
  else
    spec=${DRIFTBOARD_TORCH:-torch==2.13.0}
  fi
  echo "setup: installing $spec" >&2
  if [ -n "${DRIFTBOARD_TORCH_INDEX:-}" ]; then
    "${pip[@]}" install "$spec" --index-url "$DRIFTBOARD_TORCH_INDEX"
  else
    "${pip[@]}" install "$spec"
  fi
fi
echo "setup: installing driftboard$extras" >&2
"${pip[@]}" install -e ".$extras"
