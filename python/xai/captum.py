"""Captum-shaped adapters: change `from captum.attr import X` to `from xai.captum import X`.

Each class takes an `xai.Model` (or a model path / zoo name) where Captum takes the forward
function, and `attribute` takes Captum's keywords. Keywords the engine cannot honour are refused by
name (`InvalidArgumentError`), never silently ignored. Inputs may be numpy arrays or torch tensors;
outputs are numpy arrays, or torch tensors when the input was one.

Supported keywords (others raise):
- Saliency.attribute(inputs, target=None, abs=True, additional_forward_args=None)
- InputXGradient.attribute(inputs, target=None, additional_forward_args=None)
- IntegratedGradients(model, multiply_by_inputs=True).attribute(inputs, baselines=None, target=None,
  additional_forward_args=None, n_steps=50, method="gausslegendre", internal_batch_size=None,
  return_convergence_delta=False); baselines: None, 0, or one image [C, H, W] / [1, C, H, W]
- NoiseTunnel(Saliency(model)).attribute(inputs, nt_type="smoothgrad", nt_samples=5,
  nt_samples_batch_size=None, stdevs=1.0, draw_baseline_from_distrib=False, target=None,
  abs=True, seed=0): abs=True (Saliency's default) averages |gradient|, abs=False the gradient
- Occlusion.attribute(inputs, sliding_window_shapes, strides=None, baselines=None, target=None,
  additional_forward_args=None, perturbations_per_eval=1, show_progress=False): windows covering
  every channel, square (C, k, k) with square strides
- GuidedBackprop / Deconvolution.attribute(inputs, target=None, additional_forward_args=None): every
  Relu node of the ONNX graph takes the modified rule (Captum overrides nn.ReLU modules: the same
  wherever the model's rectifiers are nn.ReLU modules, as torchvision's are)
- GuidedGradCam(model, layer).attribute(inputs, target=None, additional_forward_args=None,
  interpolate_mode="nearest", attribute_to_layer_input=False)
- GradientShap(model, multiply_by_inputs=True).attribute(inputs, baselines, n_samples=5, stdevs=0.0,
  target=None, additional_forward_args=None, return_convergence_delta=False, seed=0): baselines
  [K, C, H, W] (drawn from), one image, or a number; xai draws its own points (seeded), so the
  values differ from Captum's draws while the expectation is the same
- DeepLift(model, multiply_by_inputs=True, eps=1e-10).attribute(inputs, baselines=None, target=None,
  additional_forward_args=None, return_convergence_delta=False, custom_attribution_func=None); the
  rescale rule on every elementwise nonlinearity and Captum's max-pool rule (windows that share a
  maximum add their shares); a nonlinear op with no rule (a product of activations, softmax) is
  refused with its node named
- DeepLiftShap(model, multiply_by_inputs=True).attribute(inputs, baselines, target=None,
  additional_forward_args=None, return_convergence_delta=False, custom_attribution_func=None):
  baselines [K, C, H, W]
- LRP(model).attribute(inputs, target=None, additional_forward_args=None,
  return_convergence_delta=False, verbose=False): Captum's default rules, epsilon 1e-9 on every
  convolution, pooling and dense layer and ReLU passing relevance (xai's `lrp --composite epsilon`);
  batch norms that follow a convolution are folded into it (Captum gives them a rule of their own,
  so on such models the two differ); the delta is the relevance's sum minus the target logit
- LayerGradCam(model, layer).attribute(inputs, target=None, additional_forward_args=None,
  attribute_to_layer_input=False, relu_attributions=False, attr_dim_summation=True); `layer` is
  the name of an activation of the ONNX graph (`model.cam_layers`)
- Lime / KernelShap.attribute(inputs, target=None, additional_forward_args=None, feature_mask=None,
  n_samples=..., perturbations_per_eval=1, return_input_shape=True, show_progress=False,
  baselines=None): feature_mask None means SLIC superpixels (Captum would use every input scalar);
  Lime is lime_image's ridge fit on a cosine kernel, not Captum's default Lasso

Baselines are None or 0, a number (every value), or one image [C, H, W] / [1, C, H, W] for every
input; they, and feature masks, go to the engine as arrays. perturbations_per_eval and
internal_batch_size only set how much the engine evaluates at once, never the answer: the
engine's batching is the same for every value, so Captum's default of 1 runs at full speed.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from . import InvalidArgumentError, Model, _as_batch


def _model(forward_func) -> Model:
    if isinstance(forward_func, Model):
        return forward_func
    if isinstance(forward_func, (str, os.PathLike)):
        return Model(str(forward_func))
    raise InvalidArgumentError("forward_func: xai adapters take an xai.Model (or an ONNX path or zoo name), not a torch module: "
                               "export it with torch.onnx.export first")


def _like(result: np.ndarray, inputs: Any):
    """A torch tensor when the input was one, else the numpy array."""
    if hasattr(inputs, "detach"):
        import torch
        return torch.from_numpy(np.ascontiguousarray(result)).to(inputs.device)
    return result


def _batch_size(name: str, value) -> None:
    """Captum's batching arguments: checked as Captum checks them, then left to the engine, whose
    answer does not depend on them."""
    if value is not None and (not float(value).is_integer() or int(value) < 1):
        raise InvalidArgumentError(f"{name}: {value!r} must be a positive integer")


def _refuse(name: str, value: Any, allowed: Any = None, why: str = "") -> None:
    if value is not allowed and value != allowed:
        raise InvalidArgumentError(f"{name}: {value!r} is not supported by xai's adapter" + (f" ({why})" if why else f" (only {allowed!r})"))


def _targets(target) -> Optional[list]:
    if target is None:
        return None
    if hasattr(target, "detach"):
        target = target.detach().cpu().numpy()
    t = np.atleast_1d(np.asarray(target))
    if t.dtype.kind not in "iu" or t.ndim != 1:
        raise InvalidArgumentError(f"target: {target!r} is not a class index or one index per image (tuples of output indices are not supported)")
    return [int(v) for v in t]


def _single(inputs):
    if isinstance(inputs, tuple):
        if len(inputs) != 1:
            raise InvalidArgumentError("inputs: xai explains one image input; got a tuple of several")
        return inputs[0]
    return inputs


class _Attribution:
    def __init__(self, forward_func):
        self.model = _model(forward_func)
        self.forward_func = self.model

    def _explain(self, inputs, method, target, **knobs):
        return self.model.explain(_as_batch(_single(inputs)), method, target=_targets(target), progress=False, **knobs)


class Saliency(_Attribution):
    def attribute(self, inputs, target=None, abs: bool = True, additional_forward_args=None):
        _refuse("additional_forward_args", additional_forward_args, None)
        raw = self._explain(inputs, "saliency", target).raw
        return _like(np.abs(raw) if abs else raw, _single(inputs))


class InputXGradient(_Attribution):
    def attribute(self, inputs, target=None, additional_forward_args=None):
        _refuse("additional_forward_args", additional_forward_args, None)
        return _like(self._explain(inputs, "inputxgrad", target).raw, _single(inputs))


_RULES = {"gausslegendre": "gausslegendre", "riemann_left": "left", "riemann_right": "right", "riemann_middle": "middle",
          "riemann_trapezoid": "trapezoid"}


def _baseline(baselines, shape) -> Optional[np.ndarray]:
    """Captum's baselines as the engine's: None for zero, else one image [C, H, W] for every input."""
    if baselines is None:
        return None
    if np.isscalar(baselines) or (hasattr(baselines, "ndim") and baselines.ndim == 0):
        value = float(baselines)
        return None if value == 0 else np.full(tuple(shape[1:]), value, dtype=np.float32)
    b = np.asarray(baselines.detach().cpu().numpy() if hasattr(baselines, "detach") else baselines, dtype=np.float32)
    if b.ndim == 4 and b.shape[0] == 1:
        b = b[0]
    if b.shape != tuple(shape[1:]):
        raise InvalidArgumentError(f"baselines: xai takes a number or one image {tuple(shape[1:])} for every input; got shape {b.shape}")
    return np.ascontiguousarray(b)


class IntegratedGradients(_Attribution):
    def __init__(self, forward_func, multiply_by_inputs: bool = True):
        super().__init__(forward_func)
        _refuse("multiply_by_inputs", multiply_by_inputs, True)

    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, n_steps: int = 50,
                  method: str = "gausslegendre", internal_batch_size: Optional[int] = None, return_convergence_delta: bool = False):
        _refuse("additional_forward_args", additional_forward_args, None)
        if method not in _RULES:
            raise InvalidArgumentError(f"method: {method!r} is none of {', '.join(_RULES)}")
        x = _as_batch(_single(inputs))
        _batch_size("internal_batch_size", internal_batch_size)
        e = self._explain(x, "ig", target, baseline=_baseline(baselines, x.shape), steps=int(n_steps), rule=_RULES[method])
        raw = e.raw
        if method == "riemann_trapezoid":
            # Captum's trapezoid weights sum to (n - 1) / n; xai's to 1.
            raw = raw * (n_steps - 1) / n_steps
        result = _like(raw, _single(inputs))
        if not return_convergence_delta:
            return result
        delta = raw.reshape(raw.shape[0], -1).sum(axis=1, dtype=np.float64) - e.diagnostics["outputDifference"]
        return result, _like(delta.astype(np.float32), _single(inputs))


class NoiseTunnel:
    def __init__(self, attribution_method):
        if not isinstance(attribution_method, Saliency):
            raise InvalidArgumentError("attribution_method: xai's NoiseTunnel wraps xai.captum.Saliency (SmoothGrad)")
        self.attribution_method = attribution_method

    def attribute(self, inputs, nt_type: str = "smoothgrad", nt_samples: int = 5, nt_samples_batch_size: Optional[int] = None,
                  stdevs: float = 1.0, draw_baseline_from_distrib: bool = False, target=None, abs: bool = True, seed: int = 0):
        _refuse("nt_type", nt_type, "smoothgrad")
        _refuse("draw_baseline_from_distrib", draw_baseline_from_distrib, False)
        _batch_size("nt_samples_batch_size", nt_samples_batch_size)
        x = _as_batch(_single(inputs))
        targets = _targets(target)
        parts = []
        for b in range(x.shape[0]):
            # Captum's stdevs is absolute; xai's noise is a fraction of each image's value range.
            span = float(x[b].max() - x[b].min())
            knobs = {"samples": int(nt_samples), "noise": float(stdevs) / span if span > 0 else 0.0, "seed": int(seed), "absolute": bool(abs)}
            t = None if targets is None else [targets[0] if len(targets) == 1 else targets[b]]
            parts.append(self.attribution_method.model.explain(x[b:b + 1], "smoothgrad", target=t, progress=False, **knobs).raw)
        return _like(np.concatenate(parts), _single(inputs))


def _window(shape, name) -> int:
    dims = (shape,) if np.isscalar(shape) else tuple(shape)
    if len(dims) == 3 and dims[1] == dims[2]:
        return int(dims[1])
    raise InvalidArgumentError(f"{name}: xai slides square windows over every channel, (C, k, k); got {shape!r}")


class Occlusion(_Attribution):
    def attribute(self, inputs, sliding_window_shapes, strides=None, baselines=None, target=None, additional_forward_args=None,
                  perturbations_per_eval: int = 1, show_progress: bool = False):
        _refuse("additional_forward_args", additional_forward_args, None)
        _batch_size("perturbations_per_eval", perturbations_per_eval)
        x = _as_batch(_single(inputs))
        if len(sliding_window_shapes) != 3 or sliding_window_shapes[0] != x.shape[1]:
            raise InvalidArgumentError(f"sliding_window_shapes: xai's windows cover every channel, ({x.shape[1]}, k, k); got {sliding_window_shapes!r}")
        window = _window(sliding_window_shapes, "sliding_window_shapes")
        stride = 1 if strides is None else (int(strides) if np.isscalar(strides) else _window(strides, "strides"))
        e = self.model.explain(x, "occlusion", target=_targets(target), progress=bool(show_progress), window=window, stride=stride,
                               baseline=_baseline(baselines, x.shape))
        return _like(np.repeat(e.maps[:, None], x.shape[1], axis=1), _single(inputs))


class LayerGradCam(_Attribution):
    def __init__(self, forward_func, layer: str, device_ids=None):
        super().__init__(forward_func)
        if not isinstance(layer, str):
            raise InvalidArgumentError("layer: name an activation of the ONNX graph (model.cam_layers lists them), not a torch module")
        self.layer = layer

    def attribute(self, inputs, target=None, additional_forward_args=None, attribute_to_layer_input: bool = False,
                  relu_attributions: bool = False, attr_dim_summation: bool = True):
        _refuse("additional_forward_args", additional_forward_args, None)
        _refuse("attribute_to_layer_input", attribute_to_layer_input, False)
        _refuse("attr_dim_summation", attr_dim_summation, True)
        raw = self._explain(inputs, "gradcam", target, layer=self.layer, relu=bool(relu_attributions)).raw
        return _like(raw[:, None], _single(inputs))


class GuidedBackprop(_Attribution):
    method = "guidedbackprop"

    def attribute(self, inputs, target=None, additional_forward_args=None):
        _refuse("additional_forward_args", additional_forward_args, None)
        return _like(self._explain(inputs, self.method, target).raw, _single(inputs))


class Deconvolution(GuidedBackprop):
    method = "deconvolution"


class GuidedGradCam(_Attribution):
    def __init__(self, forward_func, layer: str, device_ids=None):
        super().__init__(forward_func)
        if not isinstance(layer, str):
            raise InvalidArgumentError("layer: name an activation of the ONNX graph (model.cam_layers lists them), not a torch module")
        self.layer = layer

    def attribute(self, inputs, target=None, additional_forward_args=None, interpolate_mode: str = "nearest",
                  attribute_to_layer_input: bool = False):
        _refuse("additional_forward_args", additional_forward_args, None)
        _refuse("interpolate_mode", interpolate_mode, "nearest")
        _refuse("attribute_to_layer_input", attribute_to_layer_input, False)
        return _like(self._explain(inputs, "guidedgradcam", target, layer=self.layer).raw, _single(inputs))


class GradientShap(_Attribution):
    def __init__(self, forward_func, multiply_by_inputs: bool = True):
        super().__init__(forward_func)
        _refuse("multiply_by_inputs", multiply_by_inputs, True)

    def attribute(self, inputs, baselines, n_samples: int = 5, stdevs: float = 0.0, target=None, additional_forward_args=None,
                  return_convergence_delta: bool = False, seed: int = 0):
        _refuse("additional_forward_args", additional_forward_args, None)
        _refuse("return_convergence_delta", return_convergence_delta, False)
        if callable(baselines):
            raise InvalidArgumentError("baselines: xai takes the baselines as an array [K, C, H, W], one image or a number, not a function")
        if np.isscalar(stdevs) is False:
            raise InvalidArgumentError(f"stdevs: one standard deviation for every input; got {stdevs!r}")
        x = _as_batch(_single(inputs))
        b = np.asarray(baselines.detach().cpu().numpy() if hasattr(baselines, "detach") else baselines, dtype=np.float32)
        if b.ndim == 4 and b.shape[1:] == x.shape[1:]:
            baseline = np.ascontiguousarray(b)
        else:
            baseline = _baseline(baselines, x.shape)
        e = self._explain(x, "gradientshap", target, baseline=baseline, samples=int(n_samples), stdevs=float(stdevs), seed=int(seed))
        return _like(e.raw, _single(inputs))


class DeepLift(_Attribution):
    method = "deeplift"

    def __init__(self, forward_func, multiply_by_inputs: bool = True, eps: float = 1e-10):
        super().__init__(forward_func)
        _refuse("multiply_by_inputs", multiply_by_inputs, True)
        _refuse("eps", eps, 1e-10)

    def _baselines(self, baselines, x):
        if baselines is None:
            return None
        b = np.asarray(baselines.detach().cpu().numpy() if hasattr(baselines, "detach") else baselines, dtype=np.float32)
        if self.method == "deepliftshap" and b.ndim == 4 and b.shape[1:] == x.shape[1:]:
            return np.ascontiguousarray(b)
        if b.ndim == 4 and b.shape == x.shape and x.shape[0] > 1 and (b == b[:1]).all():
            b = b[:1]  # Captum's baselines expanded to the batch: one image for all
        return _baseline(b, x.shape)

    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, return_convergence_delta: bool = False,
                  custom_attribution_func=None):
        _refuse("additional_forward_args", additional_forward_args, None)
        _refuse("custom_attribution_func", custom_attribution_func, None)
        x = _as_batch(_single(inputs))
        e = self._explain(x, self.method, target, baseline=self._baselines(baselines, x))
        result = _like(e.raw, _single(inputs))
        if not return_convergence_delta:
            return result
        return result, _like(np.asarray(e.diagnostics["completenessDelta"], dtype=np.float32), _single(inputs))


class DeepLiftShap(DeepLift):
    method = "deepliftshap"

    def __init__(self, forward_func, multiply_by_inputs: bool = True):
        super().__init__(forward_func, multiply_by_inputs)

    def attribute(self, inputs, baselines, target=None, additional_forward_args=None, return_convergence_delta: bool = False,
                  custom_attribution_func=None):
        return super().attribute(inputs, baselines, target, additional_forward_args, return_convergence_delta, custom_attribution_func)


class LRP(_Attribution):
    def attribute(self, inputs, target=None, additional_forward_args=None, return_convergence_delta: bool = False,
                  verbose: bool = False):
        _refuse("additional_forward_args", additional_forward_args, None)
        e = self._explain(inputs, "lrp", target, composite="epsilon", epsilon=1e-9)
        result = _like(e.raw, _single(inputs))
        if not return_convergence_delta:
            return result
        delta = np.asarray(e.diagnostics["relevanceSum"], dtype=np.float32) - e.scores
        return result, _like(delta, _single(inputs))


class _Coalitions(_Attribution):
    method = ""
    default_samples = 0

    def attribute(self, inputs, target=None, additional_forward_args=None, feature_mask=None, n_samples: Optional[int] = None,
                  perturbations_per_eval: int = 1, return_input_shape: bool = True, show_progress: bool = False, baselines=None):
        _refuse("additional_forward_args", additional_forward_args, None)
        _batch_size("perturbations_per_eval", perturbations_per_eval)
        x = _as_batch(_single(inputs))
        baseline = _baseline(baselines, x.shape)
        targets = _targets(target)
        samples = self.default_samples if n_samples is None else int(n_samples)
        masks = None
        if feature_mask is not None:
            m = np.asarray(feature_mask.detach().cpu().numpy() if hasattr(feature_mask, "detach") else feature_mask)
            if m.ndim == 4:
                if not (m == m[:, :1]).all():
                    raise InvalidArgumentError("feature_mask: xai's features are pixels with all their channels; the channels' masks differ")
                m = m[:, 0]
            if m.ndim == 2:
                m = m[None]
            if m.ndim != 3 or m.shape[1:] != x.shape[2:] or m.shape[0] not in (1, x.shape[0]):
                raise InvalidArgumentError(f"feature_mask: needs one label per pixel, [N or 1, (C,) {x.shape[2]}, {x.shape[3]}]; got shape {np.shape(feature_mask)}")
            masks = m
        maps, raws = [], []
        for b in range(x.shape[0]):
            t = None if targets is None else [targets[0] if len(targets) == 1 else targets[b]]
            mask = None if masks is None else masks[0 if masks.shape[0] == 1 else b].astype(np.float32)
            e = self.model.explain(x[b:b + 1], self.method, target=t, progress=bool(show_progress), samples=samples, baseline=baseline,
                                   feature_mask=mask)
            maps.append(e.maps)
            raws.append(e.raw)
        if return_input_shape:
            return _like(np.repeat(np.concatenate(maps)[:, None], x.shape[1], axis=1), _single(inputs))
        if len({r.shape for r in raws}) != 1:
            raise InvalidArgumentError("return_input_shape: False needs the same number of features in every image")
        return _like(np.concatenate(raws), _single(inputs))


class Lime(_Coalitions):
    method = "lime"
    default_samples = 50

    def __init__(self, forward_func, interpretable_model=None, similarity_func=None, perturb_func=None):
        super().__init__(forward_func)
        for name, value in (("interpretable_model", interpretable_model), ("similarity_func", similarity_func), ("perturb_func", perturb_func)):
            _refuse(name, value, None, "xai's LIME is lime_image's ridge fit on a cosine kernel")


class KernelShap(_Coalitions):
    method = "kernelshap"
    default_samples = 25
