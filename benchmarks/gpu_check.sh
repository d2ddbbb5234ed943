#!/usr/bin/env bash
# The whole command for a lent GPU machine (no network): install the wheels that `make gpu-wheels` put in .whl/
# (carried with the call) into a temporary folder, put it first on PYTHONPATH, check that every package imports
# (math-verify's LaTeX parser and a reasoning-gym task included), then run benchmarks/gpu_check.py within a time
# budget, its JSON written into OUT_DIR. docs/many-gpus.md gives the call.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [BUDGET_S [gpu_check.py options ...]]
#
# BUDGET_S (default 300) bounds gpu_check.py (--budget-s: fewer timed rounds, the oracle stopped in time); a hard
# `timeout` of BUDGET_S + 90 s stops it in any case. PYTHON (default python3) and GPU_CHECK_WHEELS (default .whl/
# beside benchmarks/) can be set; the test (tests/test_gpu_wheels.py) runs this script with both, at --shape tiny.
set -euo pipefail

out=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR [BUDGET_S [gpu_check.py options ...]]}
budget=${2:-300}
shift $(($# < 2 ? $# : 2))
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wheels=${GPU_CHECK_WHEELS:-$root/.whl}
py=${PYTHON:-python3}
case $budget in '' | *[!0-9]*) echo "BUDGET_S must be a whole number of seconds, got '$budget'" >&2; exit 2 ;; esac
shopt -s nullglob
whl=("$wheels"/*.whl)
if ((${#whl[@]} == 0)); then
  echo "no wheels in $wheels: run 'make gpu-wheels' on a machine with network and carry .whl with the call" >&2
  exit 2
fi

mkdir -p "$out"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
t0=$SECONDS
"$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
  --target "$site" "${whl[@]}"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
echo "installed ${#whl[@]} wheels in $((SECONDS - t0)) s"
if command -v nvidia-smi >/dev/null; then nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true; fi

"$py" - <<'EOF'
import arca_rl, datasets, peft, trl  # noqa: F401  the trainer's stack
import reasoning_gym
from math_verify import parse, verify

assert verify(parse("$\\frac{1}{2}$"), parse("0.5")), "math-verify's LaTeX parser (antlr4) does not work"
assert len(reasoning_gym.create_dataset("basic_arithmetic", size=2, seed=1)) == 2
print("imports: ok (arca_rl, trl, peft, datasets, math_verify with its LaTeX parser, reasoning_gym)")
EOF

cd "$root"
timeout -k 15 $((budget + 90)) "$py" benchmarks/gpu_check.py --budget-s "$budget" --out "$out/gpu_check.json" "$@"
echo "gpu_check.sh: done in $((SECONDS - t0)) s; JSON in $out/gpu_check.json"
