"""xai: explanations of image classifiers (saliency, Integrated Gradients, the CAM family,
occlusion, LIME, KernelSHAP, RISE, ...) on the xai engine, from Python.

    import xai
    with xai.Model("resnet50.onnx", device="cpu") as model:
        x = xai.preprocess(["cat.jpg"], model)           # float32 [N, 3, H, W]
        e = model.explain(x, "ig", steps=32)              # knobs by name, snake_case
        e.maps                                            # numpy [N, H, W]
        s = model.evaluate(x, method="ig", metrics=["deletion", "sensitivity_max"], steps=32)
        s["deletion"].scores                              # numpy [N]

`xai.methods()` and `xai.metrics()` list every method and metric with its knobs, defaults and
ranges (knob names there are the engine's camelCase; Python takes them in snake_case:
`until_stable`, `feature_mask`, `sensitivity_radius`). Adapters shaped like Captum and
pytorch-grad-cam live in `xai.captum` and `xai.grad_cam`.
"""
from __future__ import annotations

import ctypes
import functools
import json
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import (CancelledError, DeviceError, FileError, InternalError, InvalidArgumentError, OutOfMemoryError,
                      UnsupportedError, XAIError)

__all__ = ["Model", "Explanation", "Evaluation", "Score", "preprocess", "overlay", "devices", "methods", "metrics", "version",
           "list_inputs", "write_report", "XAIError",
           "InvalidArgumentError",
           "FileError", "UnsupportedError", "DeviceError", "OutOfMemoryError", "CancelledError", "InternalError"]

lib = _native.lib


def version() -> str:
    """The engine's version."""
    return lib.xai_version_string().decode()


__version__ = version()


def devices() -> list:
    """The CPU and every OpenCL device, each with the `device` string that selects it."""
    return _native.take_json(lib.xai_devices_json)["devices"]


def methods() -> dict:
    """Every method by name: its summary and knobs (type, default, range, choices)."""
    return {m["name"]: m for m in _native.take_json(lib.xai_methods_json)["methods"]}


def metrics() -> dict:
    """Every metric by name: its summary, direction ("higher" or "lower" is better), whether it needs
    ground-truth masks or re-runs the method, and its knobs."""
    return {m["name"]: m for m in _native.take_json(lib.xai_metrics_json)["metrics"]}


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


@functools.lru_cache(maxsize=None)
def _knob_names(kind: str) -> dict:
    """Python's knob names (snake_case) to the engine's, for "methods" or "metrics"; read from the
    registry, so a new knob needs nothing here."""
    listing = _native.take_json(lib.xai_methods_json if kind == "methods" else lib.xai_metrics_json)
    return {_snake(k["name"]): k["name"] for k in listing["knobs"]}


def _plain(value):
    """numpy scalars as the Python numbers JSON takes."""
    return value.item() if isinstance(value, np.generic) else value


def _engine_knobs(knobs: dict, kinds=("methods",), stacklevel: int = 3) -> tuple:
    """Splits keyword knobs by registry and names them as the engine does: snake_case, or the
    engine's camelCase with a DeprecationWarning. A knob both registries know (seed) goes to both."""
    split = tuple({} for _ in kinds)
    for key, value in knobs.items():
        found = False
        for names, out in zip((_knob_names(k) for k in kinds), split):
            if key in names:
                out[names[key]] = _plain(value)
                found = True
            elif key in names.values():
                warnings.warn(f"{key}=: Python takes knob names in snake_case; write {_snake(key)}=", DeprecationWarning, stacklevel=stacklevel)
                out[key] = _plain(value)
                found = True
        if not found:
            known = sorted(set().union(*(_knob_names(k) for k in kinds)))
            raise InvalidArgumentError(f"{key}: not a knob (knobs: {', '.join(known)})")
    return split


def _view(a: Optional[np.ndarray]):
    """An xai_tensor_view of a float32 C-ordered array (kept alive by the caller), or None."""
    if a is None:
        return None
    return _native.TensorView(a.ctypes.data_as(_native.c_float_p), _shape(a), a.ndim)


def _float_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def _as_batch(x: Any) -> np.ndarray:
    """A float32, C-ordered [N, C, H, W] copy-free view where possible (torch tensors through numpy)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3:
        a = a[None]
    return np.ascontiguousarray(a)


def _shape(a: np.ndarray):
    return (ctypes.c_int64 * a.ndim)(*a.shape)


class _Result:
    """A result handle: named tensors copied out as numpy arrays, and its metadata."""

    def __init__(self, handle: ctypes.c_void_p):
        self.handle = handle

    def tensor(self, name: str) -> Optional[np.ndarray]:
        data, shape, rank = _native.c_float_p(), _native.c_int64_p(), ctypes.c_size_t()
        _native.check(lib.xai_result_tensor(self.handle, name.encode(), ctypes.byref(data), ctypes.byref(shape), ctypes.byref(rank)))
        if not data:
            return None
        dims = tuple(shape[i] for i in range(rank.value))
        return np.ctypeslib.as_array(data, shape=dims).copy()

    def meta(self) -> dict:
        return _native.take_json(lib.xai_result_meta_json, self.handle)

    def __del__(self):
        if getattr(self, "handle", None):
            lib.xai_result_free(self.handle)
            self.handle = None


@dataclass
class Explanation:
    """What `Model.explain` returns (numpy arrays)."""

    method: str
    maps: np.ndarray
    """[N, H, W] at the model's input size."""
    raw: Optional[np.ndarray]
    """The method's own tensor: input gradients [N, 3, H, W], a CAM at layer resolution [N, h, w], segment weights [N, S]..."""
    segments: Optional[np.ndarray]
    """The superpixel label map [N, H, W] of LIME and KernelSHAP."""
    targets: np.ndarray
    scores: np.ndarray
    """The model's logit of each explained class."""
    diagnostics: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)
    seconds: float = 0.0
    provenance: dict = field(default_factory=dict)
    """What computed it: engine version, device, precision, the algorithms' rule, the host."""


@dataclass
class Score:
    """One metric's scores over a batch (numpy; NaN where undefined for an image)."""

    name: str
    direction: str
    """"higher" or "lower" is better."""
    scores: np.ndarray
    mean: float
    standard_error: float
    count: int
    """Images whose score is defined."""
    settings: dict = field(default_factory=dict)
    curves: Optional[list] = None
    """Deletion and insertion: each image's curve."""
    seconds: float = 0.0


@dataclass
class Evaluation:
    """What `Model.evaluate` returns: a Score per metric (also by `evaluation["deletion"]`), the maps scored and the
    classes they explain."""

    scores: dict
    maps: np.ndarray
    targets: np.ndarray
    method: Optional[str] = None

    def __getitem__(self, name: str) -> Score:
        return self.scores[name]


def _progress_callback(progress, method: str):
    """The C callback for `progress`: True draws a tqdm bar when tqdm is installed, a callable
    gets (done, total) and cancels by returning True; exceptions cancel too."""
    if progress is None or progress is False:
        return _native.PROGRESS(), None
    bar = None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _native.PROGRESS(), None
        bar = tqdm(total=1, desc=method, leave=False)
        state = {"failed": None}

        def draw(done, total):
            bar.total = max(int(total), 1)
            bar.n = int(done)
            bar.refresh()
            return 0
    else:
        state = {"failed": None}

        def draw(done, total):
            return 1 if progress(int(done), int(total)) else 0

    def trampoline(done, total, _user):
        try:
            return draw(done, total)
        except BaseException as e:  # noqa: BLE001 - reported after the call returns
            state["failed"] = e
            return 1
    callback = _native.PROGRESS(trampoline)
    callback.state = state
    callback.bar = bar
    return callback, state


class Model:
    """An ONNX file or a zoo model name on a device ("cpu", "gpu", "gpu:N"). A `model.json` beside
    `model.onnx` gives preprocessing and labels. Use it as a context manager, or call `close()`.
    One Model is used by one thread at a time; separate Models run in parallel threads."""

    def __init__(self, model: str, device: str = "cpu", precision: str = "exact"):
        """`precision`: "exact" (or "fp32": direct convolutions everywhere, the same bits every run), "fast" (forward-only
        passes may use Winograd where the CPU offers it: about 15 % faster perturbation methods, maps within about 3e-3),
        "tf32" (every GEMM on TF32 tensor cores, PyTorch's default for convolutions) or "3xtf32" (tensor cores at
        fp32-class accuracy); the last two on NVIDIA GPUs through OpenCL, elsewhere fp32 (`provenance` says which ran)."""
        handle = ctypes.c_void_p()
        options = json.dumps({"precision": str(precision)}).encode()
        _native.check(lib.xai_model_open2(str(model).encode(), str(device).encode(), options, ctypes.byref(handle)))
        self._handle = handle
        self.path = str(model)
        self.info = _native.take_json(lib.xai_model_info_json, self._handle)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.info["inputShape"])

    @property
    def labels(self) -> Optional[list]:
        return self.info["labels"]

    @property
    def cam_layers(self) -> list:
        return self.info["camLayers"]

    @property
    def classes(self) -> int:
        return self.info["classes"]

    @property
    def device(self) -> str:
        return self.info["device"]

    @property
    def provenance(self) -> dict:
        """Engine version, device, precision, the algorithms' rule and the host: recorded with every result."""
        return self.info["provenance"]

    def _live(self):
        if not self._handle:
            raise InvalidArgumentError("model: this Model is closed")
        return self._handle

    def predict(self, x) -> np.ndarray:
        """Logits [N, classes] of a batch [N, 3, H, W] (or one image [3, H, W])."""
        a = _as_batch(x)
        out = np.empty((a.shape[0] if a.ndim else 0, self.classes), dtype=np.float32)
        _native.check(lib.xai_predict(self._live(), a.ctypes.data_as(_native.c_float_p), _shape(a), a.ndim,
                                      out.ctypes.data_as(_native.c_float_p), out.size))
        return out

    def _options(self, method: str, n: int, target, progress, baseline, feature_mask, knobs: dict, keep: list):
        """The xai_explain_options of a call; `keep` holds what must outlive it."""
        if target is None:
            targets = None
        else:
            t = np.atleast_1d(np.asarray(target))
            if t.dtype.kind not in "iu":
                raise InvalidArgumentError(f"target: {target!r} is not a class index or a list of them")
            targets = np.ascontiguousarray(t.astype(np.int64))
        knobs = dict(knobs)
        views = {}
        for name, value, knob in (("baseline", baseline, "baseline"), ("feature_mask", feature_mask, "featureMask")):
            if value is None:
                continue
            if isinstance(value, str) or hasattr(value, "__fspath__"):
                knobs[knob] = str(value)  # a named baseline ("blur") or a file
                continue
            array = _float_array(value)
            keep.append(array)
            views[name] = _native.TensorView(array.ctypes.data_as(_native.c_float_p), _shape(array), array.ndim)
            keep.append(views[name])
        knob_json = json.dumps(knobs).encode() if knobs else None
        callback, state = _progress_callback(progress, method)
        keep += [targets, knob_json, callback]
        options = _native.ExplainOptions(targets.ctypes.data_as(_native.c_int64_p) if targets is not None else None,
                                         0 if targets is None else targets.size, knob_json,
                                         ctypes.pointer(views["baseline"]) if "baseline" in views else None,
                                         ctypes.pointer(views["feature_mask"]) if "feature_mask" in views else None, callback, None)
        return options, callback, state

    @staticmethod
    def _finish(status: int, state):
        if state and state["failed"] is not None:
            raise state["failed"]  # the callback's own exception (Ctrl-C included) cancelled the call
        _native.check(status)

    def explain(self, x, method: str = "gradcam", target: Union[None, int, Sequence[int]] = None, progress: Any = True,
                baseline=None, feature_mask=None, **knobs) -> Explanation:
        """Explains a batch with `method`; knobs by name in snake_case (`steps=32`, `rule="middle"`, `samples=500`,
        `until_stable=0.9`, `seed=1`, ...; `xai.methods()` lists them). `target`: None (each image's top-1), a class for
        every image, or one class per image. `baseline`: a knob value ("zero", "black", "mean", "blur", "noise", a .npy
        path) or an array [3, H, W] / [1, 3, H, W]. `feature_mask`: superpixels as an array of integer ids [H, W] or
        [N, H, W] (or a .npy / PNG path) for LIME and KernelSHAP. `progress`: True (a tqdm bar if tqdm is installed),
        False, or a callable (done, total) -> cancel?"""
        a = _as_batch(x)
        (engine,) = _engine_knobs(knobs)
        keep = [a]
        view = _view(a)
        options, callback, state = self._options(method, a.shape[0], target, progress, baseline, feature_mask, engine, keep)
        result = ctypes.c_void_p()
        try:
            status = lib.xai_explain2(self._live(), method.encode(), ctypes.byref(view), ctypes.byref(options), ctypes.byref(result))
        finally:
            self._finish_bar(callback)
        self._finish(status, state)
        r = _Result(result)
        meta = r.meta()
        return Explanation(method=meta["method"], maps=r.tensor("map"), raw=r.tensor("raw"), segments=r.tensor("segments"),
                           targets=np.asarray(meta["targets"], dtype=np.int64),
                           scores=np.asarray([np.nan if s is None else s for s in meta["scores"]], dtype=np.float32),
                           diagnostics={k: np.asarray([np.nan if v is None else v for v in vs]) for k, vs in meta["diagnostics"].items()},
                           parameters=meta["parameters"], labels=meta["labels"], seconds=meta["seconds"],
                           provenance=meta.get("provenance", {}))

    @staticmethod
    def _finish_bar(callback):
        if getattr(callback, "bar", None) is not None:
            callback.bar.close()

    def evaluate(self, x, maps=None, method: Optional[str] = None, metrics: Union[str, Sequence[str]] = ("deletion", "insertion"),
                 target: Union[None, int, Sequence[int]] = None, masks=None, progress: Any = False, baseline=None, feature_mask=None,
                 **knobs) -> "Evaluation":
        """Scores explanations of a batch [N, 3, H, W] with `metrics` (names, or "all"; `xai.metrics()` lists them).
        `maps` [N, H, W] are the maps to score; None explains the images with `method` first. `method` is also what the
        metrics that re-explain (completeness, sensitivity_*, local_lipschitz, relative_*_stability, random_logit*, mprt, smooth_mprt,
        efficient_mprt, input_invariance) run again, with the
        same knobs, baseline and feature mask. `masks` [N, H, W] (non-zero inside the object) are the ground truth of
        the localisation metrics. Knobs in snake_case, the method's (`steps=8`) and the metrics' (`step=512`,
        `sensitivity_samples=5`) alike; `seed` goes to both."""
        a = _as_batch(x)
        method_knobs, metric_knobs = _engine_knobs(knobs, ("methods", "metrics"))
        names = metrics if isinstance(metrics, str) else ",".join(metrics)
        keep = [a]
        view = _view(a)
        given = None if maps is None else _float_array(maps)
        truth = None if masks is None else _float_array(masks)
        keep += [given, truth]
        map_view, mask_view = _view(given), _view(truth)
        explain, callback, state = self._options(method or "evaluate", a.shape[0], target, progress, baseline, feature_mask, method_knobs, keep)
        metric_json = json.dumps(metric_knobs).encode() if metric_knobs else None
        keep += [map_view, mask_view, metric_json]
        options = _native.EvaluateOptions(method.encode() if method else None, ctypes.pointer(map_view) if map_view is not None else None,
                                          ctypes.pointer(mask_view) if mask_view is not None else None, metric_json, explain)
        result = ctypes.c_void_p()
        try:
            status = lib.xai_evaluate(self._live(), names.encode(), ctypes.byref(view), ctypes.byref(options), ctypes.byref(result))
        finally:
            self._finish_bar(callback)
        self._finish(status, state)
        r = _Result(result)
        meta = r.meta()

        def floats(values):
            return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
        scores = {m["name"]: Score(name=m["name"], direction=m["direction"], scores=floats(m["scores"]),
                                   mean=np.nan if m.get("mean") is None else m["mean"],
                                   standard_error=np.nan if m.get("standardError") is None else m["standardError"], count=m["count"],
                                   settings=m["settings"], curves=None if m.get("curves") is None else [floats(c) for c in m["curves"]],
                                   seconds=m["seconds"]) for m in meta["metrics"]}
        return Evaluation(scores=scores, maps=r.tensor("map"), targets=np.asarray(meta["targets"], dtype=np.int64), method=meta.get("method"))

    def explain_files(self, inputs=None, out: str = "xai-out", method: Union[str, Sequence[str]] = "gradcam", *, files=None,
                      target: Optional[int] = None, save: Union[str, Sequence[str]] = ("raw", "png", "html"), overwrite: bool = False,
                      image_batch: int = 8, results: Optional[str] = None, colormap: Optional[str] = None, sign: Optional[str] = None,
                      alpha: Optional[float] = None, percentile: Optional[float] = None, shard: Optional[str] = None,
                      progress: Any = False, **knobs) -> dict:
        """What `xai explain MODEL INPUTS --out OUT` writes, with this open model: per image and method
        `OUT/<stem>/<method>.npy` (and `.raw.npy`, the overlay `.png`), one line in `OUT/results.jsonl`
        (or `results`), the report `OUT/index.html` when `save` holds "html". `inputs`: files, folders,
        `.txt` manifests (with `shard="i/n"`); or `files`: paths, or (path, stem) pairs naming each
        output folder. What is already written is skipped unless `overwrite`. A bad image or method
        fails alone: it is listed in the summary's "failures", and the run goes on. Returns
        {"written", "skipped", "failures", "warnings", "seconds", "report"} ("warnings": maps
        written whose pixels all have one value, each with what to try). `progress`: False, True
        (a tqdm bar), or a callable (files done, files in all) -> cancel?"""
        request = _files_request(inputs, files, out, method, target, results)
        request.update({"save": save if isinstance(save, str) else list(save), "overwrite": bool(overwrite), "imageBatch": int(image_batch),
                        "modelName": self.path})
        if shard is not None:
            request["shard"] = str(shard)
        style = {k: _plain(v) for k, v in (("colormap", colormap), ("sign", sign), ("alpha", alpha), ("percentile", percentile)) if v is not None}
        if style:
            request["style"] = style
        (engine,) = _engine_knobs(knobs)
        if engine:
            request["knobs"] = engine
        return self._files_call(lib.xai_explain_files, request, progress, "explain files")

    def evaluate_files(self, inputs=None, out: str = "xai-out", method: Union[str, Sequence[str]] = "gradcam",
                       metrics: Union[str, Sequence[str]] = ("deletion", "insertion"), *, files=None, masks: Optional[str] = None,
                       target: Optional[int] = None, results: Optional[str] = None, report: bool = True, progress: Any = False,
                       **knobs) -> dict:
        """What `xai evaluate MODEL INPUTS --out OUT` does, with this open model: for each image and method the map in
        `OUT/<stem>/<method>.npy` (made and written there where there is none), then each metric; one line per image x
        method x metric in `OUT/metrics.jsonl` (or `results`), and the report with the scores when `report`. `inputs` or
        `files` as `explain_files`; `masks`: a folder of ground-truth masks `<stem>.png` / `<stem>.npy`. Knobs in
        snake_case, the method's and the metrics' alike (`seed` goes to both). Returns {"scores": [{"method", "metric",
        "scores"}], "failures", "report"}."""
        request = _files_request(inputs, files, out, method, target, results)
        request["metrics"] = metrics if isinstance(metrics, str) else list(metrics)
        request["report"] = bool(report)
        if masks is not None:
            request["masks"] = str(masks)
        method_knobs, metric_knobs = _engine_knobs(knobs, ("methods", "metrics"))
        if method_knobs:
            request["knobs"] = method_knobs
        if metric_knobs:
            request["metricKnobs"] = metric_knobs
        summary = self._files_call(lib.xai_evaluate_files, request, progress, "evaluate files")
        for s in summary["scores"]:
            s["scores"] = [np.nan if v is None else v for v in s["scores"]]
        return summary

    def _files_call(self, function, request: dict, progress, what: str) -> dict:
        callback, state = _progress_callback(progress, what)
        out_json = ctypes.c_void_p()
        try:
            status = function(self._live(), json.dumps(request).encode(), callback, None, ctypes.byref(out_json))
        finally:
            self._finish_bar(callback)
        self._finish(status, state)
        try:
            return json.loads(ctypes.string_at(out_json.value).decode("utf-8"))
        finally:
            lib.xai_string_free(out_json)

    def preprocess(self, paths, preset: Optional[str] = None, resize: Optional[int] = None) -> np.ndarray:
        """`xai.preprocess(paths, self, ...)`: pictures or `.npy` tensors as this model's input [N, 3, H, W]."""
        return preprocess(paths, self, preset=preset, resize=resize)

    def close(self):
        if getattr(self, "_handle", None):
            lib.xai_model_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"xai.Model({self.info.get('source')!r}, device={self.device!r}, input_shape={self.input_shape})"


def preprocess(paths: Union[str, Sequence[str]], model: Model, preset: Optional[str] = None, resize: Optional[int] = None) -> np.ndarray:
    """Pictures (PNG, JPEG) or preprocessed `.npy` tensors as the model's input [N, 3, H, W], exactly as
    `xai explain` prepares them (resize, centre crop, normalisation from the model's sidecar or ImageNet's)."""
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        paths = [paths]
    encoded = [str(p).encode() for p in paths]
    array = (ctypes.c_char_p * len(encoded))(*encoded)
    options = {k: v for k, v in (("preset", preset), ("resize", resize)) if v is not None}
    result = ctypes.c_void_p()
    _native.check(lib.xai_preprocess(model._live(), array, len(encoded), json.dumps(options).encode() if options else None,
                                     ctypes.byref(result)))
    return _Result(result).tensor("input")


def overlay(rgb, attribution, colormap: Optional[str] = None, sign: str = "auto", alpha: float = 0.5, percentile: float = 99,
            method: Optional[str] = None) -> np.ndarray:
    """A map drawn over a picture as `xai explain` draws it (like pytorch-grad-cam's show_cam_on_image):
    rgb uint8 [H, W, 3]; the map [h, w] covers the whole picture; returns uint8 [H, W, 3]. With
    `method` named, sign "auto" draws pixel-level gradient maps (saliency, inputxgrad, smoothgrad,
    ig) as magnitude, as `xai explain` does."""
    picture = np.ascontiguousarray(np.asarray(rgb), dtype=np.uint8)
    m = np.ascontiguousarray(np.asarray(attribution, dtype=np.float32))
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise InvalidArgumentError(f"rgb: needs [H, W, 3] bytes, got shape {picture.shape}")
    if m.ndim != 2:
        raise InvalidArgumentError(f"map: needs [h, w], got shape {m.shape}")
    style = {"sign": sign, "alpha": alpha, "percentile": percentile}
    if method is not None:
        specs = methods()
        if method not in specs:
            raise InvalidArgumentError(f"method: '{method}' is none of {', '.join(specs)}")
        style["detail"] = specs[method].get("detail", "region")
    if colormap is not None:
        style["colormap"] = colormap
    out = np.empty_like(picture)
    u8 = ctypes.POINTER(ctypes.c_uint8)
    _native.check(lib.xai_overlay(picture.ctypes.data_as(u8), picture.shape[0], picture.shape[1], m.ctypes.data_as(_native.c_float_p),
                                  m.shape[0], m.shape[1], json.dumps(style).encode(), out.ctypes.data_as(u8)))
    return out


def _files_request(inputs, files, out, method, target, results) -> dict:
    """What the requests over files share: the output folder, the methods, and inputs or files (paths or (path, stem))."""
    request = {"out": str(out), "methods": method if isinstance(method, str) else ",".join(method)}
    if files is not None:
        if inputs is not None:
            raise InvalidArgumentError("inputs: give inputs or files, not both")
        pairs = [(f, None) if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__") else tuple(f) for f in files]
        request["files"] = [str(p) for p, _ in pairs]
        if any(stem is not None for _, stem in pairs):
            if any(stem is None for _, stem in pairs):
                raise InvalidArgumentError("files: name a stem for every file or for none")
            request["stems"] = [str(stem) for _, stem in pairs]
    else:
        if inputs is None:
            raise InvalidArgumentError("inputs: give inputs (files, folders, manifests) or files")
        request["inputs"] = [str(inputs)] if isinstance(inputs, (str, bytes)) or hasattr(inputs, "__fspath__") else [str(i) for i in inputs]
    if target is not None:
        request["target"] = _plain(target)
    if results is not None:
        request["results"] = str(results)
    return request


def list_inputs(inputs: Union[str, Sequence[str]], shard: Optional[str] = None) -> list:
    """The files `xai explain` would explain for these inputs (files, folders searched recursively, `.txt`
    manifests; `shard="i/n"` keeps every n-th from the i-th), in its order, each with the output folder
    one `xai explain` run gives it: [(path, stem)]."""
    if isinstance(inputs, (str, bytes)) or hasattr(inputs, "__fspath__"):
        inputs = [inputs]
    encoded = [str(i).encode() for i in inputs]
    array = (ctypes.c_char_p * len(encoded))(*encoded)
    listing = _native.take_json(lib.xai_list_inputs, array, len(encoded), None if shard is None else str(shard).encode())
    return list(zip(listing["files"], listing["stems"]))


def write_report(folder: str) -> str:
    """Writes `folder/index.html` from its `results.jsonl` (and `metrics.jsonl`), as `xai explain` does at the end of a
    run; returns its path."""
    out = ctypes.c_void_p()
    _native.check(lib.xai_write_report(str(folder).encode(), ctypes.byref(out)))
    try:
        return ctypes.string_at(out.value).decode("utf-8")
    finally:
        lib.xai_string_free(out)
