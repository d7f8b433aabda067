#!/usr/bin/env bash
# Runs every candidate on one data set, one process each, and writes one
# JSON file per run into OUT: run-all.sh RECORDS PROOF OUT [DIR]
set -euo pipefail
records=${1:?records}
proof=${2:?single or bundle}
out=${3:?output directory}
dir=${4:-${TMPDIR:-/tmp}}
mkdir -p "$out"
cargo build --release -p caravan-store-candidates
bin="${CARGO_TARGET_DIR:-target}/release/caravan-store-candidates"
for engine in sqlite lmdb fjall redb; do
  echo "== $engine $records $proof"
  "$bin" --engine "$engine" --records "$records" --proof "$proof" --batch 4096 \
    --dir "$dir" --json "$out/$engine-$proof-$records.json"
done
