#!/usr/bin/env bash
# Sequential vs original-activation calibration (compress --calibration), on the shipped models.
#
#   examples/compare-calibration.sh <data dir> [work dir]
#
# For each model and γ: compress with each mode (same dataset windows, default preset), then
# `rfid-moe eval --reference <original>` on 32 windows of 256 tokens of the WikiText-2 test set and
# of the held-out last 5% of Tiny Shakespeare (cut at a line start, as the model cards hold it out).
# Environment: RETAINS, MODELS, SAMPLES (128), SEQ_LEN (256), WINDOWS (32), SEED (0, of the calibration windows).
# Prints a Markdown table: KL(original ‖ compressed), top-1 agreement and perplexity per text.
# <data dir> holds wikitext-2-raw/ and tinyshakespeare/ (see the README's Examples section).
set -euo pipefail
DATA=${1:?usage: $0 <data dir> [work dir]}
WORK=${2:-$(mktemp -d)}
RETAINS=${RETAINS:-"0.6 0.4"}
MODELS=${MODELS:-"qwen3-moe-tiny-shakespeare mixtral-tiny-shakespeare"}
SAMPLES=${SAMPLES:-128}
SEQ_LEN=${SEQ_LEN:-256}
WINDOWS=${WINDOWS:-32}
SEED=${SEED:-0}
cd "$(dirname "$0")/.."
CLI=(node --import tsx src/cli/main.ts)
mkdir -p "$WORK"
HELD_OUT="$WORK/shakespeare-heldout.txt"
python3 - "$DATA/tinyshakespeare/input.txt" "$HELD_OUT" <<'EOF'
import sys
text = open(sys.argv[1], encoding='utf-8').read()
cut = text.index('\n', int(len(text) * 0.95)) + 1
open(sys.argv[2], 'w', encoding='utf-8').write(text[cut:])
EOF
declare -A TEXTS=([wikitext2]="$DATA/wikitext-2-raw/wiki.test.raw" [shakespeare]="$HELD_OUT")

echo "| model | γ | calibration | compress s | WikiText-2 KL | top-1 | PPL | Shakespeare KL | top-1 | PPL |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for model in $MODELS; do
  src="examples/models/$model"
  for retain in $RETAINS; do
    for mode in sequential original; do
      out="$WORK/$model-$retain-$mode"
      rm -rf "$out"
      start=$(date +%s.%N)
      "${CLI[@]}" compress "$src" --out "$out" --retain "$retain" --dataset "$DATA/tinyshakespeare/input.txt" \
        --samples "$SAMPLES" --seq-len "$SEQ_LEN" --seed "$SEED" --calibration "$mode" --no-eval --quiet --json >"$out.report.json"
      seconds=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" "$start" "$(date +%s.%N)")
      row="| $model | $retain | $mode | $seconds"
      for set in wikitext2 shakespeare; do
        "${CLI[@]}" eval "$out" --reference "$src" --dataset "${TEXTS[$set]}" --seq-len "$SEQ_LEN" --max-windows "$WINDOWS" --quiet --json >"$out.$set.json"
        read -r kl top1 ppl < <(jq -r '[.comparison.meanKl, .comparison.top1Agreement, .model.perplexity] | @tsv' "$out.$set.json")
        row+=$(LC_ALL=C printf ' | %.3e | %.2f%% | %.2f' "$kl" "$(echo "$top1 * 100" | bc -l)" "$ppl")
      done
      echo "$row |"
    done
  done
done
