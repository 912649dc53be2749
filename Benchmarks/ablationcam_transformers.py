"""Ablation-CAM on full-size transformers against pytorch-grad-cam 1.5.7: torchvision's vit_b_16
and swin_t with seeded random weights (Tools/make_architecture_fixtures.py's randomize), one
224x224 input, exported to ONNX (TorchScript exporter, opset 17, a dynamic batch), at each model's default CAM
layer (the last block's first norm, as pytorch-grad-cam's tutorials pick it).

pytorch-grad-cam runs with its AblationLayerVit and the usual reshape_transform, batch_size 32 (its
default), ablating to 0 (Tools/make_transformer_cam_fixtures.py's ZeroAblationVit): its own rule
takes the batch's minimum after ablating the copies before, so its maps change with batch_size;
at 0 they do not, and xai runs `--ablation zero` to compare. Reports the maps' relative L2 error
and the wall time of one run of each (torch on 2 threads; xai: `xai-bench methods`, median of
--repeat runs after a warm-up, CPU backend).

    python3 Benchmarks/ablationcam_transformers.py OUT [--repeat 1] [--xai .build/release/xai]

Needs torch, torchvision and grad-cam (Tools/requirements-fixtures.txt). Writes OUT/ablationcam_transformers.json.
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision
from pytorch_grad_cam import AblationCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tools"))
import make_architecture_fixtures as maf  # noqa: E402
from make_transformer_cam_fixtures import ZeroAblationVit  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--repeat", type=int, default=1)
parser.add_argument("--xai", default=str(ROOT / ".build" / "release" / "xai"))
args = parser.parse_args()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(2)


def vit():
    model = torchvision.models.vit_b_16(weights=None).eval()
    return model, model.encoder.layers[-1].ln_1, lambda t: t[:, 1:, :].reshape(t.size(0), 14, 14, t.size(2)).permute(0, 3, 1, 2)


def swin():
    model = torchvision.models.swin_t(weights=None).eval()
    return model, model.features[-1][-1].norm1, lambda t: t.permute(0, 3, 1, 2)


rows = []
for name, make in [("vit_b_16", vit), ("swin_t", swin)]:
    torch.manual_seed(0)
    model, layer, reshape = make()
    maf.randomize(model, 0)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    onnx_path = out / f"{name}.onnx"
    if not onnx_path.exists():
        torch.onnx.export(model, x, str(onnx_path), input_names=["input"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    np.save(out / "x.npy", x.numpy())
    with torch.no_grad():
        target = int(model(x).argmax())
    cam = AblationCAM(model=model, target_layers=[layer], reshape_transform=reshape, ablation_layer=ZeroAblationVit(), batch_size=32)
    started = time.perf_counter()
    cam.activations_and_grads(x)
    acts = cam.activations_and_grads.activations[0].cpu().numpy()
    expected = cam.get_cam_image(x, layer, [ClassifierOutputTarget(target)], acts, None, False)
    peer_seconds = time.perf_counter() - started
    cam.activations_and_grads.release()
    folder = out / name
    subprocess.run([args.xai, "explain", str(onnx_path), str(out / "x.npy"), "--method", "ablationcam", "--ablation", "zero",
                    "--relu", "false", "--save", "raw", "--quiet", "--target", str(target), "--overwrite", "--out", str(folder)], check=True)
    ours = np.load(folder / "x" / "ablationcam.raw.npy").reshape(expected.shape)
    error = float(np.linalg.norm(ours - expected) / np.linalg.norm(expected))
    bench = subprocess.run([str(pathlib.Path(args.xai).with_name("xai-bench")), "methods", "--model", str(onnx_path), "--methods", "ablationcam",
                            "--repeat", str(args.repeat), "--knobs", '{"ablation": "zero"}'], check=True, capture_output=True, text=True).stdout
    (out / f"xai-bench-{name}.txt").write_text(bench)
    match = re.search(r"\|\s*ablationcam\s*\|[^|]*\|\s*[\d.]+ m?s / ([\d.]+) (m?s)", bench)
    xai_seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1) if match else float("nan")
    rows.append({"model": name, "channels": int(acts.shape[1]), "vs_peer": error, "peer_seconds": peer_seconds, "xai_seconds": xai_seconds})
    print(f"{name}: {acts.shape[1]} channels, xai {error:.2e} from pytorch-grad-cam; peer {peer_seconds:.2f} s, xai {xai_seconds:.2f} s "
          f"({xai_seconds / peer_seconds:.3f}x)", flush=True)
(out / "ablationcam_transformers.json").write_text(json.dumps({"rows": rows, "torch": torch.__version__}, indent=1))
