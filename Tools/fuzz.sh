#!/usr/bin/env bash
# make fuzz: builds xai-fuzz with libFuzzer and AddressSanitizer (in .build-fuzz, apart from the
# normal build) and fuzzes each target for FUZZ_SECONDS (default 120) seconds, seeded with the
# committed regression corpus (Fuzz/Corpus/<target>/) and the test fixtures. New interesting
# inputs collect in .build-fuzz/corpus/<target>/; a crash, leak or timeout is written to
# Fuzz/Crashes/<target>/. Fix the bug, then copy the input into Fuzz/Corpus/<target>/ so that
# `make test` replays it on every run.
#
#   make fuzz                                   # every target, 120 s each
#   FUZZ_SECONDS=600 FUZZ_TARGETS="onnx npy" make fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-120}
TARGETS=${FUZZ_TARGETS:-"onnx npy image config"}
FLAGS=(-c release --product xai-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
       -Xswiftc -DFUZZING -Xlinker --allow-multiple-definition)
swift build "${FLAGS[@]}"
BIN="$(swift build "${FLAGS[@]}" --show-bin-path)/xai-fuzz"

# Seeds from the fixtures, by kind (small files only: libFuzzer's input size follows its seeds).
seeds() {
  case "$1" in
    onnx) find Tests/Fixtures -name '*.onnx' -size -100k ;;
    npy) find Tests/Fixtures -name '*.npy' -size -64k ;;
    image) find Tests/Fixtures Demo/samples -name '*.png' -size -64k -o -name '*.jpg' -size -64k ;;
    config) ;;
  esac
}

for t in $TARGETS; do
  work=".build-fuzz/corpus/$t" seedDir=".build-fuzz/seeds/$t"
  mkdir -p "$work" "$seedDir" "Fuzz/Corpus/$t" "Fuzz/Crashes/$t"
  seeds "$t" | while read -r f; do cp "$f" "$seedDir/$(echo "$f" | tr '/' '_')"; done
  echo "== $t: $SECONDS_PER_TARGET s"
  XAI_FUZZ_TARGET=$t "$BIN" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
      -artifact_prefix="Fuzz/Crashes/$t/" "$work" "Fuzz/Corpus/$t" "$seedDir" > ".build-fuzz/$t.log" 2>&1 || true
  grep -E "^Done|stat::number_of_executed_units|ERROR|SUMMARY" ".build-fuzz/$t.log" | head -5
  echo "   corpus: $(ls "$work" | wc -l) inputs; crashes: $(ls "Fuzz/Crashes/$t" | wc -l) (log .build-fuzz/$t.log)"
done
