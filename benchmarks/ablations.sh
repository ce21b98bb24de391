#!/usr/bin/env bash
# Image-model ablations (issue 3): the same short schedule for each variant, then one classifier_report run scoring
# them all beside MediaPipe on the same crops.
#
#   bash benchmarks/ablations.sh [EPOCHS] [OUT_DIR] [VARIANT...]   (defaults: 6 epochs, runs/ablations, all)
#
# Variants: the shipped recipe (configs/pct_lite.toml: YOLOX-Nano initialisation, soft assignment, auxiliary
# heatmap), then one change each: straight-through assignment, no auxiliary heatmap, no detector initialisation
# (CSPDarknet from scratch), MobileNetV2 x0.5 from scratch. Rerunning resumes unfinished runs (each run directory
# holds its last.pt).
set -euo pipefail
EPOCHS=${1:-6}
OUT=${2:-runs/ablations}
shift $(( $# > 2 ? 2 : $# ))
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(shipped straight_through no_aux no_init mobilenetv2)
declare -A VARIANTS=(
  [shipped]="--variant pct-lite"
  [straight_through]="--variant pct-lite --set model.assignment=straight_through"
  [no_aux]="--variant pct-lite --set model.aux_heatmap=false"
  [no_init]="--variant pct-lite --set train.backbone_init=''"
  [mobilenetv2]="--variant pct-lite-mnv2 --set train.backbone_init=''"
)
models=()
for name in "${NAMES[@]}"; do
  # shellcheck disable=SC2086  # the variant's flags are meant to split
  edge-pct train --config configs/pct_lite.toml --out "$OUT/$name" --set train.epochs="$EPOCHS" ${VARIANTS[$name]} \
    --json "$OUT/$name.json"
  models+=("$OUT/$name/model.pt")
done
python -m benchmarks.classifier_report --model "${models[@]}" --no-flip --json "$OUT/report.json"
