#!/usr/bin/env bash
# Install the exact tested environment from requirements.lock (hashes checked), then the harness itself.
# Re-running is cheap: it does nothing while .install-stamp matches the lock and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
stamp=.install-stamp
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)-$("$PYTHON" -c 'import sys; print(sys.executable)')
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PYTHON" -c "import harness, torch" 2>/dev/null; then
  exit 0
fi
# torch first, pinned: a plain `torch` requirement pulls several GB of CUDA wheels on a CPU machine.
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if ! "$PYTHON" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  "$PYTHON" -m pip install -q "torch==$TORCH_VERSION"
fi
# Every other package exactly as locked, hashes verified, nothing resolved anew.
"$PYTHON" -m pip install -q --no-deps --require-hashes -r requirements.lock
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
echo "$want" >"$stamp"
