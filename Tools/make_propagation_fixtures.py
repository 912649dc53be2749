#!/usr/bin/env python3
"""Reference attributions for the modified-backward and projection methods (issue 30), from Captum
and pytorch-grad-cam, for the two method-fixture models of Tools/make_fixtures.py (same inputs,
same targets, same CAM layers as Tools/make_method_fixtures.py).

Writes into Tests/Fixtures/methods/<model>/:
  guidedbackprop.npy   captum GuidedBackprop                                     [2, 3, H, W]
  deconvolution.npy    captum Deconvolution                                      [2, 3, H, W]
  guidedgradcam.npy    captum GuidedGradCam at the CAM layer (nearest upsampling) [2, 3, H, W]
  hirescam.npy         pytorch-grad-cam HiResCAM at the CAM layer, before resizing: max(cam, 0)  [2, h, w]
  eigencam.npy         pytorch-grad-cam's get_2d_projection_with_sign_correction of the layer's
                       activations (EigenCAM's projection, its sign fixed as Seg-Eigen-CAM's Eq. 13
                       fixes it; EigenCAM itself leaves the sign to LAPACK), before max(., 0)  [2, h, w]
  eigengradcam.npy     the same projection of gradients x activations (EigenGradCAM's)         [2, h, w]
  ablationcam.npy      pytorch-grad-cam AblationCAM at the CAM layer (batch_size 5), before resizing:
                       max(cam, 0)                                                            [2, h, w]
  fullgrad.npy         pytorch-grad-cam FullGrad's maps at the input size, as it returns them      [2, H, W]
                       (also for squeeze_block, whose standalone batch norm is a bias layer of its own)
  gradientshap.npy     captum GradientShap, 8 samples, stdevs 0.1, the baseline below         [2, 3, H, W]
  gradientshap_baselines.npy  the baseline distribution given to Captum (3 images)            [3, 3, H, W]
  gradientshap_{index,alpha,noise}.npy  what Captum drew, recorded while it ran: for each of the
                       2 x 8 evaluated points, in Captum's order (image-major), the baseline index
                       [16], the path position [16] and the input noise [16, 3, H, W]; the script
                       checks that these draws rebuild Captum's attribution before it saves them.
  deeplift.npy         captum DeepLift (rescale) against deeplift_baseline.npy (one random image)  [2, 3, H, W]
  deepliftshap.npy     captum DeepLiftShap over deepliftshap_baselines.npy (3 random images)      [2, 3, H, W]
                       (for plain_cnn and small_resnet; mobile_block's squeeze-excitation product
                       has no rescale rule, which xai refuses). small_resnet's 3x3 stride-2 max pool
                       has overlapping windows: Captum's max_unpool2d writes one of the shares of
                       windows that share a maximum, so its result depends on the write order;
                       these fixtures run Captum with max_unpool2d replaced by a scatter-add (the
                       shares summed, as the gradient does and as xai does). plain_cnn's pool does
                       not overlap, so its fixture is Captum's unpooling unchanged. In both models
                       a ReLU module feeds a MaxPool2d module directly; Captum's hooks on two
                       adjacent modules lose the ReLU's rule (its attributions then miss f(x) - f(x')
                       by 0.21 on plain_cnn, where the rule conserves), so Captum runs on a copy
                       with a `* 1.0` between them (the same function; its delta is then ~3e-8).
  lrp_captum.npy       (plain_cnn) captum LRP with its default rules: epsilon 1e-9 on every
                       convolution, pooling and linear layer                   [2, 3, H, W]
  lrp_<composite>.npy  zennit's Gradient attributor with the composite EpsilonPlusFlat, EpsilonGammaBox
                       (bounds in lrp.json) or EpsilonAlpha2Beta1, attr_output = the target logit's
                       value (one-hot times the output), and lrp_wsquare.npy with a LayerMapComposite
                       of WSquare for convolutions and Epsilon for dense layers   [2, 3, H, W]
                       (plain_cnn, squeeze_block, and small_resnet with Zennit's canonizers: its
                       batch norms merged into the convolutions, and each block's residual sum
                       made a zennit.layer.Sum, as zennit.torchvision.ResNetCanonizer does for
                       torchvision's blocks)
Run after make_fixtures.py:  python3 Tools/make_propagation_fixtures.py
"""
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

import captum
import captum.attr._core.noise_tunnel as noise_tunnel_module
from captum.attr import DeepLift, DeepLiftShap, Deconvolution, GradientShap, GuidedBackprop, GuidedGradCam
import pytorch_grad_cam
from pytorch_grad_cam import AblationCAM, FullGrad, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "methods")
CASES = {"small_resnet": "layer2", "mobile_block": "head"}
SHAP_SAMPLES, SHAP_STDEV = 8, 0.1


def gradient_shap_with_draws(model, x, target, baselines):
    """Captum's GradientShap, recording its random draws (numpy's uniform alphas and baseline
    choices, torch's normal noise) as it makes them."""
    drawn = {"alpha": [], "choice": [], "noise": []}
    uniform, choice, normal = np.random.uniform, np.random.choice, torch.normal

    def record_uniform(*args, **kwargs):
        v = uniform(*args, **kwargs)
        drawn["alpha"].append(np.array(v))
        return v

    def record_choice(*args, **kwargs):
        v = choice(*args, **kwargs)
        drawn["choice"].append(np.array(v))
        return v

    def record_normal(*args, **kwargs):
        v = normal(*args, **kwargs)
        drawn["noise"].append(v.detach().clone())
        return v

    np.random.uniform, np.random.choice = record_uniform, record_choice
    noise_tunnel_module.torch.normal = record_normal
    try:
        np.random.seed(500)
        torch.manual_seed(501)
        attr = GradientShap(model).attribute(x, baselines=baselines, target=target, n_samples=SHAP_SAMPLES,
                                             stdevs=SHAP_STDEV)
    finally:
        np.random.uniform, np.random.choice = uniform, choice
        noise_tunnel_module.torch.normal = normal
    assert len(drawn["alpha"]) == 1 and len(drawn["noise"]) == 1 and len(drawn["choice"]) == 1, \
        {k: len(v) for k, v in drawn.items()}
    alpha = drawn["alpha"][0].astype(np.float32)
    index = drawn["choice"][0].astype(np.int64)
    noise = drawn["noise"][0].numpy().astype(np.float32)
    return attr.detach().numpy(), alpha, index, noise


def rebuild_gradient_shap(model, x, target, baselines, alpha, index, noise):
    """The attribution from the draws: mean over samples of (x + e - b) * grad at b + a (x + e - b)."""
    n = x.shape[0]
    xs = x.repeat_interleave(SHAP_SAMPLES, 0) + torch.from_numpy(noise)
    b = baselines[torch.from_numpy(index)]
    a = torch.from_numpy(alpha).view(-1, 1, 1, 1)
    points = (a * xs + (1 - a) * b).requires_grad_(True)
    t = torch.tensor(target).repeat_interleave(SHAP_SAMPLES)
    out = model(points)
    g, = torch.autograd.grad(out[torch.arange(points.shape[0]), t].sum(), points)
    return ((xs - b) * g).view(n, SHAP_SAMPLES, *x.shape[1:]).mean(1).detach().numpy()


def summing_max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """F.max_unpool2d with the values of equal indices added instead of one of them written."""
    n, c = input.shape[:2]
    h, w = output_size[-2:]
    out = torch.zeros(n, c, h * w, dtype=input.dtype)
    out.scatter_add_(2, indices.reshape(n, c, -1), input.reshape(n, c, -1))
    return out.view(n, c, h, w)


class TimesOne(torch.nn.Module):
    """`v * 1.0`: an autograd node between two modules whose hooks Captum's DeepLift needs apart."""
    def forward(self, v):
        return v * 1.0


def separated(model):
    """A copy of the model with every MaxPool2d preceded by TimesOne (the same function)."""
    import copy
    copy_ = copy.deepcopy(model)
    for parent in list(copy_.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):
                setattr(parent, child_name, torch.nn.Sequential(TimesOne(), child))
    return copy_


def deeplift_fixtures(name, i, model, x, t, folder, summing):
    baseline = torch.from_numpy(np.random.default_rng(700 + i).uniform(-1, 1, (1,) + tuple(x.shape[1:])).astype(np.float32))
    baselines = torch.from_numpy(np.random.default_rng(800 + i).uniform(-1, 1, (3,) + tuple(x.shape[1:])).astype(np.float32))
    unpool = F.max_unpool2d
    if summing:
        F.max_unpool2d = summing_max_unpool2d
    model = separated(model)
    try:
        attr, delta = DeepLift(model).attribute(x, baselines=baseline.expand_as(x), target=t, return_convergence_delta=True)
        shap = DeepLiftShap(model).attribute(x, baselines=baselines, target=t)
    finally:
        F.max_unpool2d = unpool
    np.save(os.path.join(folder, "deeplift_baseline.npy"), baseline.numpy())
    np.save(os.path.join(folder, "deepliftshap_baselines.npy"), baselines.numpy())
    np.save(os.path.join(folder, "deeplift.npy"), attr.detach().numpy())
    np.save(os.path.join(folder, "deepliftshap.npy"), shap.detach().numpy())
    return {"deeplift_delta": delta.detach().tolist(), "max_unpool": "scatter-add" if summing else "captum's own"}


LRP_LOW, LRP_HIGH = [-1.5, -1.2, -1.0], [1.5, 1.3, 1.1]


class SummedBlock(torch.nn.Module):
    """make_fixtures.Block with its residual addition as a zennit Sum module (what Zennit's
    ResNet canonizer does to torchvision's BasicBlock)."""
    def __init__(self, block):
        from zennit.layer import Sum
        super().__init__()
        self.block = block
        self.sum = Sum()

    def forward(self, x):
        b = self.block
        y = b.bn2(b.conv2(b.relu1(b.bn1(b.conv1(x)))))
        identity = x if b.down is None else b.down(x)
        return b.relu2(self.sum(torch.stack([identity, y], dim=-1)))


def resnet_canonized(model):
    import copy
    copy_ = copy.deepcopy(model)
    copy_.layer1 = SummedBlock(copy_.layer1)
    copy_.layer2 = SummedBlock(copy_.layer2)
    return copy_


def lrp_fixtures(name, model, x, target, folder, canonizers=None):
    import zennit
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat, LayerMapComposite, layer_map_base
    from zennit.rules import Epsilon, WSquare
    from zennit.types import Convolution
    low = torch.tensor(LRP_LOW).view(1, 3, 1, 1).expand_as(x).contiguous()
    high = torch.tensor(LRP_HIGH).view(1, 3, 1, 1).expand_as(x).contiguous()
    c = {"canonizers": canonizers} if canonizers else {}
    composites = {
        "epsilon-plus-flat": EpsilonPlusFlat(**c),
        "epsilon-gamma-box": EpsilonGammaBox(low=low, high=high, **c),
        "epsilon-alpha2-beta1": EpsilonAlpha2Beta1(**c),
        "wsquare": LayerMapComposite(layer_map=layer_map_base() + [(Convolution, WSquare()), (torch.nn.Linear, Epsilon())], **c),
    }
    onehot = torch.zeros(x.shape[0], 10)
    onehot[torch.arange(x.shape[0]), torch.tensor(target)] = 1
    sums = {}
    for key, composite in composites.items():
        with Gradient(model=model, composite=composite) as attributor:
            out, relevance = attributor(x, lambda output: output * onehot)
        np.save(os.path.join(folder, f"lrp_{key}.npy"), relevance.detach().numpy().astype(np.float32))
        sums[key] = relevance.detach().reshape(x.shape[0], -1).sum(1).tolist()
    logits = model(x).detach()[torch.arange(x.shape[0]), torch.tensor(target)].tolist()
    return {"zennit": zennit.__version__ if hasattr(zennit, "__version__") else importlib.metadata.version("zennit"),
            "lrp_low": LRP_LOW, "lrp_high": LRP_HIGH, "lrp_relevance_sums": sums, "target_logits": logits}


def captum_lrp_fixture(model, x, target, folder):
    """Captum's LRP with its default rules (epsilon 1e-9 on convolutions, pools and linear layers,
    ReLU passing relevance), on a model with no batch norm (Captum would give a batch norm a rule of
    its own, where xai folds it into the convolution)."""
    from captum.attr import LRP
    relevance = LRP(model).attribute(x, target=torch.tensor(target)).detach()
    np.save(os.path.join(folder, "lrp_captum.npy"), relevance.numpy().astype(np.float32))
    return {"captum_lrp_relevance_sums": relevance.reshape(x.shape[0], -1).sum(1).tolist()}


def fixture_model(name):
    """Fixture model `name` of make_fixtures.py with its weights, input and targets, as
    make_method_fixtures.py rebuilds them: (index, model, input, targets)."""
    i = list(mf.MODELS).index(name)
    torch.manual_seed(100 + i)
    model = mf.MODELS[name][0]().eval()
    mf.randomize(model, 200 + i)
    x = torch.from_numpy(np.load(os.path.join(mf.OUT, name, "input.npy")))
    target = np.load(os.path.join(mf.OUT, name, "target.npy")).tolist()
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    return i, model, x, target, folder


def main():
    manifest = {"script": "Tools/make_propagation_fixtures.py", "torch": torch.__version__, "captum": captum.__version__,
                "grad-cam": importlib.metadata.version("grad-cam"), "gradientshap_samples": SHAP_SAMPLES,
                "gradientshap_stdevs": SHAP_STDEV, "models": {}}
    for name, layer_name in CASES.items():
        i, model, x, target, folder = fixture_model(name)
        t = torch.tensor(target)
        layer = dict(model.named_modules())[layer_name]

        np.save(os.path.join(folder, "guidedbackprop.npy"), GuidedBackprop(model).attribute(x, target=t).detach().numpy())
        np.save(os.path.join(folder, "deconvolution.npy"), Deconvolution(model).attribute(x, target=t).detach().numpy())
        np.save(os.path.join(folder, "guidedgradcam.npy"),
                GuidedGradCam(model, layer).attribute(x, target=t, interpolate_mode="nearest").detach().numpy())

        # pytorch-grad-cam's activations and gradients at the layer, then its own functions.
        cam = HiResCAM(model=model, target_layers=[layer])
        targets = [ClassifierOutputTarget(c) for c in target]
        outputs = cam.activations_and_grads(x)
        model.zero_grad()
        sum(tg(o) for tg, o in zip(targets, outputs)).backward(retain_graph=True)
        acts = cam.activations_and_grads.activations[0].cpu().numpy()
        grads = cam.activations_and_grads.gradients[0].cpu().numpy()
        raw = cam.get_cam_image(x, layer, targets, acts, grads, False)
        np.save(os.path.join(folder, "hirescam.npy"), np.maximum(raw, 0).astype(np.float32))
        cam.activations_and_grads.release()
        ablation = AblationCAM(model=model, target_layers=[layer], batch_size=5)
        ablation.activations_and_grads(x)
        ablation_acts = ablation.activations_and_grads.activations[0].cpu().numpy()
        raw = ablation.get_cam_image(x, layer, targets, ablation_acts, None, False)
        np.save(os.path.join(folder, "ablationcam.npy"), np.maximum(raw, 0).astype(np.float32))
        ablation.activations_and_grads.release()
        with FullGrad(model=model, target_layers=[]) as fullgrad:
            np.save(os.path.join(folder, "fullgrad.npy"), fullgrad(input_tensor=x, targets=targets).astype(np.float32))
        np.save(os.path.join(folder, "eigencam.npy"), get_2d_projection_with_sign_correction(acts))
        np.save(os.path.join(folder, "eigengradcam.npy"), get_2d_projection_with_sign_correction(grads * acts))

        baselines = torch.from_numpy(np.random.default_rng(600 + i).uniform(-0.5, 0.5, (3,) + tuple(x.shape[1:])).astype(np.float32))
        attr, alpha, index, noise = gradient_shap_with_draws(model, x, t, baselines)
        rebuilt = rebuild_gradient_shap(model, x, target, baselines, alpha, index, noise)
        error = float(np.linalg.norm(rebuilt - attr) / np.linalg.norm(attr))
        assert error < 1e-5, f"{name}: the recorded draws do not rebuild Captum's GradientShap ({error:.2e})"
        np.save(os.path.join(folder, "gradientshap.npy"), attr)
        np.save(os.path.join(folder, "gradientshap_baselines.npy"), baselines.numpy())
        np.save(os.path.join(folder, "gradientshap_index.npy"), index)
        np.save(os.path.join(folder, "gradientshap_alpha.npy"), alpha)
        np.save(os.path.join(folder, "gradientshap_noise.npy"), noise)
        manifest["models"][name] = {"layer_module": layer_name, "gradientshap_rebuilt_error": error}
        if name == "small_resnet":
            manifest["models"][name].update(deeplift_fixtures(name, i, model, x, t, folder, summing=True))
            from zennit.canonizers import SequentialMergeBatchNorm
            manifest["models"][name].update(lrp_fixtures(name, resnet_canonized(model), x, target, folder,
                                                         canonizers=[SequentialMergeBatchNorm()]))
        print(name, "done; GradientShap rebuilt from its draws to", f"{error:.1e}")
    # plain_cnn: DeepLIFT only (its pool's windows do not overlap: Captum unchanged).
    i, model, x, target, folder = fixture_model("plain_cnn")
    manifest["models"]["plain_cnn"] = deeplift_fixtures("plain_cnn", i, model, x, torch.tensor(target), folder, summing=False)
    manifest["models"]["plain_cnn"].update(lrp_fixtures("plain_cnn", model, x, target, folder))
    manifest["models"]["plain_cnn"].update(captum_lrp_fixture(model, x, target, folder))
    i, model, x, target, folder = fixture_model("squeeze_block")
    manifest["models"]["squeeze_block"] = lrp_fixtures("squeeze_block", model, x, target, folder)
    # FullGrad on a model with a batch norm of its own (after a concatenation, not folded).
    with FullGrad(model=model, target_layers=[]) as fullgrad:
        np.save(os.path.join(folder, "fullgrad.npy"),
                fullgrad(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in target]).astype(np.float32))
    with open(os.path.join(OUT, "propagation.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
