#!/usr/bin/env bash
# Packs what the GPU check needs into .gpu/ (ignored), here, on a machine without a GPU:
#   .gpu/pack.tar.xz   xai, xai-bench and the test bundle (release, one build: the one `make test`
#                      makes) with every shared library they load that a bare CUDA image lacks:
#                      the Swift runtime, Foundation and XCTest, oneDNN + libgomp, OpenBLAS +
#                      libgfortran, the OpenCL ICD loader, CLBlast, libpng, TurboJPEG.
#   .gpu/whl/          wheels of the peers the CUDA image does not carry (captum, grad-cam, ttach, torchray).
# glibc, libstdc++, libgcc_s and zlib stay the device's own: they are newer there, and an older copy
# first on the library path would break the NVIDIA driver's own libraries.
#
# Then it checks the pack: every library the three programs load resolves inside the pack or to one
# of those system libraries, and the packed programs run from a scratch folder with
# LD_LIBRARY_PATH holding only the pack (`xai devices` and one op-case test, on PoCL here).
#
#   bash Tools/gpu/pack.sh            # then, with the device tool: run `bash Tools/gpu/run.sh`, carry .gpu
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
GPU="$ROOT/.gpu"; STAGE="$GPU/stage"; LIMIT_MIB=${XAI_PACK_LIMIT_MIB:-48}
rm -rf "$STAGE"; mkdir -p "$STAGE/bin" "$STAGE/lib" "$GPU/whl"

echo "== build (release, tests included)"
# The test modules are recompiled: an incremental build has been seen to keep a test module's
# objects compiled against an older Backend protocol (a stale witness table crashed). Touching
# their sources does it; deleting their build folders confuses SwiftPM's cached build plan.
find "$ROOT/Tests" -name '*.swift' -exec touch {} +
swift build -c release -Xswiftc -enable-testing --build-tests 2>&1 | tail -2
BIN="$ROOT/.build/release"
PROGRAMS=(xai xai-bench xaiPackageTests.xctest)
for p in "${PROGRAMS[@]}"; do strip -o "$STAGE/bin/$p" "$BIN/$p"; done

# The device image's own libraries (see the header).
SYSTEM_LIBS='^(linux-vdso|libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s|libz)\.so'
for p in "${PROGRAMS[@]}"; do ldd "$BIN/$p"; done | awk '/=>/ && $3 ~ /^\// {print $1, $3}' | sort -u |
while read -r name path; do
    [[ "$name" =~ $SYSTEM_LIBS ]] && continue
    cp -L "$path" "$STAGE/lib/$name"
done
strip --strip-unneeded "$STAGE/lib/"*.so* 2>/dev/null || true

# The tests find their fixtures through the absolute source path they were compiled with; run.sh
# links that path to the checkout on the device.
{ echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Tests Kernels || echo '+changes')"
  echo "built $(date -u +%FT%TZ) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "swift $(swift --version 2>&1 | head -1)"
  echo "source_root $ROOT"; } > "$STAGE/MANIFEST"

echo "== check: every loaded library resolves into the pack or the system set"
missing=0
for p in "${PROGRAMS[@]}"; do
    while read -r name arrow path _; do
        [[ "$name" =~ $SYSTEM_LIBS ]] && continue
        if [[ "$path" != "$STAGE/lib/"* ]]; then echo "  $p: $name resolves to $path, not the pack"; missing=1; fi
    done < <(LD_LIBRARY_PATH="$STAGE/lib" ldd "$STAGE/bin/$p" | awk '/=>/')
done
[ "$missing" = 0 ] || { echo "pack incomplete" >&2; exit 1; }

echo "== check: the packed programs run from a scratch folder with only the pack on the library path"
SCRATCH="$(mktemp -d)"; trap 'rm -rf "$SCRATCH"' EXIT
cp -a "$STAGE/." "$SCRATCH/"
( cd "$SCRATCH" && env -i PATH=/usr/bin:/bin HOME="$SCRATCH" LD_LIBRARY_PATH="$SCRATCH/lib" ./bin/xai devices ) | sed 's/^/  /'
( cd "$SCRATCH" && env -i PATH=/usr/bin:/bin HOME="$SCRATCH" LD_LIBRARY_PATH="$SCRATCH/lib" \
    ./bin/xai-bench ops --device gpu --batches 1 --repeat 1 --gemm-size 256 ) | tail -3 | sed 's/^/  /'
( cd "$SCRATCH" && env -i PATH=/usr/bin:/bin HOME="$SCRATCH" LD_LIBRARY_PATH="$SCRATCH/lib" \
    ./bin/xaiPackageTests.xctest XAIBackendTests.OpCaseTests ) 2>&1 | tail -2 | sed 's/^/  /'

echo "== wheels for the CUDA peer rows"
PY=python3; [ -x "$HOME/.xai-peerenv/bin/python" ] && PY="$HOME/.xai-peerenv/bin/python"
if ! ls "$GPU/whl/"captum-0.9.0-*.whl "$GPU/whl/"grad_cam-1.5.7-*.whl "$GPU/whl/"ttach-0.0.3-*.whl "$GPU/whl/"torchray-1.0.0.2-*.whl >/dev/null 2>&1; then
    rm -rf "$GPU/whl"; mkdir -p "$GPU/whl"
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$GPU/whl" captum==0.9.0 ttach==0.0.3
    # grad-cam is published as a source archive only: build its (pure Python) wheel here.
    "$PY" -m pip wheel -q --no-deps -w "$GPU/whl" grad-cam==1.5.7
    # TorchRay (the RISE peer) is a source archive too; its pycocotools and pymongo serve datasets
    # RISE never reads, so --no-deps, as run.sh installs every wheel.
    "$PY" -m pip wheel -q --no-deps -w "$GPU/whl" torchray==1.0.0.2
fi
ls "$GPU/whl" | sed 's/^/  /'

echo "== archive"
tar -C "$STAGE" -cf - . | xz -T2 -6 > "$GPU/pack.tar.xz"
rm -rf "$STAGE"
size=$(stat -c %s "$GPU/pack.tar.xz")
echo "  .gpu/pack.tar.xz: $((size / 1048576)) MiB"
[ "$size" -le $((LIMIT_MIB * 1048576)) ] || { echo "pack over ${LIMIT_MIB} MiB: the device tool carries 64 MiB with the checkout" >&2; exit 1; }
