#!/usr/bin/env python3
"""Reference values for the explanation metrics (Sources/XAIMetrics), from independent code.

- deletion / insertion: the RISE authors' protocol (eclique/RISE, evaluation.py, `CausalMetric`
  and `auc`), re-implemented here in numpy with onnxruntime: score = softmax probability of the
  clean image's top-1 class, `step` pixels (all channels) changed per step from the most salient,
  both ends evaluated, area = (sum - first/2 - last/2) / (n - 1). Deletion's substrate is zero;
  insertion starts from their blur: `gkern(11, 5)` = scipy's gaussian_filter of an 11x11 impulse
  with sigma 5, applied per channel as a convolution with zero padding 5.
  One difference, on purpose: the authors order pixels with `np.flip(np.argsort(map))`, which
  breaks ties by the larger index first (and numpy's default quicksort is not stable); xai orders
  by descending value with ties by the smaller index (a stable sort). The "tied" map set checks
  xai's rule, with the order computed here as `np.argsort(-map, kind="stable")`.
- sensitivity_max: Captum 0.9.0's `sensitivity_max` (Frobenius norm relative to the
  explanation's), fed xai's own noise: the SplitMix64 stream of XAICore's `SeededGenerator`
  (`Tensor.uniform`, seed `seed + 1000003 * image + sample`) is re-implemented here, and the
  perturbation adds it (Captum's default subtracts a uniform draw: the same law). The explanation
  is a closed form, e(x) = tanh(x) * w with w drawn here, so the check is of the metric alone;
  sensitivity_avg and the local Lipschitz ratio from the same copies are computed in numpy.
- sparseness, complexity, pointing game, relevance mass, relevance rank: Quantus 0.6.0
  (`Sparseness(abs=True)`, `Complexity(abs=True)`, `PointingGame`, `RelevanceMassAccuracy`,
  `RelevanceRankAccuracy`, all with `normalise=False`). Where Quantus differs from xai: its
  pointing game has no tolerance (xai's default is 15 px at 224; compared here at tolerance 0), its
  relevance mass sums the raw map (xai: the positive part; compared here on non-negative maps);
  its relevance rank sorts with numpy's default (unstable) sort, so ties (the "tied" set) may
  differ from xai's stable order.

- faithfulness_correlation: Quantus 0.6.0's `FaithfulnessCorrelation` (Pearson, `abs=False,
  normalise=False`) on the torch twin of the fixture model (rebuilt as Tools/make_fixtures.py
  builds it; its logits are checked against onnxruntime), fed xai's subsets: Quantus draws element
  indices with `np.random.choice` over C*H*W and replaces those elements; xai removes whole pixels
  (all channels), as the paper's features and as deletion. The script replaces `np.random.choice`
  by xai's draws (SeededGenerator Fisher-Yates, re-implemented here) given as channel-0 indices,
  so Quantus's attribution sums are over the chosen pixels, and passes a `perturb_func` that sets
  every channel of those pixels to 0 (the baseline). Quantus's correlation, loop and logits are
  its own.
- infidelity: Captum 0.9.0's `infidelity(normalize=True)` with a perturb function decorated
  `multiply_by_inputs=False` that subtracts xai's Gaussian noise (SeededGenerator Box-Muller,
  re-implemented here), one draw per pixel broadcast over the channels; the attribution given to
  Captum is the map divided by the channel count on every channel, which makes Captum's
  `sum(I * attribution)` equal to xai's `sum(I * map)` exactly.
- random_logit: scikit-image's `structural_similarity` (win_size 7, data_range max - min of
  both, as Quantus's `ssim`) and scipy's `spearmanr` on pairs of maps normalised by max |map|.

Inputs: the small_resnet fixture model and its two images; maps and masks are drawn here from
numpy's default_rng (exported to the fixtures, never the reverse).
Run with quantus==0.6.0, captum==0.9.0, torch, onnxruntime, scipy (see requirements-fixtures.txt):
    python Tools/make_metric_fixtures.py
"""
import json
import os

import numpy as np
import onnxruntime as ort
import quantus
import scipy
from scipy.ndimage import correlate, gaussian_filter

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "small_resnet")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "metrics")


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def gkern(klen=11, nsig=5):
    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    return gaussian_filter(inp, nsig)


def blur(x):
    k = gkern()
    out = np.empty_like(x, dtype=np.float64)
    for c in range(x.shape[0]):
        out[c] = correlate(x[c].astype(np.float64), k, mode="constant", cval=0.0)
    return out.astype(np.float32)


def curve(session, x, order, step, mode, target):
    """One image x [3, H, W]: the RISE loop, every step's image built first and run as one batch."""
    c, h, w = x.shape
    hw = h * w
    n_steps = (hw + step - 1) // step
    if mode == "deletion":
        start, finish = x.copy(), np.zeros_like(x)
    else:
        start, finish = blur(x), x.copy()
    batch = np.empty((n_steps + 1, c, h, w), np.float32)
    flat, goal = start.reshape(c, hw), finish.reshape(c, hw)
    for i in range(n_steps + 1):
        batch[i] = flat.reshape(c, h, w)
        if i < n_steps:
            coords = order[step * i: step * (i + 1)]
            flat[:, coords] = goal[:, coords]
    probabilities = softmax(session.run(None, {"input": batch})[0].astype(np.float64))
    return probabilities[:, target]


MASK64 = (1 << 64) - 1
MAP_NAMES = ["random", "tied", "smooth", "peaked"]


def splitmix_uniform(seed, count, radius):
    """XAICore's Tensor.uniform(in: -radius...radius, seed:): SplitMix64, 24 bits per float32."""
    values = np.empty(count, np.float32)
    state = seed
    low, width = np.float32(-radius), np.float32(radius) - np.float32(-radius)
    for i in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        values[i] = low + width * (np.float32(z >> 40) * np.float32(1.0 / 16777216.0))
    return values


def sensitivity_fixture(x, rng):
    import torch
    from captum.metrics import sensitivity_max
    weights = rng.standard_normal(x.shape[1:]).astype(np.float32)
    np.save(os.path.join(OUT, "sensitivity_weights.npy"), weights)
    w = torch.from_numpy(weights)

    def explain(inputs):
        if isinstance(inputs, tuple):
            inputs = inputs[0]
        return (torch.tanh(inputs) * w,)  # Captum iterates over the explanation's tuple

    result = {"explanation": "tanh(x) * w, w = sensitivity_weights.npy", "samples": 10, "seed": 7, "cases": {}}
    n = x.shape[0]
    for radius in (0.02, 0.2):
        noise = np.stack([splitmix_uniform(7 + 1000003 * b + s, x[0].size, radius).reshape(x.shape[1:])
                          for b in range(n) for s in range(10)])

        def perturb(inputs, perturb_radius):
            return inputs + torch.from_numpy(noise)
        captum_max = sensitivity_max(explain, torch.from_numpy(x), perturb_func=perturb, perturb_radius=radius, n_perturb_samples=10)
        clean = np.tanh(x.astype(np.float64)) * weights
        noisy = np.tanh(np.repeat(x, 10, axis=0).astype(np.float64) + noise) * weights
        diff = np.linalg.norm((np.repeat(clean, 10, axis=0) - noisy).reshape(n * 10, -1), axis=1).reshape(n, 10)
        ratio = diff / np.linalg.norm(clean.reshape(n, -1), axis=1)[:, None]
        lipschitz = diff / np.linalg.norm(noise.reshape(n * 10, -1).astype(np.float64), axis=1).reshape(n, 10)
        result["cases"][str(radius)] = {"captum_sensitivity_max": [float(v) for v in captum_max], "sensitivity_max": ratio.max(axis=1).tolist(),
                                        "sensitivity_avg": ratio.mean(axis=1).tolist(), "local_lipschitz": lipschitz.max(axis=1).tolist(),
                                        "noise_first_values": noise[0].reshape(-1)[:4].tolist()}
    return result


def splitmix(seed):
    state = seed & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def xai_subset(seed, image, run, pixels, size):
    """FaithfulnessCorrelation.subset: a partial Fisher-Yates shuffle of the pixel indices."""
    g = splitmix(seed + 1000003 * image + run)
    order = list(range(pixels))
    for i in range(size):
        j = i + next(g) % (pixels - i)
        order[i], order[j] = order[j], order[i]
    return np.array(order[:size])


def xai_gaussian(seed, count, std):
    """Tensor.gaussian: SeededGenerator.nextGaussian (Box-Muller, cosine branch) times std, in float32."""
    g = splitmix(seed)
    values = np.empty(count, np.float32)
    for i in range(count):
        u1 = max(float(next(g) >> 11) * (1.0 / 9007199254740992.0), 1e-300)
        u2 = float(next(g) >> 11) * (1.0 / 9007199254740992.0)
        values[i] = np.float32(0) + np.float32(std) * np.float32(np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2))
    return values


def torch_twin():
    """The fixture model small_resnet in torch, as Tools/make_fixtures.py built it."""
    import torch
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    import make_fixtures as mf
    i = list(mf.MODELS).index("small_resnet")
    torch.manual_seed(100 + i)
    model = mf.MODELS["small_resnet"][0]().eval()
    mf.randomize(model, 200 + i)
    return model


def faithfulness_fixture(model, x, maps, targets, seed=3, runs=20, size=100):
    import torch
    n, c, h, w = x.shape
    result = {"runs": runs, "subset": size, "seed": seed, "scores": {}}
    for k, name in enumerate(MAP_NAMES):
        draws = iter([np.stack([xai_subset(seed, b, r, h * w, size) for b in range(n)]) for r in range(runs)])
        real_choice = np.random.choice
        # Quantus calls np.random.choice once per image per run, image by image.
        rows = [row for run in draws for row in run]
        calls = iter(rows)
        np.random.choice = lambda *args, **kwargs: next(calls)

        def perturb(arr, indices, **kwargs):
            out = arr.copy().reshape(arr.shape[0], c, h * w)
            for b in range(arr.shape[0]):
                out[b][:, indices[b]] = 0.0
            return out.reshape(arr.shape)
        try:
            metric = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size, abs=False, normalise=False, perturb_func=perturb,
                                                     return_aggregate=False, disable_warnings=True)
            scores = metric(model=model, x_batch=x, y_batch=targets, a_batch=maps[k][:, None], s_batch=None, channel_first=True,
                            softmax=False, device="cpu")
        finally:
            np.random.choice = real_choice
        result["scores"][name] = [float(v) for v in scores]
    return result


def infidelity_fixture(model, x, maps, targets, seed=5, samples=10, sigma=0.1):
    import torch
    from captum.metrics import infidelity, infidelity_perturb_func_decorator
    n, c, h, w = x.shape
    noise = np.stack([np.stack([xai_gaussian(seed + 1000003 * b + s, h * w, sigma).reshape(h, w) for s in range(samples)]) for b in range(n)])
    result = {"samples": samples, "sigma": sigma, "seed": seed, "noise_first_values": noise[0, 0].reshape(-1)[:4].tolist(), "scores": {}}
    for k, name in enumerate(MAP_NAMES):
        # Captum repeats each image `samples` times, image by image.
        stacked = torch.from_numpy(np.repeat(noise.reshape(n * samples, 1, h, w), c, axis=1))

        @infidelity_perturb_func_decorator(False)
        def perturb(inputs):
            return inputs - stacked
        attributions = torch.from_numpy(np.repeat(maps[k][:, None] / c, c, axis=1))
        scores = infidelity(model, perturb, torch.from_numpy(x), attributions, target=torch.from_numpy(targets),
                            n_perturb_samples=samples, normalize=True)
        result["scores"][name] = [float(v) for v in scores]
    return result


def similarity_fixture(maps):
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity
    import skimage
    result = {"skimage": skimage.__version__, "pairs": [], "ssim": [], "spearman": []}

    def normalised(a):
        top = np.abs(a).max()
        return a / top if top > 0 else a
    for i, j in [(0, 2), (2, 3), (1, 1), (3, 0)]:
        for b in range(maps.shape[1]):
            a, c = normalised(maps[i, b].astype(np.float64)), normalised(maps[j, (b + 1) % maps.shape[1]].astype(np.float64))
            data_range = float(abs(max(a.max(), c.max()) - min(a.min(), c.min())))
            result["pairs"].append([i, b, j, (b + 1) % maps.shape[1]])
            result["ssim"].append(float(structural_similarity(a, c, win_size=7, data_range=data_range)))
            result["spearman"].append(float(spearmanr(a.reshape(-1), c.reshape(-1))[0]))
    return result


def auc(arr):
    return float((arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.shape[0] - 1))


def main():
    os.makedirs(OUT, exist_ok=True)
    session = ort.InferenceSession(os.path.join(MODEL, "model.onnx"))
    x = np.load(os.path.join(MODEL, "input.npy"))
    n, _, h, w = x.shape
    targets = softmax(session.run(None, {"input": x})[0]).argmax(axis=1)
    rng = np.random.default_rng(900)
    random = rng.standard_normal((n, h, w)).astype(np.float32)
    tied = np.round(rng.uniform(0, 4, (n, h, w))).astype(np.float32)  # five values: ties everywhere
    smooth = np.stack([correlate(rng.standard_normal((h, w)), np.ones((9, 9)) / 81, mode="reflect") for _ in range(n)]).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    # A bump inside image 0's mask and outside image 1's, over weak noise: a hit and a miss.
    peaked = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0) + 0.05 * rng.standard_normal((h, w))
                       for cy, cx in [(20, 35), (8, 56)]]).astype(np.float32)
    maps = np.stack([random, tied, smooth, peaked])
    names = MAP_NAMES
    masks = np.stack([((yy >= 10) & (yy < 30) & (xx >= 20) & (xx < 50)), ((yy - 40) ** 2 + (xx - 24) ** 2 <= 12 ** 2)]).astype(np.float32)
    np.save(os.path.join(OUT, "maps.npy"), maps)
    np.save(os.path.join(OUT, "masks.npy"), masks)

    manifest = {"script": "Tools/make_metric_fixtures.py", "quantus": quantus.__version__, "onnxruntime": ort.__version__,
                "numpy": np.__version__, "scipy": scipy.__version__, "model": "models/small_resnet", "targets": targets.tolist(),
                "map_sets": names, "steps": {}, "deletion": {}, "insertion": {}, "quantus_scores": {}}
    for step in (16, 19):
        deletion = np.zeros((len(names), n, (h * w + step - 1) // step + 1))
        insertion = np.zeros_like(deletion)
        for k, m in enumerate(maps):
            for b in range(n):
                order = np.argsort(-m[b].reshape(-1), kind="stable")
                deletion[k, b] = curve(session, x[b], order, step, "deletion", targets[b])
                insertion[k, b] = curve(session, x[b], order, step, "insertion", targets[b])
        np.save(os.path.join(OUT, f"deletion_step{step}.npy"), deletion)
        np.save(os.path.join(OUT, f"insertion_step{step}.npy"), insertion)
        manifest["deletion"][str(step)] = [[auc(deletion[k, b]) for b in range(n)] for k in range(len(names))]
        manifest["insertion"][str(step)] = [[auc(insertion[k, b]) for b in range(n)] for k in range(len(names))]
    # The insertion start, for a direct check of the blur.
    np.save(os.path.join(OUT, "blurred.npy"), np.stack([blur(x[b]) for b in range(n)]))

    common = dict(model=None, x_batch=x, y_batch=targets, channel_first=True)
    for k, name in enumerate(names):
        a = maps[k][:, None]
        positive = np.abs(maps[k])[:, None]
        scores = {
            "sparseness": quantus.Sparseness(abs=True, normalise=False, disable_warnings=True)(a_batch=a, s_batch=None, **common),
            "complexity": quantus.Complexity(abs=True, normalise=False, disable_warnings=True)(a_batch=a, s_batch=None, **common),
            "pointing_game": quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)(a_batch=a, s_batch=masks[:, None], **common),
            "relevance_mass_of_abs": quantus.RelevanceMassAccuracy(abs=False, normalise=False, disable_warnings=True)(
                a_batch=positive, s_batch=masks[:, None], **common),
            "relevance_rank": quantus.RelevanceRankAccuracy(abs=False, normalise=False, disable_warnings=True)(a_batch=a, s_batch=masks[:, None], **common),
        }
        manifest["quantus_scores"][name] = {key: [float(v) for v in value] for key, value in scores.items()}
    manifest["sensitivity"] = sensitivity_fixture(x, rng)
    import torch
    model = torch_twin()
    with torch.no_grad():
        twin = model(torch.from_numpy(x)).numpy()
    reference = session.run(None, {"input": x})[0]
    assert np.abs(twin - reference).max() < 1e-4, "the torch twin does not match the ONNX fixture model"
    manifest["faithfulness_correlation"] = faithfulness_fixture(model, x, maps, targets)
    manifest["infidelity"] = infidelity_fixture(model, x, maps, targets)
    manifest["similarity"] = similarity_fixture(maps)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(manifest["quantus_scores"], indent=1))
    print("deletion step 16:", manifest["deletion"]["16"])


if __name__ == "__main__":
    main()
