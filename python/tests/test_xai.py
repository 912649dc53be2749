"""The Python package: every call and error path, results identical to the engine's CLI on the
same inputs, and the Captum / pytorch-grad-cam adapters against the committed fixtures."""
import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import xai
from xai import captum, grad_cam

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"
SMALL = FIXTURES / "models" / "small_resnet"
CLI = pathlib.Path(os.environ.get("XAI_CLI", ROOT / ".build" / "release" / "xai"))


def relative_l2(got, want):
    got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)


@pytest.fixture(scope="module")
def model():
    with xai.Model(str(SMALL / "model.onnx")) as m:
        yield m


@pytest.fixture(scope="module")
def batch():
    return np.load(SMALL / "input.npy")


# Library-level calls


def test_version_devices_methods():
    assert xai.version() == xai.__version__ and xai.__version__.count(".") == 2
    assert xai.devices()[0]["device"] == "cpu"
    methods = xai.methods()
    assert list(methods)[:4] == ["saliency", "inputxgrad", "smoothgrad", "ig"]
    knobs = {k["name"]: k for k in methods["ig"]["knobs"]}
    assert knobs["steps"]["default"] == 50 and knobs["steps"]["minimum"] == 1 and knobs["steps"]["type"] == "integer"
    assert "gausslegendre" in knobs["rule"]["choices"]
    assert {k["name"]: k for k in methods["smoothgrad"]["knobs"]}["samples"]["default"] == 50
    assert {k["name"]: k for k in methods["lime"]["knobs"]}["samples"]["default"] == 1000


def test_model_info_and_predict(model, batch):
    assert model.input_shape == (1, 3, 64, 64) and model.classes == 10 and model.labels is None
    assert model.info["defaultCamLayer"] in model.cam_layers
    logits = model.predict(batch)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    assert np.abs(logits - np.load(SMALL / "logits.npy")).max() < 1e-4
    assert np.array_equal(model.predict(batch[0]), logits[:1]), "one image [3, H, W] is a batch of one"
    assert np.array_equal(model.predict(batch.tolist()), logits), "any array-like"

    class TorchLike:  # what a torch tensor offers the adapters
        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return batch
    assert np.array_equal(model.predict(TorchLike()), logits)
    assert "small_resnet" in repr(model) or "model.onnx" in repr(model)


def test_errors_become_python_exceptions(model, batch):
    with pytest.raises(FileNotFoundError, match="/nonexistent.onnx"):
        xai.Model("/nonexistent.onnx")
    with pytest.raises(xai.DeviceError, match="gpu:9"):
        xai.Model(str(SMALL / "model.onnx"), device="gpu:9")
    with pytest.raises(ValueError, match="tpu"):
        xai.Model(str(SMALL / "model.onnx"), device="tpu")
    with pytest.raises(ValueError, match="64"):
        model.predict(np.zeros((1, 3, 64, 63), np.float32))
    with pytest.raises(ValueError, match="rank"):
        model.predict(np.zeros((3, 64), np.float32))
    bad = batch.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="input"):
        model.predict(bad)
    with pytest.raises(ValueError, match="nonsense"):
        model.explain(batch, "nonsense")
    with pytest.raises(ValueError, match="stepz"):
        model.explain(batch, "ig", stepz=3)
    with pytest.raises(ValueError, match="steps"):
        model.explain(batch, "ig", steps=0)
    with pytest.raises(ValueError, match="rule"):
        model.explain(batch, "ig", rule="simpson")
    with pytest.raises(ValueError, match="targets"):
        model.explain(batch, "gradcam", target=[1, 2, 3])
    with pytest.raises(ValueError, match="targets"):
        model.explain(batch, "gradcam", target=10)
    with pytest.raises(ValueError, match="target"):
        model.explain(batch, "gradcam", target=1.5)
    with pytest.raises(MemoryError):
        xai.Model(str(SMALL / "model.onnx")).explain(np.zeros((1, 3, 64, 64), np.float32), "ig", batch=10**12, progress=False)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        xai.preprocess(["/nope.png"], model)
    closed = xai.Model(str(SMALL / "model.onnx"))
    closed.close()
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        closed.predict(batch)
    assert issubclass(xai.InvalidArgumentError, xai.XAIError) and issubclass(xai.UnsupportedError, xai.XAIError)


def test_explain_outputs(model, batch):
    logits = model.predict(batch)
    e = model.explain(batch, "ig", steps=8, rule="middle", progress=False)
    assert e.method == "ig" and e.maps.shape == (2, 64, 64) and e.raw.shape == (2, 3, 64, 64) and e.segments is None
    assert list(e.targets) == list(logits.argmax(1))
    assert np.allclose(e.scores, logits.max(1), rtol=1e-5)
    assert set(e.diagnostics) == {"completenessDelta", "outputDifference"} and e.parameters["steps"] == "8"
    e = model.explain(batch, "gradcam", target=[1, 3], progress=False)
    assert list(e.targets) == [1, 3] and e.raw.shape[0] == 2 and e.raw.ndim == 3
    e = model.explain(batch, "saliency", target=7, progress=False)
    assert list(e.targets) == [7, 7]
    e = model.explain(batch, "lime", samples=16, segmentation="grid", segments=4, progress=False)
    assert e.segments.shape == (2, 64, 64) and len(np.unique(e.segments[0])) == 16 and e.raw.shape == (2, 16)
    relu = model.explain(batch, "gradcam", target=[1, 3], progress=False).raw
    signed = model.explain(batch, "gradcam", target=[1, 3], relu=False, progress=False).raw
    assert np.allclose(relu, np.maximum(signed, 0), atol=1e-6) and signed.min() < 0


def test_progress_and_cancel(model, batch):
    seen = []
    model.explain(batch[:1], "occlusion", window=16, stride=16, batch=4, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 1) and seen[-1] == (1, 1) and (16, 16) in seen
    with pytest.raises(xai.CancelledError):
        model.explain(batch[:1], "occlusion", window=16, stride=16, batch=4, progress=lambda d, t: d >= 4)

    def broken(d, t):
        raise KeyError("from the callback")
    with pytest.raises(KeyError, match="from the callback"):
        model.explain(batch[:1], "saliency", progress=broken)


@pytest.fixture
def direct_convolutions(monkeypatch):
    """Direct convolutions only: the default times Winograd against direct once per process and layer,
    so two processes may pick differently and differ in the last bits."""
    monkeypatch.setenv("XAI_CONV_ALGO", "direct")
    with xai.Model(str(SMALL / "model.onnx")) as m:
        yield m


@pytest.mark.parametrize("method,knobs", [("gradcam", {}), ("ig", {"steps": 8}), ("kernelshap", {"samples": 32, "segmentation": "grid", "segments": 4}),
                                          ("smoothgrad", {"samples": 4, "seed": 3}), ("rise", {"masks": 64, "seed": 2}),
                                          ("rise", {"masks": 64, "seed": 2, "score": "logit"})])
def test_maps_identical_to_the_cli(direct_convolutions, batch, tmp_path, method, knobs):
    np.save(tmp_path / "image.npy", batch[1:2])
    flags = [f"--{''.join('-' + c.lower() if c.isupper() else c for c in k)}={v}" for k, v in knobs.items()]
    subprocess.run([str(CLI), "explain", str(SMALL / "model.onnx"), str(tmp_path / "image.npy"), "--method", method, "--out",
                    str(tmp_path / "out"), "--save", "raw", "--quiet", *flags], check=True, capture_output=True,
                   env={**os.environ, "XAI_CONV_ALGO": "direct"})
    cli = np.load(tmp_path / "out" / "image" / f"{method}.npy")
    assert np.array_equal(direct_convolutions.explain(batch[1:2], method, progress=False, **knobs).maps[0], cli)


def test_score_knob_picks_what_the_perturbation_methods_read(direct_convolutions, batch):
    # RISE weighs its masks by the probability unless told otherwise; on the logit its map differs.
    x = batch[1:2]
    run = lambda **knobs: direct_convolutions.explain(x, "rise", progress=False, masks=64, seed=2, **knobs).maps[0]
    assert np.array_equal(run(), run(score="probability"))
    assert not np.allclose(run(), run(score="logit"))
    with pytest.raises(xai.InvalidArgumentError, match="score"):
        run(score="odds")


def test_preprocess_is_what_the_cli_feeds_the_model(direct_convolutions, tmp_path):
    model = direct_convolutions
    pictures = [str(FIXTURES / "images" / "photo.jpg"), str(FIXTURES / "images" / "rgb8.png")]
    x = xai.preprocess(pictures, model)
    assert x.shape == (2, 3, 64, 64) and x.dtype == np.float32
    assert np.array_equal(xai.preprocess(pictures[0], model), x[:1])
    assert not np.array_equal(xai.preprocess(pictures[0], model, preset="none"), x[:1])
    # The CLI's logits of the same pictures, bit for bit: the same tensors went in.
    subprocess.run([str(CLI), "predict", str(SMALL / "model.onnx"), *pictures, "--save-logits", str(tmp_path)], check=True,
                   capture_output=True, env={**os.environ, "XAI_CONV_ALGO": "direct"})
    for i, stem in enumerate(["photo", "rgb8"]):
        assert np.array_equal(np.load(tmp_path / f"{stem}.logits.npy").reshape(-1), model.predict(x[i:i + 1]).reshape(-1))


def test_overlay():
    rng = np.random.default_rng(5)
    picture = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    drawn = xai.overlay(picture, rng.random((5, 6)), colormap="jet", alpha=0.5)
    assert drawn.shape == picture.shape and drawn.dtype == np.uint8 and not np.array_equal(drawn, picture)
    assert np.array_equal(xai.overlay(picture, rng.random((5, 6)), alpha=0.0), picture), "alpha 0 leaves the picture"
    with pytest.raises(ValueError, match="colormap"):
        xai.overlay(picture, rng.random((5, 6)), colormap="rainbow")
    with pytest.raises(ValueError, match="rgb"):
        xai.overlay(picture[..., 0], rng.random((5, 6)))
    with pytest.raises(ValueError, match="rgb"):
        xai.overlay(np.dstack([picture, picture[..., :1]]), rng.random((5, 6)))  # RGBA: four channels
    # A pixel-level map: magnitude, clear where zero; the signed view is one argument away.
    signed = np.zeros((20, 30), np.float32)
    signed[5, 5], signed[10, 20] = 1.0, -1.0
    pixel = xai.overlay(picture, signed, method="ig")
    assert np.array_equal(pixel[0, 0], picture[0, 0]) and not np.array_equal(pixel[10, 20], picture[10, 20])
    assert not np.array_equal(pixel, xai.overlay(picture, signed, method="ig", sign="all"))
    with pytest.raises(ValueError, match="method"):
        xai.overlay(picture, signed, method="nope")


def test_two_models_on_two_threads(batch):
    with xai.Model(str(SMALL / "model.onnx")) as alone:
        expected = alone.explain(batch, "ig", steps=16, progress=False).maps
    results, errors = {}, []

    def work(k):
        try:
            with xai.Model(str(SMALL / "model.onnx")) as m:
                results[k] = [m.explain(batch, "ig", steps=16, progress=False).maps for _ in range(3)]
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for maps in results.values():
        for m in maps:
            assert np.allclose(m, expected, rtol=1e-5, atol=1e-6)


# Adapters against the committed Captum / pytorch-grad-cam fixtures (Tools/make_method_fixtures.py,
# Tools/make_perturbation_fixtures.py, Tools/make_reference_checks.py), at the Swift tests' tolerances.


@pytest.mark.parametrize("name", ["small_resnet", "mobile_block"])
def test_captum_gradient_adapters(name):
    folder = FIXTURES / "methods" / name
    x = np.load(FIXTURES / "models" / name / "input.npy")
    targets = np.load(FIXTURES / "models" / name / "target.npy")
    with xai.Model(str(FIXTURES / "models" / name / "model.onnx")) as m:
        assert relative_l2(captum.Saliency(m).attribute(x, target=targets), np.load(folder / "saliency.npy")) < 1e-3
        assert relative_l2(captum.InputXGradient(m).attribute(x, target=targets), np.load(folder / "inputxgrad.npy")) < 1e-3
        ig = captum.IntegratedGradients(m)
        manifest = json.loads((FIXTURES / "methods" / "manifest.json").read_text())
        for method, rule in [("gausslegendre", "gausslegendre"), ("riemann_left", "left"), ("riemann_right", "right"),
                             ("riemann_middle", "middle"), ("riemann_trapezoid", "trapezoid")]:
            attribution, delta = ig.attribute(x, target=targets, n_steps=16, method=method, return_convergence_delta=True)
            assert relative_l2(attribution, np.load(folder / f"ig_{rule}.npy")) < 1e-3, method
            # Captum's delta is signed; the fixture records its magnitude.
            assert np.allclose(np.abs(delta), manifest["models"][name]["ig_delta"][rule], rtol=0.05, atol=2e-4), method
        layer = json.loads((FIXTURES / "models" / "manifest.json").read_text())["models"][name]["tap_values"][1]
        got = captum.LayerGradCam(m, layer).attribute(x, target=targets)
        assert got.shape[1] == 1 and relative_l2(got, np.load(folder / "layergradcam.npy")) < 1e-3
        assert np.allclose(captum.LayerGradCam(m, layer).attribute(x, target=targets, relu_attributions=True), np.maximum(got, 0), atol=1e-6)


@pytest.mark.parametrize("name", ["small_resnet", "mobile_block"])
def test_propagation_adapters(name):
    """Guided backpropagation, deconvolution, guided Grad-CAM, HiResCAM and the eigen CAMs against
    Tools/make_propagation_fixtures.py; GradientShap takes Captum's baselines and draws its own points."""
    folder = FIXTURES / "methods" / name
    x = np.load(FIXTURES / "models" / name / "input.npy")
    targets = np.load(FIXTURES / "models" / name / "target.npy")
    layer = json.loads((FIXTURES / "models" / "manifest.json").read_text())["models"][name]["tap_values"][1]
    with xai.Model(str(FIXTURES / "models" / name / "model.onnx")) as m:
        assert relative_l2(captum.GuidedBackprop(m).attribute(x, target=targets), np.load(folder / "guidedbackprop.npy")) < 1e-4
        assert relative_l2(captum.Deconvolution(m).attribute(x, target=targets), np.load(folder / "deconvolution.npy")) < 1e-4
        assert relative_l2(captum.GuidedGradCam(m, layer).attribute(x, target=targets), np.load(folder / "guidedgradcam.npy")) < 1e-4
        with pytest.raises(ValueError, match="interpolate_mode"):
            captum.GuidedGradCam(m, layer).attribute(x, target=targets, interpolate_mode="bilinear")
        assert relative_l2(m.explain(x, "hirescam", target=targets.tolist(), layer=layer).raw, np.load(folder / "hirescam.npy")) < 1e-4
        for method in ("eigencam", "eigengradcam"):
            raw = m.explain(x, method, target=targets.tolist(), layer=layer, relu=False).raw
            assert relative_l2(raw, np.load(folder / f"{method}.npy")) < 1e-4, method
        assert relative_l2(m.explain(x, "ablationcam", target=targets.tolist(), layer=layer).raw, np.load(folder / "ablationcam.npy")) < 1e-4
        with pytest.raises(ValueError, match="ratio_channels_to_ablate"):
            grad_cam.AblationCAM(m, target_layers=[layer], ratio_channels_to_ablate=0.5)
        full = grad_cam.FullGrad(m, target_layers=[layer])(x, targets=targets.tolist())
        assert np.abs(full - np.load(folder / "fullgrad.npy")).max() < 5e-3
        for cls in (grad_cam.HiResCAM, grad_cam.EigenCAM, grad_cam.EigenGradCAM, grad_cam.AblationCAM, grad_cam.GradCAMElementWise,
                    grad_cam.FEM, grad_cam.KPCA_CAM):
            maps = cls(m, target_layers=[layer])(x, targets=targets.tolist())
            assert maps.shape == (2,) + x.shape[2:] and maps.min() >= 0 and maps.max() <= 1
        # pytorch-grad-cam's newer CAMs (Tools/make_cam_variant_fixtures.py), their knobs by the adapters' names too.
        for method, knobs, fixture in [("gradcamelementwise", {}, "gradcamelementwise"), ("fem", {"relu": False}, "fem"),
                                       ("fem", {"relu": False, "fem_sigmas": 1.0}, "fem_k1"), ("kpcacam", {"relu": False}, "kpcacam"),
                                       ("kpcacam", {"relu": False, "kpca_kernel": "rbf", "kpca_gamma": 0.05}, "kpcacam_rbf")]:
            raw = m.explain(x, method, target=targets.tolist(), layer=layer, **knobs).raw
            assert relative_l2(raw, np.load(folder / f"{fixture}.npy")) < 1e-4, fixture
        for alpha, fixture in [(1.0, "finercam"), (0.5, "finercam_alpha05")]:
            raw = m.explain(x, "finercam", target=targets.tolist(), layer=layer, finer_alpha=alpha).raw
            assert relative_l2(raw, np.load(folder / f"{fixture}.npy")) < 1e-4, fixture
        # FinerCAM as pytorch-grad-cam returns it, one image at a time with target_idx.
        finer = grad_cam.FinerCAM(m, target_layers=[layer])
        maps = np.concatenate([finer(x[b:b + 1], target_idx=int(c)) for b, c in enumerate(targets)])
        assert np.abs(maps - np.load(folder / "finercam_maps.npy")).max() < 1e-3
        with pytest.raises(ValueError, match="comparison_categories"):
            finer(x, comparison_categories=[1, 2])
        # Given targets are used as they are, as pytorch-grad-cam's FinerCAM uses them: Grad-CAM of those classes.
        assert np.array_equal(finer(x, targets=targets.tolist()), grad_cam.GradCAM(m, target_layers=[layer])(x, targets=targets.tolist()))
        # ShapleyCAM: the score picked by the target objects, as pytorch-grad-cam's are.
        for score in ("rest", "probability", "logit"):
            raw = m.explain(x, "shapleycam", target=targets.tolist(), layer=layer, relu=False, shapley_score=score).raw
            assert relative_l2(raw, np.load(folder / f"shapleycam_{score}.npy")) < 1e-4, score
        class ClassifierOutputReST:  # noqa: N801 (stands in for pytorch-grad-cam's, matched by name)
            def __init__(self, category):
                self.category = category
        shapley = grad_cam.ShapleyCAM(m, target_layers=[layer])
        maps = shapley(x, targets=[ClassifierOutputReST(int(c)) for c in targets])
        assert np.abs(maps - np.load(folder / "shapleycam_maps.npy")).max() < 1e-3
        assert np.array_equal(shapley(x, targets=targets.tolist()), grad_cam.GradCAM(m, target_layers=[layer])(x, targets=targets.tolist()))
        with pytest.raises(ValueError, match="one kind of target"):
            shapley(x, targets=[ClassifierOutputReST(int(targets[0])), int(targets[1])])
        for adapter, method, knobs in [(grad_cam.FEM(m, target_layers=[layer], k=1), "fem", {"fem_sigmas": 1.0}),
                                       (grad_cam.KPCA_CAM(m, target_layers=[layer], kernel="rbf", gamma=0.05), "kpcacam",
                                        {"kpca_kernel": "rbf", "kpca_gamma": 0.05})]:
            direct = m.explain(x, method, target=targets.tolist(), layer=layer, **knobs).maps
            direct = direct - direct.min(axis=(1, 2), keepdims=True)
            assert np.allclose(adapter(x, targets=targets.tolist()), direct / (1e-7 + direct.max(axis=(1, 2), keepdims=True)), atol=1e-6), method
        baselines = np.load(folder / "gradientshap_baselines.npy")
        shap = captum.GradientShap(m).attribute(x, baselines=baselines, n_samples=6, stdevs=0.1, target=targets, seed=3)
        direct = m.explain(x, "gradientshap", target=targets.tolist(), baseline=baselines, samples=6, stdevs=0.1, seed=3).raw
        assert shap.shape == x.shape and np.array_equal(shap, direct)
        with pytest.raises(ValueError, match="baselines"):
            captum.GradientShap(m).attribute(x, baselines=lambda t: t, target=targets)


@pytest.mark.parametrize("name", ["vit_torchscript", "swin_dynamo"])
def test_ablationcam_on_transformers(name):
    """Ablation-CAM at a transformer's default layer (tokens, channels last) against pytorch-grad-cam
    with its AblationLayerVit (Tools/make_transformer_cam_fixtures.py), both ablation rules."""
    folder = FIXTURES / "architectures" / name
    x = np.load(folder / "input.npy")
    targets = np.load(folder / "target.npy").tolist()
    with xai.Model(str(folder / "model.onnx")) as m:
        for ablation, reference in (("auto", "ablationcam.npy"), ("zero", "ablationcam_zero.npy")):
            raw = m.explain(x, "ablationcam", target=targets, relu=False, ablation=ablation).raw
            assert relative_l2(raw, np.load(folder / reference)) < 1e-4, ablation

        class AblationLayerVit:  # stands in for pytorch-grad-cam's, by name
            pass

        maps = grad_cam.AblationCAM(m, ablation_layer=AblationLayerVit())(x, targets=targets)
        assert maps.shape == (2,) + x.shape[2:] and maps.min() >= 0 and maps.max() <= 1
        with pytest.raises(ValueError, match="ablation"):
            m.explain(x, "ablationcam", ablation="half")


def test_a_model_whose_batch_is_fixed_at_one():
    """An export without a dynamic batch axis (Tools/make_fixed_batch_fixtures.py): two images are
    explained one at a time, as the same images one by one."""
    folder = FIXTURES / "fixed_batch" / "vit"
    x = np.load(folder / "input.npy")
    with xai.Model(str(folder / "model.onnx")) as m:
        for method in ("ig", "rise"):
            both = m.explain(x, method, target=[1, 3], steps=8, masks=32).maps
            alone = [m.explain(x[i:i + 1], method, target=[t], steps=8, masks=32).maps[0] for i, t in enumerate((1, 3))]
            assert both.shape == (2, 32, 32) and np.array_equal(both, np.stack(alone)), method
        # Predictions and the metrics run the images one at a time too.
        logits = m.predict(x)
        assert np.abs(logits - np.load(folder / "logits.npy")).max() < 1e-4
        metrics = ["deletion", "insertion", "sparseness", "faithfulness_correlation", "infidelity", "sensitivity_max", "random_logit", "mprt",
                   "smooth_mprt", "efficient_mprt", "completeness", "road"]
        knobs = dict(steps=4, samples=8, road_percentiles="30,70", road_noise=0.0, mprt_steps=2, mprt_samples=2, mprt_order="bottom-up")
        scores = m.evaluate(x, method="ig", metrics=metrics, target=[1, 3], **knobs)
        alone = [m.evaluate(x[i:i + 1], method="ig", metrics=metrics, target=[t], **knobs) for i, t in enumerate((1, 3))]
        for name in metrics:
            assert scores[name].scores.shape == (2,) and np.isfinite(scores[name].scores).all(), name
        assert scores["road"].settings["percentiles"] == "30,70"
        assert scores["smooth_mprt"].settings["order"] == "bottom-up" and scores["smooth_mprt"].settings["smoothing"].startswith("2 maps")
        # The deterministic ones score each image as it is scored alone (the sampled ones draw by the image's place).
        for name in ("deletion", "insertion", "sparseness", "completeness", "road"):
            assert np.allclose(scores[name].scores, np.concatenate([a[name].scores for a in alone]), rtol=1e-5, atol=1e-6), name


def test_quantus_metrics_take_their_knobs():
    """Region perturbation, selectivity, IROF, faithfulness estimate, monotonicity (and its correlation) and the map
    metrics through Model.evaluate: snake_case knobs reach them, and IROF takes the feature mask as
    its superpixels."""
    x = np.load(FIXTURES / "models" / "small_resnet" / "input.npy")
    masks = np.zeros((2, 64, 64), np.float32)
    masks[:, 10:40, 20:50] = 1
    cells = (np.arange(64)[:, None] // 16) * 4 + np.arange(64)[None, :] // 16  # 16 squares
    metrics = ["region_perturbation", "region_perturbation_lerf", "selectivity", "irof", "faithfulness_estimate", "monotonicity", "roc_auc",
               "top_k_intersection", "effective_complexity", "monotonicity_correlation"]
    with xai.Model(str(FIXTURES / "models" / "small_resnet" / "model.onnx")) as m:
        maps = m.explain(x, "saliency").maps
        s = m.evaluate(x, maps=maps, metrics=metrics, masks=masks, feature_mask=cells, patch_size=16, regions=5, step=512, top_k=10,
                       complexity_epsilon=0.5, monotonicity_samples=2)
        for name in metrics:
            assert s[name].scores.shape == (2,) and np.isfinite(s[name].scores).all(), name
        assert s["region_perturbation"].settings["regions"] == "5" and s["region_perturbation"].direction == "higher"
        assert s["region_perturbation_lerf"].direction == "lower"
        assert s["selectivity"].settings["patch"].startswith("16x16, every channel (4x4 patches")
        assert s["irof"].settings["segments"] == "16,16"
        assert s["faithfulness_estimate"].settings["groups"] == "8" and s["monotonicity"].settings["step"] == "512"
        assert s["top_k_intersection"].settings["k"] == "10" and s["effective_complexity"].settings["epsilon"] == "0.5"
        assert set(s["monotonicity"].scores) <= {0.0, 1.0}
        assert s["monotonicity_correlation"].settings["samples"] == "2" and s["monotonicity_correlation"].settings["groups"] == "8"
        with pytest.raises(xai.XAIError, match="topK"):
            m.evaluate(x, maps=maps, metrics=["top_k_intersection"], masks=masks, top_k=5000)


def test_continuity_non_sensitivity_and_attribution_localisation_take_their_knobs():
    """Continuity (the method re-explains each translation), non-sensitivity (one forward per
    patch, the black substrate) and attribution localisation through Model.evaluate: snake_case
    knobs reach them, and a step count past the image's width names its knob."""
    x = np.load(FIXTURES / "models" / "small_resnet" / "input.npy")
    masks = np.zeros((2, 64, 64), np.float32)
    masks[:, 10:40, 20:50] = 1
    metrics = ["continuity", "non_sensitivity", "attribution_localisation"]
    with xai.Model(str(FIXTURES / "models" / "small_resnet" / "model.onnx")) as m:
        s = m.evaluate(x, method="saliency", metrics=metrics, masks=masks, continuity_steps=4, non_sensitivity_patch=16,
                       non_sensitivity_epsilon=1e-3, substrate="black")
        for name in metrics:
            assert s[name].scores.shape == (2,) and np.isfinite(s[name].scores).all(), name
        assert s["continuity"].direction == "lower" and s["continuity"].settings["steps"] == "4"
        assert s["continuity"].settings["shifts"] == "-32,32,64" and (s["continuity"].scores > 0).all()
        assert s["non_sensitivity"].settings["features"] == "16" and s["non_sensitivity"].settings["substrate"] == "black"
        assert ((s["non_sensitivity"].scores * 16) % 1 == 0).all() and s["non_sensitivity"].direction == "lower"
        assert (0 < s["attribution_localisation"].scores).all() and (s["attribution_localisation"].scores < 1).all()
        with pytest.raises(xai.XAIError, match="continuitySteps"):
            m.evaluate(x, method="saliency", metrics=["continuity"], continuity_steps=130)


def test_relative_stability_takes_its_knobs():
    """RIS, ROS and RRS through Model.evaluate: the method re-explains the noisy copies, the
    snake_case knobs reach them, and a bad layer or noise range names its knob."""
    x = np.load(FIXTURES / "models" / "small_resnet" / "input.npy")
    metrics = ["relative_input_stability", "relative_output_stability", "relative_representation_stability"]
    with xai.Model(str(FIXTURES / "models" / "small_resnet" / "model.onnx")) as m:
        s = m.evaluate(x, method="saliency", metrics=metrics, stability_samples=4, stability_noise_low=-0.01, stability_noise_high=0.01)
        for name in metrics:
            assert s[name].scores.shape == (2,) and np.isfinite(s[name].scores).all() and (s[name].scores > 0).all(), name
            assert s[name].direction == "lower" and s[name].settings["samples"] == "4"
            assert s[name].settings["noise"].startswith("uniform in [-0.01, 0.01]")
        assert s["relative_representation_stability"].settings["layer"]
        with pytest.raises(xai.XAIError, match="stabilityLayer"):
            m.evaluate(x, method="saliency", metrics=metrics[2:], stability_samples=2, stability_layer="nope")
        with pytest.raises((xai.XAIError, ValueError), match="stabilityNoiseHigh|stability_noise_high"):
            m.evaluate(x, method="saliency", metrics=metrics[:1], stability_samples=2, stability_noise_low=0.3)


@pytest.mark.parametrize("name", ["plain_cnn", "small_resnet"])
def test_deeplift_adapters(name):
    folder = FIXTURES / "methods" / name
    x = np.load(FIXTURES / "models" / name / "input.npy")
    targets = np.load(FIXTURES / "models" / name / "target.npy")
    manifest = json.loads((FIXTURES / "methods" / "propagation.json").read_text())["models"][name]
    with xai.Model(str(FIXTURES / "models" / name / "model.onnx")) as m:
        baseline = np.load(folder / "deeplift_baseline.npy")
        got, delta = captum.DeepLift(m).attribute(x, baselines=np.repeat(baseline, 2, axis=0), target=targets, return_convergence_delta=True)
        assert relative_l2(got, np.load(folder / "deeplift.npy")) < 1e-4
        assert np.allclose(delta, manifest["deeplift_delta"], atol=1e-4)
        shap = captum.DeepLiftShap(m).attribute(x, baselines=np.load(folder / "deepliftshap_baselines.npy"), target=targets)
        assert relative_l2(shap, np.load(folder / "deepliftshap.npy")) < 1e-4
    with xai.Model(str(FIXTURES / "models" / "mobile_block" / "model.onnx")) as m:
        with pytest.raises(xai.UnsupportedError, match="node"):
            captum.DeepLift(m).attribute(np.load(FIXTURES / "models" / "mobile_block" / "input.npy"))


@pytest.mark.parametrize("name", ["plain_cnn", "squeeze_block", "small_resnet"])
def test_lrp_matches_zennit(name):
    folder = FIXTURES / "methods" / name
    x = np.load(FIXTURES / "models" / name / "input.npy")
    targets = np.load(FIXTURES / "models" / name / "target.npy").tolist()
    with xai.Model(str(FIXTURES / "models" / name / "model.onnx")) as m:
        for composite in ("epsilon-plus-flat", "epsilon-alpha2-beta1"):
            raw = m.explain(x, "lrp", target=targets, composite=composite, progress=False).raw
            assert relative_l2(raw, np.load(folder / f"lrp_{composite}.npy")) < 1e-4, composite
        with pytest.raises(ValueError, match="composite"):
            m.explain(x, "lrp", composite="epsilon-plus")


def test_captum_lrp_adapter():
    """Captum's LRP with its default rules (Tools/make_propagation_fixtures.py) on the model without batch norm."""
    folder = FIXTURES / "methods" / "plain_cnn"
    x = np.load(FIXTURES / "models" / "plain_cnn" / "input.npy")
    targets = np.load(FIXTURES / "models" / "plain_cnn" / "target.npy")
    with xai.Model(str(FIXTURES / "models" / "plain_cnn" / "model.onnx")) as m:
        got, delta = captum.LRP(m).attribute(x, target=targets, return_convergence_delta=True)
        assert relative_l2(got, np.load(folder / "lrp_captum.npy")) < 1e-4
        logits = m.predict(x)[np.arange(2), targets]
        assert np.allclose(delta, got.reshape(2, -1).sum(1) - logits, atol=1e-4)
        with pytest.raises(ValueError, match="additional_forward_args"):
            captum.LRP(m).attribute(x, target=targets, additional_forward_args=(1,))


@pytest.mark.parametrize("name", ["vit_dynamo", "vit_torchscript"])
def test_transformer_methods(name):
    """AttnLRP and CP-LRP against lxt, transformer attribution against Chefer et al.'s code
    (Tools/make_transformer_fixtures.py)."""
    folder = FIXTURES / "architectures" / name
    x = np.load(folder / "input.npy")
    targets = np.load(folder / "target.npy").tolist()
    with xai.Model(str(folder / "model.onnx")) as m:
        for method, fixture in (("attnlrp", "attnlrp"), ("cp-lrp", "cplrp"), ("transformer-attribution", "transformer_attribution")):
            raw = m.explain(x, method, target=targets, progress=False).raw
            assert relative_l2(raw, np.load(folder / f"{fixture}.npy")) < 1e-4, method
    with xai.Model(str(FIXTURES / "architectures" / "convnext_dynamo" / "model.onnx")) as m:
        with pytest.raises(xai.UnsupportedError, match="no attention"):
            m.explain(np.load(FIXTURES / "architectures" / "convnext_dynamo" / "input.npy"), "cp-lrp")


def test_captum_integrated_gradients_baseline():
    folder = FIXTURES / "methods" / "small_resnet"
    spec = json.loads((folder / "ig_baseline.json").read_text())
    x = np.load(SMALL / "input.npy")
    targets = np.load(SMALL / "target.npy")
    baseline = np.load(folder / "ig_baseline.npy")
    assert spec["cases"]
    with xai.Model(str(SMALL / "model.onnx")) as m:
        for name, case in spec["cases"].items():
            got, delta = captum.IntegratedGradients(m).attribute(x, baselines=baseline, target=targets, n_steps=case["n_steps"],
                                                                 method=case["method"], return_convergence_delta=True)
            assert relative_l2(got, np.load(folder / case["file"])) < 1e-3, name
            assert np.allclose(delta, case["delta"], rtol=0.05, atol=2e-4), name


def test_captum_occlusion():
    manifest = json.loads((FIXTURES / "perturbation" / "manifest.json").read_text())["occlusion"]
    name = "small_resnet"
    x = np.load(FIXTURES / "models" / name / "input.npy")
    targets = np.load(FIXTURES / "models" / name / "target.npy")
    with xai.Model(str(FIXTURES / "models" / name / "model.onnx")) as m:
        got = captum.Occlusion(m).attribute(x, sliding_window_shapes=tuple(manifest["window"]), strides=tuple(manifest["strides"]),
                                            target=targets, perturbations_per_eval=16)
    want = np.load(FIXTURES / "perturbation" / name / "occlusion.npy")
    assert got.shape == want.shape and relative_l2(got, want) < 1e-4


def test_captum_refuses_what_it_cannot_honour(model, batch):
    with pytest.raises(ValueError, match="additional_forward_args"):
        captum.Saliency(model).attribute(batch, additional_forward_args=(1,))
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        captum.Occlusion(model).attribute(batch, sliding_window_shapes=(3, 8, 8), perturbations_per_eval=0)
    with pytest.raises(ValueError, match="nt_type"):
        captum.NoiseTunnel(captum.Saliency(model)).attribute(batch, nt_type="vargrad", abs=False)
    with pytest.raises(ValueError, match="interpretable_model"):
        captum.Lime(model, interpretable_model=object())
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        captum.Occlusion(model).attribute(batch, sliding_window_shapes=(1, 8, 8))
    with pytest.raises(ValueError, match="forward_func"):
        captum.Saliency(lambda x: x)
    with pytest.raises(ValueError, match="method"):
        captum.IntegratedGradients(model).attribute(batch, method="simpson")


def test_captum_noise_tunnel_and_coalitions(model, batch):
    targets = [1, 3]
    smooth = captum.NoiseTunnel(captum.Saliency(model)).attribute(batch, nt_samples=4, stdevs=0.2, target=targets, abs=False)
    assert smooth.shape == batch.shape
    span = float(batch[0].max() - batch[0].min())
    direct = model.explain(batch[:1], "smoothgrad", target=[1], samples=4, noise=0.2 / span, progress=False).raw
    assert np.array_equal(smooth[:1], direct)
    # Captum's default abs=True averages |gradient| over the noisy copies.
    magnitude = captum.NoiseTunnel(captum.Saliency(model)).attribute(batch, nt_samples=4, stdevs=0.2, target=targets)
    assert np.array_equal(magnitude[:1], model.explain(batch[:1], "smoothgrad", target=[1], samples=4, noise=0.2 / span, absolute=True).raw)
    assert (magnitude >= 0).all() and relative_l2(magnitude, np.abs(smooth)) > 1e-3
    grid = np.repeat(np.arange(4), 16)[None, :] // 1
    mask = (np.arange(64)[:, None] // 16) * 4 + (np.arange(64)[None, :] // 16)
    shap = captum.KernelShap(model).attribute(batch, target=targets, feature_mask=mask[None, None], n_samples=64, return_input_shape=False)
    assert shap.shape == (2, 16)
    # Efficiency: the Shapley values add up to f(x) - f(0).
    logits, zero = model.predict(batch), model.predict(np.zeros_like(batch))
    for b, t in enumerate(targets):
        assert abs(shap[b].sum() - (logits[b, t] - zero[b, t])) < 1e-3 * max(1, abs(logits[b, t]))
    lime = captum.Lime(model).attribute(batch, target=targets, feature_mask=mask, n_samples=32)
    assert lime.shape == batch.shape and np.array_equal(lime[:, 0], lime[:, 2])
    del grid


@pytest.mark.parametrize("variant", ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam"])
def test_grad_cam_adapter_matches_pytorch_grad_cam(variant):
    folder = FIXTURES / "cam_resized"
    manifest = json.loads((folder / "manifest.json").read_text())
    x = np.load(folder / "input.npy")
    classes = {"gradcam": grad_cam.GradCAM, "gradcampp": grad_cam.GradCAMPlusPlus, "xgradcam": grad_cam.XGradCAM, "layercam": grad_cam.LayerCAM,
               "hirescam": grad_cam.HiResCAM}

    class ClassifierOutputTarget:
        def __init__(self, category):
            self.category = category
    with xai.Model(str(folder / "model.onnx")) as m, classes[variant](m, target_layers=[manifest["layer_value"]]) as cam:
        got = cam(x, targets=[ClassifierOutputTarget(int(t)) for t in np.load(folder / "target.npy")])
    want = np.load(folder / f"{variant}_resized.npy")
    assert got.shape == want.shape == (2, 40, 56) and got.dtype == np.float32
    assert np.abs(got - want).max() < 2e-3


# Version 2: knobs in snake_case, tensors instead of files, metrics, ScoreCAM


def test_knobs_are_snake_case_and_camel_case_is_deprecated(model, batch):
    knobs = dict(samples=16, segmentation="grid", segments=4, until_stable=0.5, coalition_sampling="leverage", control_variate=False)
    snake = model.explain(batch[:1], "kernelshap", progress=False, **knobs)
    with pytest.warns(DeprecationWarning) as warned:
        camel = model.explain(batch[:1], "kernelshap", progress=False, samples=16, segmentation="grid", segments=4, untilStable=0.5,
                              coalitionSampling="leverage", controlVariate=False)
    assert {"until_stable=", "coalition_sampling=", "control_variate="} <= {str(w.message).split()[-1] for w in warned}
    assert np.array_equal(snake.maps, camel.maps)
    assert snake.parameters["untilStable"] == "0.5" and snake.parameters["controlVariate"] == "false"
    with pytest.raises(ValueError, match="stepz"):
        model.explain(batch, "ig", stepz=3)


def test_baselines_and_feature_masks_pass_as_arrays(model, batch, tmp_path):
    baseline = np.random.default_rng(4).uniform(-1, 1, size=(3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "baseline.npy", baseline)
    from_file = model.explain(batch, "ig", progress=False, steps=8, baseline=str(tmp_path / "baseline.npy"))
    from_array = model.explain(batch, "ig", progress=False, steps=8, baseline=baseline)
    assert np.array_equal(from_file.maps, from_array.maps) and from_array.parameters["baseline"] == "tensor"
    quadrants = (np.arange(64)[:, None] // 32) * 2 + (np.arange(64)[None, :] // 32)
    given = model.explain(batch, "kernelshap", progress=False, samples=32, feature_mask=quadrants)
    grid = model.explain(batch, "kernelshap", progress=False, samples=32, segmentation="grid", segments=2)
    assert np.allclose(given.maps, grid.maps, atol=1e-5)
    per_image = model.explain(batch, "lime", progress=False, samples=16, feature_mask=np.stack([quadrants, quadrants.T]))
    assert len(np.unique(per_image.segments[0])) == 4
    with pytest.raises(ValueError, match="baseline"):
        model.explain(batch, "ig", baseline=np.zeros((3, 8, 8), np.float32))
    # Captum's baselines: a number fills every value, as an image of that number does.
    occluded = captum.Occlusion(model).attribute(batch, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16), baselines=0.5)
    full = captum.Occlusion(model).attribute(batch, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16),
                                             baselines=np.full((3, 64, 64), 0.5, np.float32))
    assert np.array_equal(occluded, full)


def test_evaluate_scores_as_the_cli_does(direct_convolutions, batch, tmp_path):
    model = direct_convolutions
    np.save(tmp_path / "image.npy", batch[1:2])
    subprocess.run([str(CLI), "evaluate", str(SMALL / "model.onnx"), str(tmp_path / "image.npy"), "--method", "ig", "--steps", "8",
                    "--metrics", "deletion,sparseness,sensitivity_max", "--sensitivity-samples", "3", "--step", "512", "--out", str(tmp_path / "out"),
                    "--quiet"], check=True, capture_output=True, env={**os.environ, "XAI_CONV_ALGO": "direct"})
    lines = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    cli = {line["metric"]: line["score"] for line in lines}
    got = model.evaluate(batch[1:2], method="ig", metrics=["deletion", "sparseness", "sensitivity_max"], steps=8, sensitivity_samples=3, step=512)
    assert {name: s.scores[0] for name, s in got.scores.items()} == pytest.approx(cli, rel=1e-12, abs=0)
    assert got["deletion"].direction == "lower" and got["sparseness"].direction == "higher" and len(got["deletion"].curves[0]) == 9
    # Maps given: scored as they are; the localisation metrics against masks.
    maps = model.explain(batch, "gradcam", progress=False).maps
    masks = np.zeros((2, 64, 64), np.float32)
    masks[:, :32] = 1
    scored = model.evaluate(batch, maps=maps, metrics="relevance_mass,pointing_game", masks=masks)
    positive = np.maximum(maps, 0)
    mass = (positive * masks).reshape(2, -1).sum(1) / positive.reshape(2, -1).sum(1)
    assert np.allclose(scored["relevance_mass"].scores, mass, rtol=1e-5)
    assert np.array_equal(scored.maps, maps)
    with pytest.raises(ValueError, match="method"):
        model.evaluate(batch, maps=maps, metrics="sensitivity_max")
    with pytest.raises(ValueError, match="sensitivity_samples|sensitivitySamples"):
        model.evaluate(batch, maps=maps, method="gradcam", metrics="sensitivity_max", sensitivity_samples=0)
    assert xai.metrics()["mprt"]["direction"] == "lower"


def test_score_cam_adapter_matches_pytorch_grad_cam(model, batch):
    targets = np.load(SMALL / "target.npy")
    raw = model.explain(batch, "scorecam", target=targets, progress=False)
    assert relative_l2(raw.raw, np.load(FIXTURES / "methods" / "small_resnet" / "scorecam.npy")) < 1e-3
    got = grad_cam.ScoreCAM(model)(batch, targets=[int(t) for t in targets])
    low = raw.maps.min(axis=(1, 2), keepdims=True)
    want = (raw.maps - low) / (1e-7 + (raw.maps - low).max(axis=(1, 2), keepdims=True))
    assert got.shape == (2, 64, 64) and np.allclose(got, want, atol=1e-6)


def test_precision_and_provenance(batch):
    with xai.Model(str(SMALL / "model.onnx"), precision="fast") as fast:
        assert fast.provenance["precision"] == "fast"
        e = fast.explain(batch, "occlusion", progress=False, window=16, stride=16)
        assert e.provenance["precision"] == "fast" and e.provenance["engine"] == f"xai {xai.version()}"
    with xai.Model(str(SMALL / "model.onnx")) as exact:
        assert exact.provenance["precision"] == "exact" and "direct convolutions" in exact.provenance["algorithms"]
    with xai.Model(str(SMALL / "model.onnx"), precision="tf32") as tf32:
        # The CPU has no tensor cores: its GEMMs run fp32, and the provenance records what ran.
        assert tf32.provenance["precision"] == "exact"
    with pytest.raises(ValueError, match="precision"):
        xai.Model(str(SMALL / "model.onnx"), precision="double")
