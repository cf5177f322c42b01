#!/usr/bin/env bash
# Install the device kit on a GPU machine that reaches no package registry (made by `make device-kit`).
#
#   bash .device-kit/install.sh [VENV]      (default /tmp/hubpub-kit-venv)
#
# The venv sees the machine's own packages (--system-site-packages), so its CUDA build of torch is the one
# hubpub uses; --no-index --no-deps means pip installs the kit's wheels and nothing else, never a torch.
# Ends non-zero unless llmcompressor, lm_eval and hubpub import and torch is still the machine's CUDA build.
set -euo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
venv=${1:-/tmp/hubpub-kit-venv}
python=${PYTHON:-python3}

"$python" -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --no-index --no-deps --no-cache-dir --find-links "$kit" "$kit"/*.whl
"$venv/bin/python" - <<'EOF'
import sys
import sysconfig

import torch

venv_site = sysconfig.get_paths()["purelib"]
problems = []
if torch.__file__.startswith(venv_site):
    problems.append(f"torch comes from the venv ({torch.__file__}), not the machine")
if not torch.version.cuda:
    problems.append(f"torch {torch.__version__} is not a CUDA build")
import hubpub
import llmcompressor
import lm_eval

print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) from {torch.__file__}")
print(f"hubpub from {hubpub.__file__}, llmcompressor from {llmcompressor.__file__}, lm_eval from {lm_eval.__file__}")
for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
# pip's view of what the kit and the machine leave unmet; reported, not fatal (the smoke records what works).
"$venv/bin/python" -m pip check || true
