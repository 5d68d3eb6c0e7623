#!/usr/bin/env bash
# The device half of the GPU check (benchmarks/gpu/README.md). From the repository root, with
# build/gpu_pack carried (made by `python benchmarks/gpu/prepare.py`):
#     bash benchmarks/gpu/device.sh
# Installs nothing from a registry; stops itself after 8 minutes; results in $OUT/gpu.md.
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
if [ ! -f build/gpu_pack/index.json ]; then
    echo "error: build/gpu_pack is missing: run python benchmarks/gpu/prepare.py here and carry build/gpu_pack" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,compute_cap,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true
timeout 480 python3 benchmarks/gpu/run.py --pack build/gpu_pack --out "$OUT" --budget 400 2>&1 | tee "$OUT/run.log"
exit "${PIPESTATUS[0]}"
