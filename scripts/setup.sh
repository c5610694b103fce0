#!/usr/bin/env bash
# Creates the virtual environment and installs cocattn with everything its tests need.
# On a machine without an NVIDIA GPU it installs PyTorch's CPU wheel first, so pip never pulls
# the multi-GB CUDA build.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') already installed"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found: installing torch==$TORCH_VERSION (CUDA build)"
  "${PIP[@]}" "torch==$TORCH_VERSION"
else
  echo "setup: no GPU: installing the CPU build of torch==$TORCH_VERSION"
  # A CPU wheel that pip can already see (a local wheel directory or mirror) first; otherwise
  # PyTorch's own CPU index. Either way never the CUDA build from PyPI.
  "${PIP[@]}" "torch==$TORCH_VERSION+cpu" 2>/dev/null \
    || "${PIP[@]}" "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
fi

echo "setup: installing cocattn (editable) with the hf and dev extras"
"${PIP[@]}" -e ".[hf,dev]"
"$VENV/bin/python" -c "import torch, cocattn; print(f'setup: ok: cocattn {cocattn.__version__}, torch {torch.__version__}')"
