"""AttnLRP, CP-LRP and Chefer et al.'s transformer attribution against their reference
implementations on a full-size ViT (issue 30): torchvision's vit_b_16 with seeded random weights (Tools/make_architecture_fixtures.py's randomize),
one 224x224 input, exported to ONNX (TorchScript exporter, opset 17). lxt 2.1 computes AttnLRP and
CP-LRP, the authors' code (--chefer, a checkout of hila-chefer/Transformer-Explainability) the
transformer attribution, exactly as Tools/make_transformer_fixtures.py runs them for the fixtures.
Reports each map's relative L2 error against the reference (for the transformer attribution also
against the authors' code run in float64) and the wall time of both (the
reference: median of --repeat runs after a warm-up, torch on 2 threads; xai: the rows of
`xai-bench methods` on the same ONNX file, median of --repeat runs after a warm-up), and PyTorch's
plain forward + backward to the input as the common yardstick.

    python3 Benchmarks/transformers_vs_peers.py OUT [--chefer DIR] [--repeat 3] [--xai .build/release/xai]

Needs torch, torchvision, lxt and einops (Tools/requirements-fixtures.txt). Writes OUT/transformers_vs_peers.json.
"""
import argparse
import copy
import json
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tools"))
import make_transformer_fixtures as fixtures  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--chefer", default=None)
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--xai", default=str(ROOT / ".build" / "release" / "xai"))
args = parser.parse_args()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(2)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def timed(run):
    times, result = [], None
    for i in range(args.repeat + 1):
        started = time.perf_counter()
        result = run()
        if i:
            times.append(time.perf_counter() - started)
    return result, float(np.median(times))


torch.manual_seed(0)
vit = torchvision.models.vit_b_16(weights=None).eval()
# torchvision starts the head at zero (every logit 0, every map 0): the fixtures' seeded weights instead.
fixtures.maf.randomize(vit, 0)
x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
onnx_path = out / "vit_b_16.onnx"
if not onnx_path.exists():
    torch.onnx.export(vit, x, str(onnx_path), input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
np.save(out / "x.npy", x.numpy())
with torch.no_grad():
    logits = vit(x)
target = np.array([int(logits.argmax())])
reference = copy.deepcopy(vit)
vit.reference = lambda z: reference(z)


def plain_gradient():
    xg = x.clone().requires_grad_(True)
    vit(xg)[0, int(target[0])].backward()
    return xg.grad


_, plain_seconds = timed(plain_gradient)
lxt_attn = dict(fixtures.OUTSIDE)
lxt_attn[torchvision.models.vision_transformer.nn.MultiheadAttention] = fixtures.ATTENTION_PATCH
references = {
    "attnlrp": lambda: fixtures.relevance(vit, lxt_attn, x, target),
    "cp-lrp": lambda: fixtures.relevance(vit, fixtures.lxt_module("vit_torch").cp_LRP, x, target),
}
if args.chefer:
    generator = fixtures.chefer_generator(args.chefer, reference, x)
    references["transformer-attribution"] = lambda: fixtures.chefer_maps(generator, reference, x, target)

bench = subprocess.run([str(pathlib.Path(args.xai).with_name("xai-bench")), "methods", "--model", str(onnx_path),
                        "--methods", ",".join(references) + ",saliency", "--repeat", str(args.repeat)],
                       check=True, capture_output=True, text=True).stdout
(out / "xai-bench.txt").write_text(bench)


def xai_seconds(method):
    match = re.search(r"\|\s*" + re.escape(method) + r"\s*\|[^|]*\|\s*[\d.]+ m?s / ([\d.]+) (m?s)", bench)
    return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1) if match else float("nan")


rows = [{"method": "fwd+bwd (saliency)", "peer": "torch autograd", "peer_seconds": plain_seconds, "xai_seconds": xai_seconds("saliency")}]
for method, run in references.items():
    expected, seconds = timed(run)
    folder = out / method
    subprocess.run([args.xai, "explain", str(onnx_path), str(out / "x.npy"), "--method", method, "--save", "raw", "--quiet",
                    "--target", str(int(target[0])), "--overwrite", "--out", str(folder)], check=True)
    ours = np.load(folder / "x" / f"{method}.raw.npy")
    rows.append({"method": method, "peer": "Chefer et al.'s code" if method == "transformer-attribution" else "lxt 2.1",
                 "vs_peer": rel(ours.reshape(expected.shape), expected), "peer_seconds": seconds, "xai_seconds": xai_seconds(method)})
if args.chefer:
    # The authors' code in float64 as well: at this depth their float32 result is itself far from
    # it (products whose outputs nearly cancel divide the relevance by them), so xai is compared
    # with both.
    generator.model.double()
    torch.set_default_dtype(torch.float64)
    exact = fixtures.chefer_maps(generator, reference, x.double(), target)
    torch.set_default_dtype(torch.float32)
    row = next(r for r in rows if r["method"] == "transformer-attribution")
    ours = np.load(out / "transformer-attribution" / "x" / "transformer-attribution.raw.npy").reshape(exact.shape)
    f32 = fixtures.chefer_maps(fixtures.chefer_generator(args.chefer, reference, x), reference, x, target)
    row.update({"vs_peer_float64": rel(ours, exact), "peer_float32_vs_float64": rel(f32, exact)})
    print(f"transformer-attribution: xai {row['vs_peer_float64']:.2e} from the authors' code in float64, "
          f"their float32 {row['peer_float32_vs_float64']:.2e} from it", flush=True)
for row in rows:
    print(f"{row['method']}: {row.get('vs_peer', float('nan')):.2e} from {row['peer']}; peer {row['peer_seconds']:.3f} s, "
          f"xai {row['xai_seconds']:.3f} s ({row['xai_seconds'] / row['peer_seconds']:.2f}x)", flush=True)
(out / "transformers_vs_peers.json").write_text(json.dumps({"rows": rows, "torch": torch.__version__, "target": int(target[0])}, indent=1))
