#!/usr/bin/env bash
# Fused against plain per generated token, this build against another, in one run: `exprans
# generate` (the user's command) on SmolLM2-135M-Instruct with one chat prompt and 6 new tokens,
# weights plain and fused (each build on a file it compressed with --rows-per-block 16), taking
# turns twice. Prints decode and prefill tokens/s, GPU weight bytes and the tokens (identical in
# every run).
#
#   bash benches/fused_ab.sh OLD_BIN OLD_FUSED_DIR NEW_BIN NEW_FUSED_DIR [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 old_dir=$2 new=$3 new_dir=$4 model=${5:-target/models/SmolLM2-135M-Instruct}
export XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
for round in 1 2; do
  for run in "new-plain $new $model plain" "new-fused $new $new_dir fused" \
             "old-fused $old $old_dir fused" "old-plain $old $model plain"; do
    set -- $run
    "$2" generate "$3" --chat "What is the capital of France?" --max-new-tokens 6 --json \
      --weights "$4" 2>/dev/null | python3 -c "
import json, sys
v = json.load(sys.stdin); t = v['timings']
print('$1', 'decode %.4f tokens/s' % t['decode_tokens_per_s'], 'prefill %.3f tokens/s' % t['prefill_tokens_per_s'],
      'weights', t['weight_bytes'], 'bytes, tokens', v['generated_ids'])"
  done
done
