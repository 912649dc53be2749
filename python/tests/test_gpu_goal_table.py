"""Tools/gpu/goals.py: issue 32's goal table from one GPU call's files (checked on the committed
H200 call of 2026-11-27, whose table Benchmarks/RESULTS.md gives, and on made-up files)."""
import importlib.util
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
H200 = ROOT / "Benchmarks" / "gpu" / "2026-11-27-h200"
IMAGE, MAP, LOGITS = 3 * 224 * 224 * 4, 3 * 224 * 224 * 4, 1000 * 4


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
    # RESULTS.md's ratios for that call, to two digits: 43 %, 1.70, 3.47, 12.4, 2.39, 1.12, 1.37.
    text = goals().table(str(H200))
    assert row(text, "fp32 GEMM 4096^3")[1:] == ["21.6 TFLOP/s (OpenCL gemm 4096^3)", "cuBLAS 50.5 TFLOP/s", "42.7 %", ">= 80 % of cuBLAS", "not met"]
    assert row(text, "ResNet-50 forward, batch 1")[3:] == ["1.700", "<= 1.0x", "not met"]
    assert row(text, "forward + backward to the input, batch 1")[3:] == ["1.233", "(no goal)", "-"]
    assert row(text, "Integrated Gradients, 50 steps")[3] == "3.472"
    assert row(text, "SmoothGrad, 50 samples")[3] == "12.381"
    assert row(text, "occlusion")[3] == "2.387"
    assert row(text, "LIME")[3] == "1.117"
    assert row(text, "KernelSHAP")[3] == "1.369"
    # That call had no tensor-core rows, no RISE and no transfer counters: said, not guessed.
    assert row(text, "ResNet-50 forward, batch 32, --precision tf32 (per image)")[-1] == "not measured"
    assert row(text, "RISE")[-1] == "not measured"
    assert row(text, "host-device bytes, SmoothGrad")[-1] == "not measured"
    assert "tests: Executed 59 tests, with 0 failures (0 unexpected) in 25.663 (25.663) seconds (exit 0 after 26s)" in text


def write(folder, name, value):
    (folder / name).write_text(value if isinstance(value, str) else json.dumps(value))


def peers(**seconds):
    return {"device": "GPU", "versions": {}, "ceiling": {"cublas_sgemm_4096_gflops": 50000.0},
            "results": [{"key": k, "per_image_s": {"median": v}} for k, v in seconds.items()]
            + [{"key": "forward_b256_tf32", "error": "RuntimeError: out of memory"}]}


def forward(b, s, r="forward"):
    return {"model": "resnet50", "batch": b, "row": r, "secondsPerImage": s}


def method(name, s, peer=None, moved=None, library="captum"):
    return {"method": name, "timing": {"median": s},
            "peers": [] if peer is None else [{"library": library, "medianSeconds": peer}],
            **({"transfers": {"bytesToDevice": moved[0], "bytesFromDevice": moved[1]}} if moved else {})}


def test_made_up_files_meet_and_miss_their_goals(tmp_path):
    write(tmp_path, "cuda_peers.json", peers(forward_b1=0.004, forward_b32=0.0004, forward_b256=0.0003, forward_b32_tf32=0.0002))
    write(tmp_path, "xai_ops.json", {"ceilingGFlops": 41000.0, "ceilingName": "OpenCL gemm 4096^3"})
    # Batch 1 exactly at its goal (the same seconds as the peer): met.
    write(tmp_path, "xai_models.json", [dict(forward(1, 0.009), model="resnet18"), forward(1, 0.004), forward(32, 0.00033)])
    write(tmp_path, "xai_models256.json", [forward(256, 0.00024)])
    write(tmp_path, "models_b32_tf32.json", [forward(32, 0.00021)])
    write(tmp_path, "models_b256_tf32.json", [forward(256, 0.0001)])
    # A row of another model (the quick check's ResNet-18) is not held against ResNet-50's peers.
    # SmoothGrad's counts are DeviceResidencyTests': the image in; the raw map and the logits out.
    write(tmp_path, "xai_methods.json", {"header": {"deviceDetails": "made up"}, "rows": [
        dict(method("ig", 9.0, 0.05), model="resnet18"), method("ig", 0.04, 0.05), method("smoothgrad", 0.05, 0.04, (IMAGE, MAP + LOGITS)),
        method("occlusion", 0.1, 0.25), method("lime", 0.2, 0.3), method("rise", 0.3, 0.5, library="torchray"), method("kernelshap", 0.4)]})
    text = goals().table(str(tmp_path))
    assert text.startswith("xai: made up; peers: GPU") and "\n|---|---|---|---|---|---|\n" in text
    assert row(text, "fp32 GEMM 4096^3")[3:] == ["82.0 %", ">= 80 % of cuBLAS", "met"]
    assert row(text, "ResNet-50 forward, batch 1")[3:] == ["1.000", "<= 1.0x", "met"]
    assert row(text, "ResNet-50 forward, batch 32 (per image)")[3:] == ["0.825", "<= 0.8x", "not met"]
    assert row(text, "ResNet-50 forward, batch 256 (per image)")[3:] == ["0.800", "<= 0.8x", "met"]
    assert row(text, "ResNet-50 forward, batch 32, --precision tf32 (per image)")[3:] == ["1.050", "<= 1.0x", "not met"]
    # The peer row errored (out of memory): no ratio, and no verdict either way.
    assert row(text, "ResNet-50 forward, batch 256, --precision tf32 (per image)")[3:] == ["-", "<= 1.0x", "not measured"]
    assert row(text, "Integrated Gradients, 50 steps")[3:] == ["0.800", "<= 1.0x Captum", "met"]
    assert row(text, "SmoothGrad, 50 samples")[3:] == ["1.250", "<= 1.0x Captum", "not met"]
    assert row(text, "occlusion")[3:] == ["0.400", "<= 0.5x Captum", "met"]
    assert row(text, "LIME")[3:] == ["0.667", "<= 0.5x Captum", "not met"]
    assert row(text, "KernelSHAP")[2:] == ["no Captum row", "-", "<= 0.5x Captum", "no peer"]
    # Captum has no RISE: TorchRay's is its peer.
    assert row(text, "RISE")[1:] == ["300.000 ms", "TorchRay 500.000 ms", "0.600", "<= 0.5x TorchRay (Captum has no RISE)", "not met"]
    assert row(text, "host-device bytes, SmoothGrad (per image)")[1:3] == ["in 0.602 MB, out 0.606 MB",
                                                                        "image 0.602 MB in; map 0.602 MB and logits 0.004 MB out"]
    assert row(text, "host-device bytes, SmoothGrad (per image)")[-1] == "met"
    # 4 KiB past the image is within the slack for the target and scalars.
    write(tmp_path, "xai_methods.json", {"rows": [method("smoothgrad", 0.05, 0.04, (IMAGE + 4096, MAP + LOGITS))]})
    assert row(goals().table(str(tmp_path)), "host-device bytes, SmoothGrad (per image)")[-1] == "met"
    # RISE at half TorchRay's time meets its goal; Captum's row (were there one) is not its peer.
    write(tmp_path, "xai_methods.json", {"rows": [method("rise", 0.25, 0.5, library="torchray")]})
    assert row(goals().table(str(tmp_path)), "RISE")[3:] == ["0.500", "<= 0.5x TorchRay (Captum has no RISE)", "met"]
    write(tmp_path, "xai_methods.json", {"rows": [method("rise", 0.1, 0.5)]})
    assert row(goals().table(str(tmp_path)), "RISE")[2:] == ["no TorchRay row", "-", "<= 0.5x TorchRay (Captum has no RISE)", "no peer"]
    # 75 % of cuBLAS is short of the GEMM goal.
    write(tmp_path, "xai_ops.json", {"ceilingGFlops": 37500.0, "ceilingName": "OpenCL gemm 4096^3"})
    assert row(goals().table(str(tmp_path)), "fp32 GEMM 4096^3")[3:] == ["75.0 %", ">= 80 % of cuBLAS", "not met"]
    # Anything past the image (and 4 KiB) crossing in, or past the map and logits coming back, is not
    # "image + map only".
    for moved in [(2 * IMAGE, MAP + LOGITS), (IMAGE, 2 * MAP), (IMAGE + 4097, MAP + LOGITS), (IMAGE, MAP + LOGITS + 4)]:
        write(tmp_path, "xai_methods.json", {"rows": [method("smoothgrad", 0.05, 0.04, moved)]})
        assert row(goals().table(str(tmp_path)), "host-device bytes, SmoothGrad (per image)")[-1] == "not met", moved


def test_the_tests_line_is_the_test_steps_own(tmp_path):
    # The build-report step runs the test binary again on two tests, after the test step: its
    # summary must not stand for the test step's, which had failures.
    write(tmp_path, "log.txt", "\n".join([
        "== pack: commit abc", "== tests on every backend (GPU included) (limit 150s, 10:00:00)",
        "\t Executed 12 tests, with 0 failures (0 unexpected) in 1.0 (1.0) seconds",
        "\t Executed 161 tests, with 3 failures (0 unexpected) in 60.0 (60.0) seconds",
        "== tests on every backend (GPU included): exit 1 after 61s",
        "== kernel build reports (tensor cores, tiled GEMM) (limit 60s, 10:05:00)",
        "\t Executed 2 tests, with 0 failures (0 unexpected) in 3.0 (3.0) seconds",
        "== kernel build reports (tensor cores, tiled GEMM): exit 0 after 4s",
        "== xai-bench methods: skipped, the call's budget (XAI_GPU_BUDGET=480s) is spent", ""]))
    text = goals().table(str(tmp_path))
    assert "\npack: commit abc\n" in text and "| row | xai | peer | xai / peer | goal | |" in text
    assert "tests: Executed 161 tests, with 3 failures (0 unexpected) in 60.0 (60.0) seconds (exit 1 after 61s)" in text
    assert "skipped for the call's budget: xai-bench methods" in text
    # A test step cut by its time limit has no summary: said so, with its exit.
    write(tmp_path, "log.txt", "== tests on every backend (GPU included) (limit 150s, 10:00:00)\n"
          "\t Executed 12 tests, with 0 failures (0 unexpected) in 1.0 (1.0) seconds\n"
          "== tests on every backend (GPU included): exit 124 after 150s (time limit)\n")
    assert "tests: Executed 12 tests" in goals().table(str(tmp_path))   # the last suite it finished, beside its exit
    assert "(exit 124 after 150s (time limit))" in goals().table(str(tmp_path))
    write(tmp_path, "log.txt", "== tests on every backend (GPU included) (limit 150s, 10:00:00)\n"
          "== tests on every backend (GPU included): exit 124 after 150s (time limit)\n")
    assert "tests: no summary (exit 124 after 150s (time limit))" in goals().table(str(tmp_path))
    write(tmp_path, "log.txt", "== tests on every backend (GPU included): skipped, the call's budget (XAI_GPU_BUDGET=480s) is spent\n")
    assert "tests: tests on every backend (GPU included): skipped, the call's budget" in goals().table(str(tmp_path))


def test_between_the_goals(tmp_path):
    # Batch 1 at 1.2x and 32 under tf32 at 1.2x PyTorch: short of 1.0x.
    write(tmp_path, "cuda_peers.json", peers(forward_b1=0.005, forward_b32_tf32=0.0005))
    write(tmp_path, "xai_models.json", [forward(1, 0.006)])
    write(tmp_path, "models_b32_tf32.json", [forward(32, 0.0006)])
    write(tmp_path, "xai_ops.json", {"backend": "opencl:0 (made up)", "ceilingGFlops": 1000.0, "ceilingName": "OpenCL gemm 1024^3"})
    text = goals().table(str(tmp_path))
    assert row(text, "ResNet-50 forward, batch 1")[3:] == ["1.200", "<= 1.0x", "not met"]
    assert row(text, "ResNet-50 forward, batch 32, --precision tf32 (per image)")[3:] == ["1.200", "<= 1.0x", "not met"]
    # Without the methods' header, the device is the ops bench's backend; a GEMM size cuBLAS did not run has no ratio.
    assert text.startswith("xai: opencl:0 (made up); peers: GPU")
    assert row(text, "fp32 GEMM 1024^3")[2:] == ["no cuBLAS row at that size", "-", ">= 80 % of cuBLAS", "not measured"]


def test_the_command_line(capsys, tmp_path):
    assert goals().main(["goals.py", str(H200)]) == 0
    assert "| Integrated Gradients, 50 steps | 144.636 ms |" in capsys.readouterr().out
    assert goals().main(["goals.py"]) == 2
    assert "goals.py OUT [ROWS]" in capsys.readouterr().out
    assert goals().main(["goals.py", "--help"]) == 0
    assert "goals.py OUT [ROWS]" in capsys.readouterr().out
    # As run.sh runs it: a script.
    done = subprocess.run([sys.executable, str(ROOT / "Tools" / "gpu" / "goals.py"), str(H200)], capture_output=True, text=True)
    assert done.returncode == 0 and "| SmoothGrad, 50 samples | 480.616 ms |" in done.stdout, done.stderr
    assert subprocess.run([sys.executable, str(ROOT / "Tools" / "gpu" / "goals.py")], capture_output=True).returncode == 2
    # ROWS: the tensor-core rows' folder, apart from OUT.
    write(tmp_path, "models_b32_tf32.json", [forward(32, 0.0006)])
    write(tmp_path, "cuda_peers.json", peers(forward_b32_tf32=0.0005))
    assert goals().main(["goals.py", str(tmp_path / "none"), str(tmp_path)]) == 0
    assert "| ResNet-50 forward, batch 32, --precision tf32 (per image) | 0.600 ms |" in capsys.readouterr().out


def test_malformed_files_lose_their_rows_only(tmp_path):
    # Counters with one direction missing measure nothing.
    write(tmp_path, "xai_methods.json", {"rows": [{"method": "smoothgrad", "transfers": {"bytesToDevice": IMAGE}}]})
    assert row(goals().table(str(tmp_path)), "host-device bytes, SmoothGrad")[-1] == "not measured"
    write(tmp_path, "cuda_peers.json", [1, 2])                                  # a list, not the peer report
    write(tmp_path, "xai_ops.json", {"ceilingGFlops": None, "ceilingName": "OpenCL gemm 4096^3"})
    write(tmp_path, "xai_models.json", {"rows": [forward(1, 0.004)]})           # rows under a key
    write(tmp_path, "xai_models256.json", "{not json")
    write(tmp_path, "xai_methods.json", {"rows": [{"method": "ig", "peers": [{"library": "captum", "medianSeconds": 0.05}]},
                                                  {"method": "lime", "timing": {"median": "slow"}}, "junk",
                                                  method("occlusion", 0.1, 0.25)]})
    text = goals().table(str(tmp_path))
    assert row(text, "fp32 GEMM 4096^3")[-1] == "not measured"
    assert row(text, "ResNet-50 forward, batch 1")[1] == "4.000 ms"
    assert row(text, "ResNet-50 forward, batch 1")[-1] == "not measured"   # no peer file
    assert row(text, "Integrated Gradients, 50 steps")[-1] == "not measured"   # no timing
    assert row(text, "LIME")[-1] == "not measured"
    assert row(text, "occlusion")[3:] == ["0.400", "<= 0.5x Captum", "met"]


def test_an_empty_folder_measures_nothing(tmp_path):
    text = goals().table(str(tmp_path))
    assert row(text, "KernelSHAP")[1:] == ["-", "Captum -", "-", "<= 0.5x Captum", "not measured"]
    verdicts = [line.strip("|").split("|")[-1].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert verdicts and all(v in ("not measured", "-") for v in verdicts), verdicts
