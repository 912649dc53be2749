#!/usr/bin/env bash
# How these files were made (2026-12-06, session 44), from the repository root after a release build
# and `bash Benchmarks/peers/setup.sh` (which now installs TorchRay 1.0.0.2).
# 1. xai's rise row (and the forward rows) with the side-by-side runner. Its peer half failed on the
#    first try (peers_first_try.txt: rise_class wants a list of targets, not an int), fixed in
#    peer_bench.py before the second step.
XAI_METHODS=rise PEER_METHODS=forward_b1,forward_b32,torchray_rise bash Benchmarks/peers/side_by_side.sh . OUT resnet50
# 2. TorchRay's RISE alone, into the same results file (peers_rise.json, peers_rise.txt).
cp Benchmarks/peers/peer_bench.py OUT/peer_scratch/
(cd OUT/peer_scratch && ~/.xai-peerenv/bin/python peer_bench.py --model resnet50 --methods torchray_rise)
