#!/bin/sh
# The CPU rows of RESULTS.md's 2026-12-06 (session 43) section: one binary, the fused gradient
# stores off (apart) and on (fused), interleaved.
for i in 1 2; do for m in apart fused; do
  XAI_GRADIENT_STORES=$m .build/release/xai-bench models --device cpu --models resnet50 --batch 2 --repeat 7 > models_${m}_$i.txt 2>&1
done; done
for i in 1 2; do for m in apart fused; do
  XAI_GRADIENT_STORES=$m .build/release/xai-bench methods --device cpu --model resnet50 --methods saliency,ig,smoothgrad --repeat 3 > methods_${m}_$i.txt 2>&1
done; done
# The PoCL launch counts were read off the terminal (no file kept), one run at 5d6de82 and one at
# 83b4627's kernels:
#   .build/release/xai-bench models --device gpu --models resnet50 --batch 2 --repeat 1 --profile --profile-rows 30
