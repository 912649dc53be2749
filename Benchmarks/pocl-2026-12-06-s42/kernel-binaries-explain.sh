# Kernel binaries on PoCL: one `xai explain` process per line, fresh PoCL and xai caches at the start,
# a fresh --out folder per run (xai explain skips maps a folder already holds).
set -u
W=$(mktemp -d); mkdir -p $W/pocl
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; commit $(git rev-parse --short HEAD)"
i=0
for run in off on on on off off on off; do
  i=$((i+1)); t0=$(date +%s%N)
  last=$(POCL_CACHE_DIR=$W/pocl XAI_CACHE_DIR=$W/xai XAI_PROGRAM_CACHE=$run .build/release/xai explain Demo/model.onnx Demo/samples/circle_1.png --device gpu --method saliency,gradcam --out $W/out-$i 2>&1 | tail -1)
  echo "run $i XAI_PROGRAM_CACHE=$run: $(( ($(date +%s%N) - t0) / 1000000 )) ms wall ($last)"
done
echo "entries: $(ls $W/xai/programs | wc -l), $(du -sh $W/xai/programs | cut -f1)"
rm -rf $W
