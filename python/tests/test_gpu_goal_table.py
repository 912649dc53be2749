"""Tools/gpu/goals.py: issue 32's goal table from one GPU call's files (checked on the committed
H200 call of 2026-11-27, whose table Benchmarks/RESULTS.md gives, and on made-up files)."""
import importlib.util
import json
import pathlib
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
H200 = ROOT / "Benchmarks" / "gpu" / "2026-11-27-h200"


def goals():
    spec = importlib.util.spec_from_file_location("goals", ROOT / "Tools" / "gpu" / "goals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(text, label):
    hits = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    assert len(hits) == 1, f"{label}: {hits}"
    return [cell.strip() for cell in hits[0].strip("|").split("|")]


def test_the_first_h200_call_gives_the_table_in_results():
    text = goals().table(str(H200))
    assert row(text, "fp32 GEMM 4096^3")[1:] == ["21.6 TFLOP/s (OpenCL gemm 4096^3)", "cuBLAS 50.5 TFLOP/s", "43 %", ">= 80 % of cuBLAS", "not met"]
    assert row(text, "ResNet-50 forward, batch 1")[3:] == ["1.70", "<= 1.0x", "not met"]
    assert row(text, "Integrated Gradients, 50 steps")[3] == "3.47"
    assert row(text, "SmoothGrad, 50 samples")[3] == "12.38"
    assert row(text, "occlusion")[3] == "2.39"
    assert row(text, "LIME")[3] == "1.12"
    assert row(text, "KernelSHAP")[3] == "1.37"
    # That call had no tensor-core rows, no RISE and no transfer counters: said, not guessed.
    assert row(text, "ResNet-50 forward, batch 32, --precision tf32 (per image)")[-1] == "not measured"
    assert row(text, "RISE")[-1] == "not measured"
    assert row(text, "host-device bytes, SmoothGrad")[-1] == "not measured"
    assert "tests: Executed 59 tests, with 0 failures" in text


def write(folder, name, value):
    (folder / name).write_text(json.dumps(value))


def peers(**seconds):
    return {"device": "GPU", "versions": {}, "ceiling": {"cublas_sgemm_4096_gflops": 50000.0},
            "results": [{"key": k, "per_image_s": {"median": v}} for k, v in seconds.items()]
            + [{"key": "forward_b256_tf32", "error": "RuntimeError: out of memory"}]}


def test_made_up_files_meet_and_miss_their_goals(tmp_path):
    write(tmp_path, "cuda_peers.json", peers(forward_b1=0.004, forward_b32=0.0004, forward_b256=0.0003, forward_b32_tf32=0.0002))
    write(tmp_path, "xai_ops.json", {"ceilingGFlops": 41000.0, "ceilingName": "OpenCL gemm 4096^3"})
    forward = lambda b, s, r="forward": {"model": "resnet50", "batch": b, "row": r, "secondsPerImage": s}
    # Batch 1 exactly at its goal (the same seconds as the peer): met.
    write(tmp_path, "xai_models.json", [forward(1, 0.004), forward(32, 0.00033)])
    write(tmp_path, "xai_models256.json", [forward(256, 0.00024)])
    write(tmp_path, "models_b32_tf32.json", [forward(32, 0.00021)])
    write(tmp_path, "models_b256_tf32.json", [forward(256, 0.0001)])
    image, map_ = 3 * 224 * 224 * 4, 224 * 224 * 4
    method = lambda name, s, captum=None, moved=None: {
        "method": name, "timing": {"median": s},
        "peers": [] if captum is None else [{"library": "captum", "medianSeconds": captum}],
        **({"transfers": {"bytesToDevice": moved[0], "bytesFromDevice": moved[1]}} if moved else {})}
    # A row of another model (the quick check's ResNet-18) is not held against ResNet-50's peers.
    write(tmp_path, "xai_methods.json", {"header": {"deviceDetails": "made up"}, "rows": [
        dict(method("ig", 9.0, 0.05), model="resnet18"), method("ig", 0.04, 0.05), method("smoothgrad", 0.05, 0.04, (image + 64, map_)), method("occlusion", 0.1, 0.25),
        method("lime", 0.2, 0.3), method("rise", 0.3)]})
    text = goals().table(str(tmp_path))
    assert row(text, "fp32 GEMM 4096^3")[3:] == ["82 %", ">= 80 % of cuBLAS", "met"]
    assert row(text, "ResNet-50 forward, batch 1")[3:] == ["1.00", "<= 1.0x", "met"]
    assert row(text, "ResNet-50 forward, batch 32 (per image)")[3:] == ["0.82", "<= 0.8x", "not met"]
    assert row(text, "ResNet-50 forward, batch 256 (per image)")[3:] == ["0.80", "<= 0.8x", "met"]
    assert row(text, "ResNet-50 forward, batch 32, --precision tf32 (per image)")[3:] == ["1.05", "<= 1.0x", "not met"]
    # The peer row errored (out of memory): no ratio, and no verdict either way.
    assert row(text, "ResNet-50 forward, batch 256, --precision tf32 (per image)")[3:] == ["-", "<= 1.0x", "not measured"]
    assert row(text, "Integrated Gradients, 50 steps")[3:] == ["0.80", "<= 1.0x Captum", "met"]
    assert row(text, "SmoothGrad, 50 samples")[3:] == ["1.25", "<= 1.0x Captum", "not met"]
    assert row(text, "occlusion")[3:] == ["0.40", "<= 0.5x Captum", "met"]
    assert row(text, "LIME")[3:] == ["0.67", "<= 0.5x Captum", "not met"]
    assert row(text, "KernelSHAP")[-1] == "not measured"
    assert row(text, "RISE")[1:] == ["300.000 ms", "Captum has no RISE", "-", "<= 0.5x Captum", "no peer"]
    assert row(text, "host-device bytes, SmoothGrad (per image)")[-1] == "met"
    # 75 % of cuBLAS is short of the GEMM goal.
    write(tmp_path, "xai_ops.json", {"ceilingGFlops": 37500.0, "ceilingName": "OpenCL gemm 4096^3"})
    assert row(goals().table(str(tmp_path)), "fp32 GEMM 4096^3")[3:] == ["75 %", ">= 80 % of cuBLAS", "not met"]
    # Anything past the image crossing in is not "image + map only".
    write(tmp_path, "xai_methods.json", {"rows": [method("smoothgrad", 0.05, 0.04, (2 * image, map_))]})
    assert row(goals().table(str(tmp_path)), "host-device bytes, SmoothGrad (per image)")[-1] == "not met"


def test_an_empty_folder_measures_nothing(tmp_path):
    text = goals().table(str(tmp_path))
    verdicts = [line.strip("|").split("|")[-1].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert verdicts and all(v in ("not measured", "-") for v in verdicts), verdicts
