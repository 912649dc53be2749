#!/usr/bin/env bash
# What `pip install ./python` gives a user: builds the wheel (SwiftPM, the Swift runtime linked
# statically), installs it into a fresh venv and uses it from outside the checkout, XAI_LIBRARY
# unset. Run once per CI run by `make test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel "$root/python" --no-build-isolation --no-deps -w "$work/dist" -q
wheel="$(ls "$work"/dist/xai_attribution_engine-*.whl)"
python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --no-deps --no-index -q "$wheel"
"$work/venv/bin/pip" show xai-attribution-engine > /dev/null
lib="$(cd "$work" && env -u XAI_LIBRARY "$work/venv/bin/python" -c 'import xai; print(xai._native.lib._name)')"
case "$lib" in "$work/venv/"*) ;; *) echo "the venv's xai loaded $lib, not its own library" >&2; exit 1 ;; esac
if ldd "$lib" | grep -q 'libswift\|libFoundation\|libdispatch'; then
  echo "the wheel's library needs the Swift runtime:" >&2; ldd "$lib" >&2; exit 1
fi
cd "$work" && env -u XAI_LIBRARY "$work/venv/bin/python" - "$root/Tests/Fixtures/models/small_resnet" <<'PY'
import sys
import numpy as np
import xai
folder = sys.argv[1]
with xai.Model(folder + "/model.onnx") as m:
    x = np.load(folder + "/input.npy")
    assert np.abs(m.predict(x) - np.load(folder + "/logits.npy")).max() < 1e-4
    e = m.explain(x, "gradcam", progress=False)
    assert e.maps.shape == (2, 64, 64)
PY
echo "wheel: $(basename "$wheel"), $(du -m "$wheel" | cut -f1) MB, installed into a fresh venv and used (library: $(du -m "$lib" | cut -f1) MB, no Swift runtime needed)"
# xai.ray against the installed wheel: its extra from PyPI (Ray with Ray Data) into the same venv.
if "$work/venv/bin/pip" install -q "$wheel[ray]" > "$work/ray-install.log" 2>&1; then
  (cd "$root" && env -u XAI_LIBRARY XAI_TEST_INSTALLED=1 XAI_CLI="${XAI_CLI:-$root/.build/release/xai}" \
     "$work/venv/bin/python" -m pytest -q -p no:cacheprovider python/tests/test_ray.py)
else
  echo "Ray could not be installed into the venv (pip install \"$(basename "$wheel")[ray]\" failed; see below): the Ray tests did not run" >&2
  tail -5 "$work/ray-install.log" >&2
fi
