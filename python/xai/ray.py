"""xai.ray: explain an image set on a Ray cluster, one model per worker, with the outputs of one process.

    import xai.ray
    summary = xai.ray.explain("/data/images", "resnet50.onnx", methods="gradcam,ig", out="/data/xai-out",
                              workers=8, steps=32)

or, without writing Python:

    python -m xai.ray resnet50.onnx /data/images --method gradcam,ig --out /data/xai-out --workers 8 --knob steps=32

How it runs. The driver lists the inputs as `xai explain` does (the same order, the same output folder per
image), leaves out what `OUT/results.jsonl` already records, and hands batches of files to a pool of Ray
actors. Each actor opens the model once (`xai.Model`; on GPU nodes one actor per GPU, its device the GPU Ray
assigned it) and explains its batch with `Model.explain_files`: the engine decodes the next files while the
device works and writes maps, raw tensors and overlays into `OUT/<stem>/` exactly as `xai explain` does. The
actor sends its batch's result lines back and the driver alone appends them to `OUT/results.jsonl`, so:

- the same answer as one process: every map is the bytes `xai explain` writes (the engine gives an image the
  same bits whatever else is in its batch);
- exactly once: a line is written only when its batch came back. An actor killed mid-batch is restarted by
  Ray and its batch run again (its half-written outputs overwritten); a batch that still fails after
  `retries` is split and each file tried alone, so one bad file fails alone;
- resumable: run the same call again; images and methods already in `results.jsonl` are skipped.

Files the engine cannot explain (a corrupt image, a method that does not apply) go to `OUT/failures.jsonl`
with their path and error, and are tried again by the next run. Output folders must be on storage every node
and the driver see (NFS, a shared volume); `format="parquet"` also writes `OUT/parquet/`, one Parquet
dataset of every map with its record, for analysis in Ray Data, pandas or Spark.

Ray is an optional dependency: `pip install "xai-attribution-engine[ray]"`.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from typing import Any, Iterable, Optional, Sequence, Union

try:
    import ray
except ImportError as e:  # pragma: no cover - exercised where Ray is missing
    raise ImportError("xai.ray needs Ray: pip install \"xai-attribution-engine[ray]\" (or pip install \"ray[data]>=2.9\")") from e

import xai

__all__ = ["explain", "evaluate", "main"]

_ACTOR_NAME = "XAIWorker"


def _node() -> str:
    try:
        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - only for messages
        return socket.gethostname()


class XAIWorker:
    """One model on one device; explains batches of files into the shared output folder."""

    def __init__(self, model: str, device: str, precision: str):
        if device == "gpu":
            # The GPU Ray gave this actor. Ray hides the others through CUDA_VISIBLE_DEVICES, which NVIDIA's
            # OpenCL driver honours (one GPU left: "gpu"); a driver that lists every GPU of the node gets
            # Ray's index.
            ids = ray.get_gpu_ids()
            gpus = [d["device"] for d in xai.devices() if d["device"] != "cpu"]
            device = f"gpu:{int(ids[0])}" if ids and len(gpus) > 1 and int(ids[0]) < len(gpus) else "gpu"
        self.node = _node()
        if not os.path.exists(model) and os.sep in model:
            raise xai.FileError(f"{model}: not readable from node {self.node} (each node opens the model itself: use a path "
                                "every node sees)")
        try:
            self.model = xai.Model(model, device=device, precision=precision)
        except xai.XAIError as e:
            raise type(e)(f"on node {self.node}: {e}") from None
        self.device = self.model.device

    def describe(self) -> dict:
        return {"node": self.node, "pid": os.getpid(), "device": self.device}

    def run(self, kind: str, files: list, stems: list, work: tuple, request: dict) -> dict:
        """Explains (kind "explain": `work` the methods) or scores (kind "evaluate": `work` pairs of a method and its
        metrics) `files`, with their output folders; returns the lines the run wrote and its failures."""
        pairs = list(zip(files, stems))
        failures = []
        with tempfile.TemporaryDirectory(prefix="xai-ray-") as scratch:
            lines = os.path.join(scratch, "lines.jsonl")
            if kind == "explain":
                failures += self.model.explain_files(files=pairs, method=",".join(work), results=lines, overwrite=True, **request)["failures"]
            else:
                for method, metrics in work:
                    failures += self.model.evaluate_files(files=pairs, method=method, metrics=list(metrics), results=lines, report=False,
                                                          **request)["failures"]
            records = open(lines, encoding="utf-8").read().splitlines() if os.path.exists(lines) else []
        return {"records": [r for r in records if r.strip()], "failures": failures, "node": self.node, "pid": os.getpid(),
                "rss_kb": _resident_kb(), "finished": time.time()}


def _resident_kb() -> int:
    """This process's resident memory in KiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def _is_dataset(value) -> bool:
    try:
        from ray.data import Dataset
    except ImportError:  # Ray without Ray Data
        return False
    return isinstance(value, Dataset)


def _inputs(images) -> list:
    """(path, stem) pairs in `xai explain`'s order from a folder, a manifest, a list of paths or a Ray Dataset
    with a "path" column."""
    if _is_dataset(images):
        columns = images.columns() or []
        column = "path" if "path" in columns else columns[0] if len(columns) == 1 else None
        if column is None:
            raise xai.InvalidArgumentError(f"images: a Dataset needs a \"path\" column (it has {', '.join(columns)})")
        images = [str(row[column]) for row in images.select_columns([column]).iter_rows()]
        if not images:
            return []
    return xai.list_inputs(images)


def _committed(results: str, keys=("image", "method")) -> set:
    """The `keys` of every line of results.jsonl (or metrics.jsonl). A torn last line (the driver killed mid-write) is
    cut off, so the next line appended starts on a line of its own; its image is done again."""
    done = set()
    if not os.path.exists(results):
        return done
    with open(results, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
    return set(_latest(results, keys))


def _latest(path: str, keys) -> dict:
    """The latest line of a .jsonl file per value of `keys` (a rerun with overwrite appends newer ones); lines that do
    not parse or lack a key are skipped."""
    latest = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                    latest[tuple(r[k] for k in keys)] = r
                except (ValueError, KeyError, TypeError):
                    continue
    return latest


def _batches(pending: dict, size: int) -> list:
    """Batches of at most `size` files that need the same work (methods, or methods and metrics), in input order."""
    groups: dict = {}
    for (path, stem), work in pending.items():
        groups.setdefault(work, []).append((path, stem))
    batches = []
    for work, files in groups.items():
        for start in range(0, len(files), size):
            chunk = files[start:start + size]
            batches.append(([p for p, _ in chunk], [s for _, s in chunk], work))
    return batches


def _method_names(methods) -> list:
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    names = [n.strip() for n in names if n.strip()]
    listing = xai.methods()
    if "all" in names:
        names = list(listing)
    if unknown := [n for n in names if n not in listing]:
        raise xai.InvalidArgumentError(f"method: '{unknown[0]}' is none of {', '.join(listing)}")
    return names


def _check(batch_size: int, device: str):
    if batch_size < 1:
        raise xai.InvalidArgumentError(f"batch_size: {batch_size} must be at least 1")
    if device not in ("cpu", "gpu"):
        raise xai.InvalidArgumentError(f"device: '{device}' must be cpu or gpu (each actor gets the GPU Ray assigns it)")


def explain(images, model: str, methods: Union[str, Sequence[str]] = "gradcam", out: str = "xai-out", *,
            address: Optional[str] = None, workers: Optional[int] = None, device: str = "cpu", precision: str = "exact",
            batch_size: int = 16, save: Union[str, Sequence[str]] = ("raw", "png", "html"), overwrite: bool = False,
            target: Optional[int] = None, format: str = "files", retries: int = 3, cpus_per_worker: float = 1,
            progress: Any = True, **knobs) -> dict:
    """Explains `images` (a folder, a `.txt` manifest, a list of paths, or a `ray.data.Dataset` with a "path"
    column) with `model` (an ONNX path every node can read, or a zoo name) on a pool of Ray actors, writing what
    `xai explain` writes into `out`. Knobs in snake_case as `Model.explain` takes them (`steps=32`, `seed=7`).

    `address`: a Ray address ("auto": the cluster this machine is part of, "ray://head:10001") or None (RAY_ADDRESS's
    cluster where that is set, else a new local one); ignored when Ray is already initialised.
    `workers`: actors (default: one per GPU with device="gpu", else the cluster's CPUs / `cpus_per_worker`).
    `device`: "cpu", or "gpu" for one GPU per actor (`num_gpus=1`). `batch_size`: files per task (fewer where the
    files would not give every actor two tasks; the engine batches images within a task as `xai explain` does). `format`: "files" (the `xai explain`
    layout) or "parquet" (also `out/parquet/`). `retries`: how often Ray restarts a dead actor's batch before the
    batch is split. `progress`: True (a tqdm bar when tqdm is installed, else a line per 10 %), False, or a
    callable (files done, files in all).

    Returns {"written", "skipped", "failures", "seconds", "files", "workers", "report", "parquet", "memory"}: "workers" each
    actor's node, pid and device; "memory" each actor's resident KiB after each batch (with the files done when it
    came back and the time the actor finished it, by the actor's clock); "pool_seconds" the time the actors
    took to start and open the model."""
    started = time.time()
    if format not in ("files", "parquet"):
        raise xai.InvalidArgumentError(f"format: '{format}' is neither files nor parquet")
    _check(batch_size, device)
    save = [s.strip() for s in save.split(",")] if isinstance(save, str) else list(save)
    if unknown := [s for s in save if s not in ("raw", "png", "html")]:
        raise xai.InvalidArgumentError(f"save: '{unknown[0]}' is none of raw, png, html")
    names = _method_names(methods)
    # Knobs are checked on the driver (names and types), so a typo fails before any worker starts.
    xai._engine_knobs(knobs)

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    files = _inputs(images)
    os.makedirs(out, exist_ok=True)
    results = os.path.join(out, "results.jsonl")
    done = set() if overwrite else _committed(results)
    pending = {}
    skipped = 0
    for path, stem in files:
        todo = tuple(n for n in names if (path, n) not in done)
        skipped += len(names) - len(todo)
        if todo:
            pending[(path, stem)] = todo
    batches = _batches(pending, _task_size(batch_size, len(pending), workers, device, cpus_per_worker))
    summary = {"written": 0, "skipped": skipped, "failures": [], "files": len(files), "workers": [], "report": None, "parquet": None,
               "memory": []}
    if batches:
        # Workers run in folders of their own: the output folder goes to them as an absolute path.
        request = {"out": os.path.abspath(out), "save": [s for s in save if s != "html"] + (["png"] if "html" in save and "png" not in save else []),
                   "target": target, **knobs}
        _run("explain", batches, model, device, precision, request, workers, cpus_per_worker, retries, results, out, summary, progress,
             len(pending))
    if "html" in save and os.path.exists(results):
        summary["report"] = xai.write_report(out)
    if format == "parquet":
        summary["parquet"] = _write_parquet(out, results)
    summary["seconds"] = time.time() - started
    return summary


def evaluate(images, model: str, methods: Union[str, Sequence[str]] = "gradcam",
             metrics: Union[str, Sequence[str]] = ("deletion", "insertion"), out: str = "xai-out", *, masks: Optional[str] = None,
             address: Optional[str] = None, workers: Optional[int] = None, device: str = "cpu", precision: str = "exact",
             batch_size: int = 16, overwrite: bool = False, target: Optional[int] = None, retries: int = 3,
             cpus_per_worker: float = 1, progress: Any = True, **knobs) -> dict:
    """What `xai evaluate` does, on the same pool as `explain`: for each image and method the map in `out/<stem>/`
    (made and written there where there is none), then each metric; one line per image x method x metric in
    `out/metrics.jsonl`, appended by the driver only, exactly once and resumable as `explain`'s lines; the report with
    the scores at the end. `metrics`: names or "all" (`xai.metrics()`); `masks`: a folder of ground-truth masks
    `<stem>.png` / `<stem>.npy` every node sees. Knobs in snake_case, the method's and the metrics' alike.

    Returns {"written", "skipped", "failures", "seconds", "files", "workers", "report", "scores", ...}: "scores" the mean,
    standard error and count of every method x metric over the images of `out/metrics.jsonl` (the latest line of
    each), NaN scores left out."""
    started = time.time()
    _check(batch_size, device)
    names = _method_names(methods)
    listing = xai.metrics()
    chosen = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    chosen = [m.strip() for m in chosen if m.strip()]
    if "all" in chosen:
        chosen = [m for m, spec in listing.items() if masks is not None or not spec.get("needsMasks")]
    if unknown := [m for m in chosen if m not in listing]:
        raise xai.InvalidArgumentError(f"metrics: '{unknown[0]}' is none of {', '.join(listing)}")
    if masks is not None and not os.path.isdir(masks):
        raise xai.FileError(f"{masks}: no such folder (masks are <image stem>.png or .npy in a folder)")
    xai._engine_knobs(knobs, ("methods", "metrics"))

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    files = _inputs(images)
    os.makedirs(out, exist_ok=True)
    lines = os.path.join(out, "metrics.jsonl")
    done = set() if overwrite else _committed(lines, ("image", "method", "metric"))
    pending, skipped = {}, 0
    for path, stem in files:
        work = []
        for method in names:
            missing = tuple(m for m in chosen if (path, method, m) not in done)
            skipped += len(chosen) - len(missing)
            if missing:
                work.append((method, missing))
        if work:
            pending[(path, stem)] = tuple(work)
    batches = _batches(pending, _task_size(batch_size, len(pending), workers, device, cpus_per_worker))
    summary = {"written": 0, "skipped": skipped, "failures": [], "files": len(files), "workers": [], "report": None, "memory": []}
    if batches:
        request = {"out": os.path.abspath(out), "target": target, **knobs}
        if masks is not None:
            request["masks"] = os.path.abspath(masks)
        _run("evaluate", batches, model, device, precision, request, workers, cpus_per_worker, retries, lines, out, summary, progress,
             len(pending))
    summary["scores"] = _score_table(lines)
    summary["report"] = xai.write_report(out)
    summary["seconds"] = time.time() - started
    return summary


def _score_table(lines: str) -> list:
    """Mean, standard error and count per method x metric of the latest line of each image x method x metric."""
    import math
    groups: dict = {}
    for r in _latest(lines, ("image", "method", "metric")).values():
        score = r["score"]
        if isinstance(score, (int, float)) and math.isfinite(score):
            groups.setdefault((r["method"], r["metric"]), []).append(float(score))
        else:
            groups.setdefault((r["method"], r["metric"]), [])
    table = []
    for (method, metric), values in groups.items():
        n = len(values)
        mean = sum(values) / n if n else float("nan")
        se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else float("nan")
        table.append({"method": method, "metric": metric, "mean": mean, "standard_error": se, "count": n})
    return table


def _task_size(batch_size: int, files: int, workers: Optional[int], device: str, cpus_per_worker: float) -> int:
    """Files per task: `batch_size`, or fewer where there are too few files to give every actor two tasks."""
    if files == 0:
        return batch_size
    actors = min(_pool_size(workers, device, cpus_per_worker), files)
    return max(1, min(batch_size, -(-files // (2 * actors))))


def _pool_size(workers: Optional[int], device: str, cpus_per_worker: float) -> int:
    if workers is not None:
        if workers < 1:
            raise xai.InvalidArgumentError(f"workers: {workers} must be at least 1")
        return workers
    resources = ray.cluster_resources()
    if device == "gpu":
        gpus = int(resources.get("GPU", 0))
        if gpus < 1:
            raise xai.DeviceError("device gpu: the Ray cluster has no GPUs (ray.cluster_resources() lists none)")
        return gpus
    return max(1, int(resources.get("CPU", 1) // max(cpus_per_worker, 1e-9)))


class _Progress:
    def __init__(self, progress, total: int):
        self.total, self.done, self.bar, self.call, self.shown = total, 0, None, None, 0
        if callable(progress):
            self.call = progress
        elif progress:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, desc="xai.ray", unit="file")
            except ImportError:
                self.call = self._line

    def _line(self, done, total):
        if done * 10 // max(total, 1) > self.shown or done == total:
            self.shown = done * 10 // max(total, 1)
            print(f"xai.ray: {done}/{total} files", file=sys.stderr, flush=True)

    def add(self, n: int):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.call is not None:
            self.call(self.done, self.total)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _run(kind, batches, model, device, precision, request, workers, cpus_per_worker, retries, results, out, summary, progress, total):
    size = min(_pool_size(workers, device, cpus_per_worker), len(batches))
    options = {"num_cpus": cpus_per_worker, "num_gpus": 1 if device == "gpu" else 0, "max_restarts": -1,
               "max_task_retries": retries}
    remote = ray.remote(**options)(XAIWorker)
    pool_started = time.time()
    actors = [remote.remote(model, device, precision) for _ in range(size)]
    # Every actor opens the model before any image runs: an unreadable model fails here, naming the node.
    try:
        summary["workers"] = ray.get([a.describe.remote() for a in actors])
        summary["pool_seconds"] = time.time() - pool_started
    except ray.exceptions.RayError as e:
        for a in actors:
            ray.kill(a, no_restart=True)
        lines = [line.strip() for line in str(e).splitlines() if "on node" in line or "from node" in line]
        reason = lines[-1].split("Error: ", 1)[-1] if lines else str(e)
        raise (xai.FileError if "not readable" in reason else xai.XAIError)(f"a worker could not open the model: {reason}") from None
    bar = _Progress(progress, total)
    queue = list(reversed(batches))
    running = {}
    failures_path = os.path.join(out, "failures.jsonl")

    def submit(actor):
        files, stems, methods = queue.pop()
        running[actor.run.remote(kind, files, stems, methods, request)] = (actor, files, stems, methods)

    try:
        with open(results, "a", encoding="utf-8") as sink:
            for actor in actors:
                for _ in range(2):  # one batch running, one waiting: the actor never idles between batches
                    if queue:
                        submit(actor)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                actor, files, stems, methods = running.pop(ready[0])
                try:
                    answer = ray.get(ready[0])
                except ray.exceptions.RayError as e:
                    if len(files) > 1:
                        # Ray ran it `retries` times: split it, so a file that kills its worker fails alone.
                        queue.extend(([f], [s], methods) for f, s in zip(reversed(files), reversed(stems)))
                    else:
                        _fail(failures_path, summary, files[0], methods, f"its worker failed {retries + 1} times: {type(e).__name__}: {e}")
                        bar.add(1)
                else:
                    if answer["records"]:
                        sink.write("\n".join(answer["records"]) + "\n")
                        sink.flush()
                    summary["written"] += len(answer["records"])
                    summary["memory"].append({"pid": answer["pid"], "files": bar.done + len(files), "rss_kb": answer["rss_kb"],
                                              "finished": answer["finished"]})
                    for failure in answer["failures"]:
                        _fail(failures_path, summary, None, methods, failure)
                    bar.add(len(files))
                if queue:
                    submit(actor)
    finally:
        bar.close()
        for a in actors:
            ray.kill(a, no_restart=True)


def _work_text(work) -> str:
    """"gradcam,ig" for methods; "gradcam (deletion+insertion)" for methods with their metrics."""
    return ",".join(w if isinstance(w, str) else f"{w[0]} ({'+'.join(w[1])})" for w in work)


def _fail(path, summary, image, work, error):
    summary["failures"].append(error if image is None else f"{image} {_work_text(work)}: {error}")
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"image": image, "work": _work_text(work), "error": error}, sort_keys=True) + "\n")


def _write_parquet(out: str, results: str) -> Optional[str]:
    """out/parquet/: one row per image x method (the latest line of each), its record's fields and its map."""
    import numpy as np
    latest = _latest(results, ("image", "method"))
    if not latest:
        return None
    rows = [{"image": r["image"], "stem": r["stem"], "method": r["method"], "target": r["target"], "label": r.get("label"),
             "score": r["score"], "seconds": r["seconds"], "record": json.dumps(r, sort_keys=True)} for r in latest.values()]

    def with_maps(batch):
        maps = [np.load(os.path.join(out, stem, f"{method}.npy")) for stem, method in zip(batch["stem"], batch["method"])]
        batch["height"] = np.array([m.shape[0] for m in maps], dtype=np.int64)
        batch["width"] = np.array([m.shape[1] for m in maps], dtype=np.int64)
        batch["map"] = np.array([m.ravel() for m in maps], dtype=object)
        return batch

    target = os.path.abspath(os.path.join(out, "parquet"))
    if os.path.exists(target):
        import shutil
        shutil.rmtree(target)
    ray.data.from_items(rows).map_batches(with_maps, batch_format="numpy").write_parquet(target)
    return target


def _knob(text: str):
    name, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--knob {text}: expected name=value")
    try:
        return name.replace("-", "_"), json.loads(value)
    except ValueError:
        return name.replace("-", "_"), value


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m xai.ray", description="Explain images on a Ray cluster with the outputs of `xai explain`.")
    parser.add_argument("model", help="An ONNX file every node can read, or a zoo model name.")
    parser.add_argument("inputs", nargs="+", help="Images, folders (recursive) or .txt manifests.")
    parser.add_argument("--method", default="gradcam", help="Comma-separated methods, or all.")
    parser.add_argument("--out", default="xai-out", help="Output folder on storage every node sees.")
    parser.add_argument("--address", default=None, help="Ray address: auto (the cluster this machine is part of) or ray://head:10001 (default: RAY_ADDRESS, else a new local instance).")
    parser.add_argument("--workers", type=int, default=None, help="Actors (default: one per GPU with --device gpu, else one per CPU).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="gpu: one GPU per actor.")
    parser.add_argument("--fast", action="store_true", help="Winograd for forward-only passes (oneDNN's where the CPU offers it, maps within about 3e-3; F(2x2, 3x3) or F(4x4, 3x3) per layer on OpenCL).")
    parser.add_argument("--precision", choices=["exact", "fp32", "fast", "tf32", "3xtf32"],
                        help="exact (fp32, the default), fast (as --fast), tf32 or 3xtf32 (GEMMs on an NVIDIA GPU's tensor cores; elsewhere fp32).")
    parser.add_argument("--batch-size", type=int, default=16, help="Files per task.")
    parser.add_argument("--save", default="raw,png,html", help="Any of raw, png, html.")
    parser.add_argument("--overwrite", action="store_true", help="Redo what results.jsonl already records.")
    parser.add_argument("--target", type=int, default=None, help="A class index (default: each image's top-1).")
    parser.add_argument("--format", default="files", choices=["files", "parquet"], help="parquet: also OUT/parquet/.")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="A method or metric knob, e.g. --knob steps=32 (repeatable).")
    parser.add_argument("--evaluate", default=None, metavar="METRICS",
                        help="Then score the maps with these metrics (comma-separated, or all) into OUT/metrics.jsonl, as xai evaluate.")
    parser.add_argument("--ground-truth", default=None, help="A folder of masks <stem>.png or .npy for the localisation metrics.")
    parser.add_argument("--quiet", action="store_true", help="No progress.")
    args = parser.parse_args(argv)
    knobs = dict(_knob(k) for k in args.knob)
    common = dict(address=args.address, workers=args.workers, device=args.device, precision=args.precision or ("fast" if args.fast else "exact"),
                  batch_size=args.batch_size, overwrite=args.overwrite, target=args.target, progress=not args.quiet)
    try:
        xai._engine_knobs(knobs, ("methods", "metrics"))  # every knob is some registry's, or an error naming it
        method_names = xai._knob_names("methods")
        summary = explain(args.inputs, args.model, args.method, args.out, save=args.save, format=args.format, **common,
                          **{k: v for k, v in knobs.items() if k in method_names or k in method_names.values()})
        scores = None
        if args.evaluate:
            scores = evaluate(args.inputs, args.model, args.method, args.evaluate, args.out, masks=args.ground_truth, **common, **knobs)
    except xai.XAIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if summary["report"]:
        print(f"report: {summary['report']}")
    if summary["parquet"]:
        print(f"parquet: {summary['parquet']}")
    print(f"{summary['written']} maps written, {summary['skipped']} already there, {len(summary['failures'])} failed, "
          f"{summary['seconds']:.1f} s on {len(summary['workers'])} workers")
    for f in summary["failures"]:
        print(f"  {f}", file=sys.stderr)
    if scores is not None:
        print(f"{scores['written']} scores written, {scores['skipped']} already there, {len(scores['failures'])} failed")
        for row in scores["scores"]:
            print(f"  {row['method']:<14} {row['metric']:<24} {row['mean']:.4f} +- {row['standard_error']:.4f} ({row['count']})")
        for f in scores["failures"]:
            print(f"  {f}", file=sys.stderr)
        return 1 if summary["failures"] or scores["failures"] else 0
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
