#!/usr/bin/env python3
"""Issue 32's goal table from one `Tools/gpu/run.sh` call's files.

    python3 Tools/gpu/goals.py OUT [ROWS]     # markdown on stdout

OUT holds what the call writes (cuda_peers.json, xai_ops.json, xai_models.json, xai_models256.json,
xai_methods.json, log.txt); ROWS (default OUT) the extra `xai-bench models --json` files of the
tensor-core rows (models_b32_tf32.json, models_b256_tf32.json). Every number comes from those files:
a row whose files are missing, or that errored, says so instead of a ratio. Ratios are xai's time
over the peer's (below 1: xai is faster), and the GEMM row is xai's GFLOP/s over cuBLAS's.
"""
import json
import os
import re
import sys

IMAGE_BYTES = 3 * 224 * 224 * 4   # one ResNet-50 input, float32
MAP_BYTES = 224 * 224 * 4         # one saliency map, float32


def load(folder, name):
    try:
        with open(os.path.join(folder, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def peer_seconds(peers, key):
    """Median seconds per image of a CUDA peer row, or None (missing or errored)."""
    for r in (peers or {}).get("results", []):
        if r.get("key") == key and "per_image_s" in r:
            return r["per_image_s"]["median"]
    return None


def model_seconds(rows, batch, row="forward"):
    """Median seconds per image of an `xai-bench models` row, or None."""
    for r in rows or []:
        if r.get("model") == "resnet50" and r.get("batch") == batch and r.get("row") == row:
            return r["secondsPerImage"]
    return None


def method_row(methods, name):
    for r in (methods or {}).get("rows", []):
        if r.get("method") == name and r.get("model", "resnet50") == "resnet50":
            return r
    return None


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def verdict(value, limit, smaller_is_better=True):
    if value is None:
        return "not measured"
    met = value <= limit if smaller_is_better else value >= limit
    return "met" if met else "not met"


def table(out, rows_dir=None):
    rows_dir = rows_dir or out
    peers = load(out, "cuda_peers.json")
    ops = load(out, "xai_ops.json")
    models = load(out, "xai_models.json")
    models256 = load(out, "xai_models256.json")
    methods = load(out, "xai_methods.json")
    tf32 = {b: load(rows_dir, f"models_b{b}_tf32.json") for b in (32, 256)}
    lines = []

    header = (methods or {}).get("header", {})
    device = header.get("deviceDetails") or (ops or {}).get("backend") or "device unknown"
    peer_device = (peers or {}).get("device", "no CUDA peer file")
    versions = (peers or {}).get("versions", {})
    lines.append(f"xai: {device}; peers: {peer_device} "
                 + " ".join(f"{k} {v}" for k, v in versions.items()) + f"; {(peers or {}).get('precision', '')}")
    log = os.path.join(out, "log.txt")
    if os.path.exists(log):
        with open(log, errors="replace") as f:
            text = f.read()
        pack = re.search(r"^== pack: (.*)$", text, re.M)
        if pack:
            lines.append("pack: " + pack.group(1).strip())
        executed = re.findall(r"Executed \d+ tests?, with \d+ failures?.*", text)
        if executed:
            lines.append("tests: " + executed[-1].strip())
        skipped = re.findall(r"^== (.*): skipped, the call's budget", text, re.M)
        if skipped:
            lines.append("skipped for the call's budget: " + ", ".join(skipped))
    lines.append("")
    lines.append("| row | xai | peer | xai / peer | goal | |")
    lines.append("|---|---|---|---|---|---|")

    # fp32 GEMM against cuBLAS, at the size both ran.
    if ops and "ceilingGFlops" in ops:
        name = ops.get("ceilingName", "GEMM")
        size = re.search(r"(\d+)\^3", name)
        label = f"fp32 GEMM {size.group(1)}^3" if size else "fp32 GEMM"
        cublas = (peers or {}).get("ceiling", {}).get(f"cublas_sgemm_{size.group(1)}_gflops") if size else None
        xai = f"{ops['ceilingGFlops'] / 1e3:.1f} TFLOP/s ({name})"
        if cublas:
            gemm = ops["ceilingGFlops"] / cublas
            lines.append(f"| {label} | {xai} | cuBLAS {cublas / 1e3:.1f} TFLOP/s | {gemm * 100:.0f} % | >= 80 % of cuBLAS "
                         f"| {verdict(gemm, 0.8, smaller_is_better=False)} |")
        else:
            lines.append(f"| {label} | {xai} | no cuBLAS row at that size | - | >= 80 % of cuBLAS | not measured |")
    else:
        lines.append("| fp32 GEMM 4096^3 | - | - | - | >= 80 % of cuBLAS | not measured |")

    def ratio_row(label, xai, peer, peer_name, limit, goal):
        r = xai / peer if xai is not None and peer else None
        said = verdict(r, limit) if limit is not None else "-"
        lines.append(f"| {label} | {ms(xai)} | {peer_name} {ms(peer)} | {'-' if r is None else f'{r:.2f}'} | {goal} | {said} |")

    ratio_row("ResNet-50 forward, batch 1", model_seconds(models, 1), peer_seconds(peers, "forward_b1"), "PyTorch fp32", 1.0, "<= 1.0x")
    ratio_row("ResNet-50 forward, batch 32 (per image)", model_seconds(models, 32), peer_seconds(peers, "forward_b32"), "PyTorch fp32", 0.8, "<= 0.8x")
    ratio_row("ResNet-50 forward, batch 256 (per image)", model_seconds(models256, 256), peer_seconds(peers, "forward_b256"), "PyTorch fp32", 0.8, "<= 0.8x")
    for b in (32, 256):
        ratio_row(f"ResNet-50 forward, batch {b}, --precision tf32 (per image)", model_seconds(tf32[b], b), peer_seconds(peers, f"forward_b{b}_tf32"),
                  "PyTorch default (TF32 convolutions)", 1.0, "<= 1.0x")
    ratio_row("forward + backward to the input, batch 1", model_seconds(models, 1, "forward+backward to input"),
              peer_seconds(peers, "fwd_bwd_input_b1"), "PyTorch fp32", None, "(no goal)")

    # Methods against Captum, as `xai-bench methods --compare` paired them (its median seconds per image).
    goals = [("ig", "Integrated Gradients, 50 steps", 1.0), ("smoothgrad", "SmoothGrad, 50 samples", 1.0),
             ("occlusion", "occlusion", 0.5), ("lime", "LIME", 0.5), ("kernelshap", "KernelSHAP", 0.5), ("rise", "RISE", 0.5)]
    for name, label, limit in goals:
        row = method_row(methods, name)
        xai = row["timing"]["median"] if row else None
        captum = next((p for p in (row or {}).get("peers", []) if p.get("library") == "captum"), None)
        if name == "rise" or (row is not None and captum is None):
            # Captum has no RISE: its row has no peer to be held against.
            peer = "Captum has no RISE" if name == "rise" else "no Captum row"
            lines.append(f"| {label} | {ms(xai)} | {peer} | - | <= {limit}x Captum | {'no peer' if row else 'not measured'} |")
            continue
        ratio_row(label, xai, captum["medianSeconds"] if captum else None, "Captum", limit, f"<= {limit}x Captum")

    # What crosses for one SmoothGrad explanation: the image in and the map out.
    sg = method_row(methods, "smoothgrad")
    moved = (sg or {}).get("transfers")
    if moved:
        to, back = moved["bytesToDevice"], moved["bytesFromDevice"]
        # Slack: the target index and the scalars a method uploads (4 KiB each way).
        met = to <= IMAGE_BYTES + 4096 and back <= MAP_BYTES * 3 + 4096
        lines.append(f"| host-device bytes, SmoothGrad (per image) | in {to / 1e6:.3f} MB, out {back / 1e6:.3f} MB | "
                     f"image {IMAGE_BYTES / 1e6:.3f} MB, map {MAP_BYTES / 1e6:.3f} MB (x3 channels at most) | - | image + map only | "
                     f"{'met' if met else 'not met'} |")
    else:
        lines.append("| host-device bytes, SmoothGrad | - | - | - | image + map only | not measured |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    sys.stdout.write(table(argv[1], argv[2] if len(argv) > 2 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
