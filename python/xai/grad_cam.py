"""pytorch-grad-cam-shaped adapters: change `from pytorch_grad_cam import GradCAM` to
`from xai.grad_cam import GradCAM`.

`GradCAM(model, target_layers=[name])` takes an `xai.Model` (or a path / zoo name) and activation
names of the ONNX graph (`model.cam_layers`; empty or None: the last 4-D activation before global
pooling). Calling it as `cam(input_tensor, targets=None)` returns pytorch-grad-cam's `[N, H, W]`
float32 maps: ReLU, resized to the input (bilinear, half-pixel centres) and min-max scaled per
image. `targets` are None (top-1), ints, or objects with `.category` (ClassifierOutputTarget).
GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, GradCAMElementWise, EigenCAM, EigenGradCAM,
FEM, KPCA_CAM, FinerCAM, ShapleyCAM, AblationCAM, FullGrad and ScoreCAM.
EigenCAM's and EigenGradCAM's projection sign is fixed so that its largest magnitude is positive
(pytorch-grad-cam leaves it to LAPACK, so a map of theirs may come out negated and clipped away).
aug_smooth, eigen_smooth and reshape_transform are refused; one target layer only.
"""
from __future__ import annotations

import numpy as np

from . import InvalidArgumentError, Model, _as_batch
from .captum import _model


class _BaseCAM:
    method = ""
    knobs: dict = {}

    def __init__(self, model, target_layers=None, reshape_transform=None):
        self.model: Model = _model(model)
        if reshape_transform is not None:
            raise InvalidArgumentError("reshape_transform: not taken: xai lays token and channels-last layers out from their shapes "
                                       "(class tokens dropped, the rest on the input's grid, as the usual transform does); leave it out")
        layers = list(target_layers or [])
        if len(layers) > 1:
            raise InvalidArgumentError("target_layers: xai explains one layer per call; name one")
        if layers and not isinstance(layers[0], str):
            raise InvalidArgumentError("target_layers: name an activation of the ONNX graph (model.cam_layers), not a torch module")
        self.layer = layers[0] if layers else None

    def __call__(self, input_tensor, targets=None, aug_smooth: bool = False, eigen_smooth: bool = False) -> np.ndarray:
        if aug_smooth or eigen_smooth:
            raise InvalidArgumentError("aug_smooth / eigen_smooth: not supported")
        classes = None
        if targets is not None:
            classes = [int(getattr(t, "category", t)) for t in targets]
        knobs = dict(self.knobs)
        if self.layer:
            knobs["layer"] = self.layer
        maps = self.model.explain(_as_batch(input_tensor), self.method, target=classes, progress=False, **knobs).maps
        low = maps.min(axis=(1, 2), keepdims=True)
        shifted = maps - low
        return (shifted / (1e-7 + shifted.max(axis=(1, 2), keepdims=True))).astype(np.float32)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class GradCAM(_BaseCAM):
    method = "gradcam"


class GradCAMPlusPlus(_BaseCAM):
    method = "gradcampp"


class XGradCAM(_BaseCAM):
    method = "xgradcam"


class LayerCAM(_BaseCAM):
    method = "layercam"


class HiResCAM(_BaseCAM):
    method = "hirescam"


class GradCAMElementWise(_BaseCAM):
    method = "gradcamelementwise"


class EigenCAM(_BaseCAM):
    method = "eigencam"


class FEM(_BaseCAM):
    """The k-sigma rule's channel weights (`k`, pytorch-grad-cam's default 2); no gradient."""

    method = "fem"

    def __init__(self, model, target_layers=None, reshape_transform=None, k: float = 2):
        super().__init__(model, target_layers, reshape_transform)
        self.knobs = {"fem_sigmas": float(k)}


class FinerCAM(_BaseCAM):
    """Grad-CAM of the target's logit against the three classes whose logits are closest to it
    (pytorch-grad-cam's comparison places 1, 2, 3), softmax-weighted; `alpha` as its call takes it.
    As pytorch-grad-cam's: `target_idx` explains that class in every image with the comparison,
    no targets the top-1 class, and given `targets` (classes or ClassifierOutputTarget) are used as
    they are, which is plain Grad-CAM of those classes. Its FinerWeightedTarget objects are not
    taken: pass target_idx."""

    method = "finercam"

    def __init__(self, model, target_layers=None, reshape_transform=None, base_method=None):
        super().__init__(model, target_layers, reshape_transform)
        if base_method is not None and getattr(base_method, "__name__", "") != "GradCAM":
            raise InvalidArgumentError("base_method: xai's Finer-CAM explains its score with Grad-CAM only")

    def __call__(self, input_tensor, targets=None, eigen_smooth: bool = False, alpha: float = 1, comparison_categories=None,
                 target_idx=None) -> np.ndarray:
        if comparison_categories is not None and list(comparison_categories) != [1, 2, 3]:
            raise InvalidArgumentError("comparison_categories: only pytorch-grad-cam's default (1, 2, 3) is supported")
        if targets is not None and target_idx is None:
            if any(hasattr(t, "comparison_categories") for t in targets):
                raise InvalidArgumentError("targets: FinerWeightedTarget is not taken; pass target_idx (the comparison classes are then chosen as pytorch-grad-cam chooses them)")
            # pytorch-grad-cam's FinerCAM uses given targets as they are: Grad-CAM of those classes.
            self.method, self.knobs = "gradcam", {}
            try:
                return super().__call__(input_tensor, targets=targets, eigen_smooth=eigen_smooth)
            finally:
                self.method = "finercam"
        if target_idx is not None:
            targets = [int(target_idx)] * _as_batch(input_tensor).shape[0]
        self.knobs = {"finer_alpha": float(alpha)}
        return super().__call__(input_tensor, targets=targets, eigen_smooth=eigen_smooth)


class ShapleyCAM(_BaseCAM):
    """Grad-CAM weighted by the gradient minus half the Hessian-vector product of the score. The
    targets pick the score as pytorch-grad-cam's target objects do: ClassifierOutputReST the logit
    minus the cross-entropy (the paper's), ClassifierOutputSoftmaxTarget the probability, and
    ClassifierOutputTarget, ints or None (pytorch-grad-cam's default) the logit, whose Hessian
    vanishes along a piecewise-linear head (Grad-CAM's map). One kind of target per call."""

    method = "shapleycam"
    _scores = {"ClassifierOutputReST": "rest", "ClassifierOutputSoftmaxTarget": "probability", "ClassifierOutputTarget": "logit"}

    def __call__(self, input_tensor, targets=None, aug_smooth: bool = False, eigen_smooth: bool = False) -> np.ndarray:
        scores = set()
        for t in targets or []:
            kind = type(t).__name__
            if isinstance(t, (int, np.integer)):
                scores.add("logit")
            elif kind in self._scores:
                scores.add(self._scores[kind])
            else:
                raise InvalidArgumentError(f"targets: {kind} is not taken; use ClassifierOutputReST, ClassifierOutputSoftmaxTarget, "
                                           "ClassifierOutputTarget or class indices")
        if len(scores) > 1:
            raise InvalidArgumentError("targets: one kind of target per call (" + ", ".join(sorted(scores)) + " given)")
        self.knobs = {"shapley_score": scores.pop() if scores else "logit"}
        return super().__call__(input_tensor, targets=targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)


class KPCA_CAM(_BaseCAM):  # noqa: N801 (pytorch-grad-cam's name)
    """Kernel PCA of the layer's activations (scikit-learn's kernels: sigmoid, rbf, poly, linear,
    cosine; `gamma` None: 1 / channels); in float64, where pytorch-grad-cam's runs in float32."""

    method = "kpcacam"

    def __init__(self, model, target_layers=None, reshape_transform=None, kernel: str = "sigmoid", gamma=None):
        super().__init__(model, target_layers, reshape_transform)
        self.knobs = {"kpca_kernel": kernel}
        if gamma is not None:
            self.knobs["kpca_gamma"] = float(gamma)


class EigenGradCAM(_BaseCAM):
    method = "eigengradcam"


class AblationCAM(_BaseCAM):
    """Each channel of the layer ablated in turn; only the layers after it run again.
    `batch_size` (pytorch-grad-cam's keyword) does not change the maps: accepted and left to the
    engine. pytorch-grad-cam's ablation layers (`AblationLayer`, and `AblationLayerVit` for token
    or channels-last layers: xai lays the layer out from its shape and ablates a channel at every
    position either way) and ratio_channels_to_ablate=1.0 only. Below a layer's minimum of 0 xai
    ablates to that minimum minus 1e7 as pytorch-grad-cam does at batch_size=1 (with larger batches
    pytorch-grad-cam takes each later copy 1e7 further down, so its maps change with batch_size);
    `model.explain(x, "ablationcam", ablation="zero")` ablates to 0 instead."""

    method = "ablationcam"

    def __init__(self, model, target_layers=None, reshape_transform=None, ablation_layer=None, batch_size: int = 32,
                 ratio_channels_to_ablate: float = 1.0):
        super().__init__(model, target_layers, reshape_transform)
        if ablation_layer is not None and type(ablation_layer).__name__ not in ("AblationLayer", "AblationLayerVit"):
            raise InvalidArgumentError(f"ablation_layer: xai ablates as pytorch-grad-cam's AblationLayer and AblationLayerVit; "
                                       f"{type(ablation_layer).__name__} is not supported")
        if ratio_channels_to_ablate != 1.0:
            raise InvalidArgumentError(f"ratio_channels_to_ablate: {ratio_channels_to_ablate!r} is not supported (only 1.0: every channel)")
        self.batch_size = batch_size


class FullGrad(_BaseCAM):
    """Every biased layer's |bias x gradient| and |input x gradient|; `target_layers` is ignored, as
    pytorch-grad-cam ignores it."""

    method = "fullgrad"

    def __init__(self, model, target_layers=None, reshape_transform=None):
        super().__init__(model, None, reshape_transform)


class ScoreCAM(_BaseCAM):
    """One masked forward per channel of the layer; `batch_size` (pytorch-grad-cam's attribute)
    does not change the maps, so it is accepted and left to the engine."""

    method = "scorecam"
    batch_size = 128
