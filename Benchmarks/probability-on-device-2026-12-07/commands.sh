# PoCL (OpenCL on the CPU), ResNet-18 at 224, RISE with 128 masks: bytes each way per image.
# "after" at the commit in commit.txt; "before" is session 44's figure at 57ccebb (README.md), not re-run.
xai-bench methods --device gpu --model resnet18 --methods rise --repeat 1 --slow-budget 1 --knobs '{"masks": 128}'
