#!/bin/bash
# Interleaved before (9d64323 + counters) / after (d8b3c9c) runs on one machine.
set -x
A=/tmp/before/.build/release/xai-bench
B=/work/main/.build/release/xai-bench
O=/tmp/bench
for round in 1 2; do
  $A methods --device cpu --models resnet18 --methods ig,smoothgrad --repeat 3 --json $O/cpu_before_$round.json > $O/cpu_before_$round.txt 2>&1
  $B methods --device cpu --models resnet18 --methods ig,smoothgrad --repeat 3 --json $O/cpu_after_$round.json > $O/cpu_after_$round.txt 2>&1
done
$A methods --device gpu:0 --models resnet18 --methods saliency,ig,smoothgrad --repeat 1 --json $O/pocl_before_2.json > $O/pocl_before_2.txt 2>&1
$B methods --device gpu:0 --models resnet18 --methods saliency,ig,smoothgrad --repeat 1 --json $O/pocl_after_2.json > $O/pocl_after_2.txt 2>&1
echo finished > $O/ab_done
