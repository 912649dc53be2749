#!/usr/bin/env python3
"""Quantus 0.6 and Captum 0.9 timed on the rows of `xai-bench metrics`, on the same machine.

The model is torchvision's ResNet-50 (random weights, seed 0: timing does not depend on them), the
image uniform noise in [-2, 2] like xai-bench's, the map Captum's LayerGradCam at layer4 upsampled
to 224x224. torch uses its default threads (every core). Rows (key, what xai row it stands beside):

- quantus_pixel_flipping (deletion): `PixelFlipping(features_in_step=224, perturb_baseline="black")`,
  224 steps each one forward, Quantus's deletion curve.
- quantus_faithfulness_correlation: `FaithfulnessCorrelation(nr_runs=100, subset_size=224)`, 101 forwards.
- quantus_region_perturbation (region_perturbation): `RegionPerturbation(patch_size=8,
  regions_evaluation=100, order="morf", perturb_baseline="black")`, 101 forwards.
- quantus_selectivity (selectivity): `Selectivity(patch_size=8, perturb_baseline="black")`, one forward
  per patch (784 at 224x224).
- quantus_faithfulness_estimate (faithfulness_estimate): `FaithfulnessEstimate(features_in_step=784)`:
  Quantus requires the step to divide H*W but steps over the C*H*W input elements, so 784 gives
  192 groups and 193 forwards (xai's default: 224 groups, 225 forwards; compare per forward).
  Quantus 0.6.0's IROF is not timed: it fails on a 3-channel input (its mask has one channel).
- captum_infidelity: `infidelity(normalize=True)`, 10 Gaussian perturbations (sigma 0.1), one batch.
- captum_sensitivity_max_ig / quantus_max_sensitivity_ig: Captum's `sensitivity_max` (10 copies,
  radius 0.02, one example per batch) and Quantus's `MaxSensitivity(nr_samples=10, lower_bound=0.02)`
  around Captum's IntegratedGradients with --ig-steps steps.
- captum_sensitivity_max_lime / quantus_max_sensitivity_lime: the same around Captum's Lime with
  --lime-samples samples on SLIC superpixels, 64 perturbations per forward (as the peer table).
- quantus_monotonicity_correlation (monotonicity_correlation): `MonotonicityCorrelation(nr_samples=10,
  features_in_step=784)`: as for FaithfulnessEstimate, the step must divide H*W but groups input
  elements, so 192 groups, each filled 10 times: 1921 forwards, one copy per forward (xai's
  default: 224 groups, 2241 forwards; compare per forward).
- quantus_relative_input_stability_saliency / quantus_relative_output_stability_saliency
  (relative_input_stability_saliency): Quantus's `RelativeInputStability` and
  `RelativeOutputStability(nr_samples=--stability-samples)` at their default noise [0.02, 0.2]
  around Captum's Saliency; each runs alone (xai's row scores RIS, ROS and RRS from one set of copies).
- quantus_efficient_mprt_saliency (efficient_mprt_saliency): Quantus's `EfficientMPRT` (its
  defaults: 100 bins, every module re-initialised by `reset_parameters`) around Captum's Saliency of
  the model it is handed: it explains the original model and the fully randomised one (xai explains
  the randomised one: the original's map is the one given).
- quantus_smooth_mprt_saliency (smooth_mprt_saliency): Quantus's `SmoothMPRT(nr_samples=--mprt-samples,
  layer_order="bottom_up")` around Quantus's own Saliency (SmoothMPRT calls `quantus.explain`), its
  layer generator filtered to the models after the same share of layers as xai's 5 stages, so both
  explain 5 randomised models; Quantus smooths the original model's maps twice (once for `a_batch`,
  once for its "original" row), xai once: 7 x and 6 x --mprt-samples explanations.
- quantus_continuity_saliency (continuity_saliency): Quantus's `Continuity` at its defaults (28
  translations, each re-explained) around Captum's Saliency: 29 explanations and 28 forwards (its
  prediction check); xai skips the shift 0 (at 224 it is the 14th: -224 + 14 x 16), so 28
  explanations. Quantus's `NonSensitivity` is not timed: its features are single input
  elements, 150,528 forwards per image at 224x224.
- gradcam_road (road): pytorch-grad-cam's `ROADCombined` (percentiles 10..90, its noisy linear
  imputation by scipy's spsolve, `ClassifierOutputSoftmaxTarget`) on the map min-max scaled to [0, 1].

Rows whose library is missing (quantus, pytorch-grad-cam) are left out.

    python Benchmarks/metrics_vs_peers.py --json OUT/metric_peers.json   # a venv with quantus==0.6.0, captum, torchvision
    .build/release/xai-bench metrics --compare OUT/metric_peers.json
"""
import argparse
import json
import platform
import statistics
import time

import numpy as np

# Quantus 0.6.0 calls np.trapz, which numpy 2.4 removed; np.trapezoid is the same function renamed.
if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid
import torch
import torchvision


def timed(fn, repeats, warmup):
    """Median-ready times of `repeats` calls, after one untimed call when `warmup` (slow rows, like
    xai-bench's over 300 forward-equivalents, run once without)."""
    result = fn() if warmup else None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", required=True)
    parser.add_argument("--ig-steps", type=int, default=50)
    parser.add_argument("--lime-samples", type=int, default=100)
    parser.add_argument("--stability-samples", type=int, default=50)
    parser.add_argument("--mprt-samples", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", default="all")
    args = parser.parse_args()

    import captum
    try:
        import quantus
    except ImportError:
        quantus = None
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.metrics.road import ROADCombined
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    except ImportError:
        pytorch_grad_cam = None
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Lime, Saliency
    from captum.metrics import infidelity, sensitivity_max
    from skimage.segmentation import slic
    from scipy.ndimage import gaussian_filter

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.from_numpy(np.random.default_rng(3).uniform(-2, 2, (1, 3, 224, 224)).astype(np.float32))
    with torch.no_grad():
        target = int(model(x).argmax(1))
    y = np.array([target])
    cam = LayerGradCam(model, model.layer4)
    a = LayerAttribution.interpolate(cam.attribute(x, target=target), (224, 224), interpolate_mode="bilinear").detach()
    a_np = a.numpy()  # [1, 1, 224, 224]
    smooth = gaussian_filter(x[0].numpy().transpose(1, 2, 0), sigma=(6, 6, 0))
    segments = torch.from_numpy(slic(smooth, n_segments=70, compactness=10, start_label=0, channel_axis=-1)).long()[None, None]

    ig = IntegratedGradients(model)
    saliency = Saliency(model)

    def explain_saliency(inputs, target=None, **kwargs):
        return saliency.attribute(inputs, target=target)
    lime = Lime(model)

    def explain_ig(inputs, target=None, **kwargs):
        return ig.attribute(inputs, target=target, baselines=0, n_steps=args.ig_steps)

    def explain_lime(inputs, target=None, **kwargs):
        # Captum's sensitivity_max passes (and takes back) a tuple; Lime takes one image batch.
        batch = inputs[0] if isinstance(inputs, tuple) else inputs
        attribution = lime.attribute(batch, target=target, feature_mask=segments.expand(batch.shape[0], 1, 224, 224), baselines=0,
                                     n_samples=args.lime_samples, perturbations_per_eval=64)
        return (attribution,) if isinstance(inputs, tuple) else attribution

    def quantus_explain(fn):
        def explain(model, inputs, targets, **kwargs):
            t = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
            return fn(t, target=torch.as_tensor(targets)).detach().numpy()
        return explain

    rows = []

    def save():
        with open(args.json, "w") as f:
            json.dump({"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                       "captum": captum.__version__, "quantus": quantus.__version__ if quantus else None,
                       "grad_cam": "installed" if pytorch_grad_cam else None, "model": "resnet50", "results": rows}, f, indent=1)

    def row(key, library, settings, fn, repeats):
        if args.rows != "all" and key not in args.rows.split(","):
            return
        if {"quantus": quantus, "pytorch-grad-cam": pytorch_grad_cam}.get(library, True) is None:
            print(f"{key}: {library} is not installed, left out", flush=True)
            return
        times, value = timed(fn, repeats, warmup=repeats > 1)
        rows.append({"key": key, "library": library, "settings": settings, "median_s": statistics.median(times), "times_s": times,
                     "value": float(np.nanmean(np.asarray(value, dtype=np.float64)))})
        print(f"{key}: {statistics.median(times):.3f} s ({settings})", flush=True)
        save()  # after every row, so a failure later keeps the rows done

    common = dict(model=model, x_batch=x.numpy(), y_batch=y, a_batch=a_np, channel_first=True, device="cpu")
    row("quantus_pixel_flipping", "quantus", "PixelFlipping features_in_step=224, baseline black, 224 forwards",
        lambda: quantus.PixelFlipping(features_in_step=224, perturb_baseline="black", normalise=False, disable_warnings=True)(**common), 1)
    row("quantus_faithfulness_correlation", "quantus", "FaithfulnessCorrelation nr_runs=100, subset_size=224",
        lambda: quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, normalise=False, return_aggregate=False, disable_warnings=True)(**common),
        args.repeat)

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.1
        return noise, inputs - noise
    attributions = a.expand(1, 3, 224, 224) / 3
    row("captum_infidelity", "captum", "infidelity normalize=True, 10 Gaussian perturbations sigma 0.1",
        lambda: infidelity(model, perturb, x, attributions, target=target, n_perturb_samples=10, normalize=True), args.repeat)

    row("captum_sensitivity_max_ig", "captum", f"sensitivity_max of IntegratedGradients n_steps={args.ig_steps}, 10 copies, radius 0.02",
        lambda: sensitivity_max(explain_ig, x, target=target, n_perturb_samples=10, perturb_radius=0.02, max_examples_per_batch=1), 1)
    row("quantus_max_sensitivity_ig", "quantus", f"MaxSensitivity of IntegratedGradients n_steps={args.ig_steps}, nr_samples=10, lower_bound=0.02",
        lambda: quantus.MaxSensitivity(nr_samples=10, lower_bound=0.02, disable_warnings=True)(
            **dict(common, a_batch=None), explain_func=quantus_explain(explain_ig)), 1)
    row("captum_sensitivity_max_lime", "captum", f"sensitivity_max of Lime n_samples={args.lime_samples}, SLIC, 10 copies, radius 0.02",
        lambda: sensitivity_max(explain_lime, x, target=target, n_perturb_samples=10, perturb_radius=0.02, max_examples_per_batch=1), 1)
    row("quantus_max_sensitivity_lime", "quantus", f"MaxSensitivity of Lime n_samples={args.lime_samples}, SLIC, nr_samples=10, lower_bound=0.02",
        lambda: quantus.MaxSensitivity(nr_samples=10, lower_bound=0.02, disable_warnings=True)(
            **dict(common, a_batch=None), explain_func=quantus_explain(explain_lime)), 1)

    row("quantus_region_perturbation", "quantus", "RegionPerturbation patch_size=8, regions_evaluation=100, morf, baseline black, 101 forwards",
        lambda: quantus.RegionPerturbation(patch_size=8, regions_evaluation=100, order="morf", perturb_baseline="black", normalise=False,
                                           disable_warnings=True)(**common), 1)
    row("quantus_selectivity", "quantus", "Selectivity patch_size=8, baseline black, 784 forwards",
        lambda: quantus.Selectivity(patch_size=8, perturb_baseline="black", normalise=False, disable_warnings=True)(**common), 1)
    row("quantus_faithfulness_estimate", "quantus", "FaithfulnessEstimate features_in_step=784, baseline black, 193 forwards",
        lambda: quantus.FaithfulnessEstimate(features_in_step=784, perturb_baseline="black", normalise=False, disable_warnings=True)(**common), 1)

    row("quantus_monotonicity_correlation", "quantus", "MonotonicityCorrelation nr_samples=10, features_in_step=784 (192 groups), 1921 forwards",
        lambda: quantus.MonotonicityCorrelation(nr_samples=10, features_in_step=784, disable_warnings=True)(**common), 1)
    for name, cls in (("input", "RelativeInputStability"), ("output", "RelativeOutputStability")):
        row(f"quantus_relative_{name}_stability_saliency", "quantus", f"{cls} of Saliency, nr_samples={args.stability_samples}, noise [0.02, 0.2]",
            lambda cls=cls: getattr(quantus, cls)(nr_samples=args.stability_samples, disable_warnings=True)(
                **dict(common, a_batch=None), explain_func=quantus_explain(explain_saliency)), 1)

    row("quantus_continuity_saliency", "quantus", "Continuity of Saliency, nr_steps=28, 29 explanations + 28 forwards",
        lambda: quantus.Continuity(nr_steps=28, disable_warnings=True)(**dict(common, a_batch=None), explain_func=quantus_explain(explain_saliency)), 1)

    def saliency_of(model, inputs, targets, **kwargs):
        """Saliency of the model Quantus hands over (the original or a randomised copy)."""
        t = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        return Saliency(model).attribute(t, target=torch.as_tensor(targets)).detach().numpy()

    row("quantus_efficient_mprt_saliency", "quantus", "EfficientMPRT of Saliency, 100 bins, the original and the fully randomised model",
        lambda: quantus.EfficientMPRT(disable_warnings=True)(**common, explain_func=saliency_of, softmax=True), 1)
    if quantus:
        from quantus.helpers.model import pytorch_model
        real_generator = pytorch_model.PyTorchModel.get_random_layer_generator

        def five_stages(self, order="top_down", seed=42):
            """Quantus's own cascade, yielding only the models after xai's 5 stage counts (ModelRandomisation.cut)."""
            count = self.random_layer_generator_length
            keep = {min(count, max(k + 1, -(-count * k // 4))) if k else 1 for k in range(5)}
            for index, (name, model) in enumerate(real_generator(self, order=order, seed=seed)):
                if index + 1 in keep:
                    yield name, model

        def smooth_mprt():
            pytorch_model.PyTorchModel.get_random_layer_generator = five_stages
            try:
                return quantus.SmoothMPRT(nr_samples=args.mprt_samples, layer_order="bottom_up", return_average_correlation=True,
                                          disable_warnings=True)(**dict(common, a_batch=None), explain_func=saliency_of,
                                                                 explain_func_kwargs={"method": "Saliency"})
            finally:
                pytorch_model.PyTorchModel.get_random_layer_generator = real_generator
        row("quantus_smooth_mprt_saliency", "quantus", f"SmoothMPRT of Saliency, nr_samples={args.mprt_samples}, bottom-up, 5 stages, "
            f"{7 * args.mprt_samples} explanations", smooth_mprt, 1)

    if pytorch_grad_cam:
        scaled = (a_np[:, 0] - a_np.min()) / (a_np.max() - a_np.min())
        row("gradcam_road", "pytorch-grad-cam", "ROADCombined percentiles 10..90, noise 0.01, softmax target, 18 imputations + 19 forwards",
            lambda: ROADCombined(percentiles=[10, 20, 30, 40, 50, 60, 70, 80, 90])(x, scaled, [ClassifierOutputSoftmaxTarget(target)], model), args.repeat)

    save()


if __name__ == "__main__":
    main()
