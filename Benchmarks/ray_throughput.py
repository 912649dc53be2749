"""Throughput of xai.ray on this machine: images per second for Grad-CAM and IG with 1 and 2 Ray workers against
one process (`Model.explain_files`, what `xai explain` runs), and each actor's memory over a long run.

    python3 Benchmarks/ray_throughput.py OUT [--demo 1000] [--resnet 200] [--resnet-ig 20] [--memory 10000]

Needs the wheel's `[ray]` extra (or `pip install "ray[data]>=2.9"`) and the release build (XAI_LIBRARY, default
.build/release/libxaic.so). Rows, per model and method:
  one process      Model.explain_files in this process, every core
  ray 1x{cores}    one actor given every core (Ray's overhead against one process)
  ray 1x1, 2x1     one and two actors of one core each (scaling; on a machine with at least 2 cores)
Each Ray row's time includes starting the actors (the pool's start is also given alone); the images are the demo
set's pictures, repeated under distinct names (ResNet-50 resizes them to 224x224). Writes OUT/results.json and
OUT/table.md, and prints the table.
"""
import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("XAI_LIBRARY", str(ROOT / ".build" / "release" / "libxaic.so"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), os.environ.get("PYTHONPATH")]))

import ray  # noqa: E402

import xai  # noqa: E402
import xai.ray  # noqa: E402


def image_folder(base: pathlib.Path, n: int) -> pathlib.Path:
    """n pictures under distinct names (links to the demo samples, cycled)."""
    folder = base / f"images-{n}"
    if not folder.exists():
        folder.mkdir(parents=True)
        samples = sorted((ROOT / "Demo" / "samples").glob("*.png"))
        for i in range(n):
            os.symlink(samples[i % len(samples)], folder / f"img_{i:05d}.png")
    return folder


def one_process(model: str, folder: pathlib.Path, method: str, knobs: dict) -> dict:
    out = tempfile.mkdtemp(prefix="xai-bench-")
    try:
        t0 = time.perf_counter()
        with xai.Model(model) as m:
            opened = time.perf_counter() - t0
            summary = m.explain_files(str(folder), out=out, method=method, save="raw", **knobs)
        seconds = time.perf_counter() - t0
        assert not summary["failures"], summary["failures"][:3]
        return {"seconds": seconds, "open_seconds": opened, "maps": summary["written"]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def with_ray(model: str, folder: pathlib.Path, method: str, knobs: dict, workers: int, cores: int) -> dict:
    out = tempfile.mkdtemp(prefix="xai-bench-")
    try:
        t0 = time.perf_counter()
        summary = xai.ray.explain(str(folder), model, method, out, workers=workers, cpus_per_worker=cores, save="raw", progress=False,
                                  batch_size=16, **knobs)
        seconds = time.perf_counter() - t0
        assert not summary["failures"], summary["failures"][:3]
        return {"seconds": seconds, "pool_seconds": summary["pool_seconds"], "maps": summary["written"], "memory": summary["memory"]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--demo", type=int, default=1000, help="demo-model images per row")
    parser.add_argument("--resnet", type=int, default=200, help="ResNet-50 images per Grad-CAM row")
    parser.add_argument("--resnet-ig", type=int, default=20, help="ResNet-50 images per IG row (50 steps each)")
    parser.add_argument("--memory", type=int, default=10000, help="demo-model Grad-CAM images for the memory run")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    isa = "avx512f" if "avx512f" in open("/proc/cpuinfo").read() else "avx2"
    rows = []
    cases = [("demo", str(ROOT / "Demo" / "model.onnx"), "gradcam", args.demo, {}),
             ("demo", str(ROOT / "Demo" / "model.onnx"), "ig", args.demo, {"steps": 50}),
             ("resnet50", "resnet50", "gradcam", args.resnet, {}),
             ("resnet50", "resnet50", "ig", args.resnet_ig, {"steps": 50})]
    for name, model, method, n, knobs in cases:
        if n <= 0:
            continue
        folder = image_folder(out / "work", n)
        base = one_process(model, folder, method, knobs)
        rows.append({"model": name, "method": method, "images": n, "run": "one process", **base})
        print(f"{name} {method} x{n}: one process {base['seconds']:.1f} s", flush=True)
        for workers, each in dict.fromkeys([(1, cores), (1, 1), (2, 1)]):
            if workers * each > cores:
                continue
            r = with_ray(model, folder, method, knobs, workers, each)
            r.pop("memory")
            rows.append({"model": name, "method": method, "images": n, "run": f"ray {workers}x{each}", **r})
            print(f"{name} {method} x{n}: ray {workers}x{each} {r['seconds']:.1f} s (pool {r['pool_seconds']:.1f} s)", flush=True)
    memory = None
    if args.memory > 0:
        folder = image_folder(out / "work", args.memory)
        r = with_ray(str(ROOT / "Demo" / "model.onnx"), folder, "gradcam", {}, min(2, cores), 1)
        per_pid = {}
        for m in r["memory"]:
            per_pid.setdefault(m["pid"], []).append(m)
        memory = {"images": args.memory, "seconds": r["seconds"],
                  "actors": [{"pid": pid, "batches": len(ms), "first_kb": ms[0]["rss_kb"], "tenth_kb": ms[len(ms) // 10]["rss_kb"],
                              "last_kb": ms[-1]["rss_kb"], "max_kb": max(m["rss_kb"] for m in ms)} for pid, ms in per_pid.items()]}
        print(f"memory over {args.memory} images: {memory['actors']}", flush=True)
    ray.shutdown()
    shutil.rmtree(out / "work", ignore_errors=True)
    result = {"cpu": cpu, "isa": isa, "cores": cores, "ray": ray.__version__, "engine": xai.version(), "rows": rows, "memory": memory}
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"CPU: {cpu} ({isa}), {cores} cores; Ray {ray.__version__}; xai {xai.version()}", "",
             "| model | method | images | run | seconds | pool start s | images/s | vs one process | per-image overhead |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["method"] == r["method"] and b["run"] == "one process")
        rate = r["images"] / r["seconds"]
        overhead = (r["seconds"] - base["seconds"]) / r["images"]
        lines.append(f"| {r['model']} | {r['method']} | {r['images']} | {r['run']} | {r['seconds']:.1f} | "
                     f"{r.get('pool_seconds', r.get('open_seconds', 0)):.1f} | {rate:.1f} | {base['seconds'] / r['seconds']:.2f}x | "
                     + ("-" if r["run"] == "one process" else f"{overhead * 1000:+.1f} ms ({overhead / (base['seconds'] / r['images']) * 100:+.0f} %)")
                     + " |")
    for r in rows:
        if r["run"] == "ray 2x1":
            one = next(b for b in rows if b["model"] == r["model"] and b["method"] == r["method"] and b["run"] == "ray 1x1")
            lines.append(f"\n{r['model']} {r['method']}: 2 workers / 1 worker (one core each) = {one['seconds'] / r['seconds']:.2f}x")
    if memory:
        lines.append(f"\nActor memory over {memory['images']} demo images (Grad-CAM, {len(memory['actors'])} actors, batches of 16), resident KiB "
                     "after the first batch, at 10 %, at the end, max: "
                     + "; ".join(f"{a['first_kb']} / {a['tenth_kb']} / {a['last_kb']} / {a['max_kb']}" for a in memory["actors"]))
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
