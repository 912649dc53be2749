#!/usr/bin/env bash
# MobileNetV2 on PoCL, batch 1, with the gradient stores fused and apart (session 44, one binary).
# Launch counts are the point: the device times ran beside a mutant build on this 2-core VM.
for mode in fused apart; do
    XAI_GRADIENT_STORES=$mode .build/release/xai-bench models --device gpu --models mobilenet_v2 --batch 1 --profile --repeat 1 \
        > Benchmarks/depthwise-stores-2026-12-06/mobilenet_v2-pocl-$mode.txt 2>&1
done
