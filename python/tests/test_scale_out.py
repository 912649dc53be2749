"""Scale-out without a scheduler of our own (docs/scale-out.md): the committed Slurm and Kubernetes
examples say what they mean, and shards of one run, merged, are the single-process run."""
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = pathlib.Path(os.environ.get("XAI_CLI", ROOT / ".build" / "release" / "xai"))
EXAMPLES = ROOT / "docs" / "examples"


def test_kubernetes_indexed_job_is_consistent():
    yaml = pytest.importorskip("yaml", reason="PyYAML (Debian's python3-yaml) parses the example")
    job = yaml.safe_load((EXAMPLES / "k8s-indexed-job.yaml").read_text())
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    command = " ".join(container["command"] + container["args"])
    shards = re.search(r'--shard "\$JOB_COMPLETION_INDEX/(\d+)"', command)
    assert shards, command
    assert spec["completions"] == int(shards.group(1)), "one pod per shard"
    assert spec["parallelism"] <= spec["completions"]
    assert re.search(r'--out "[^"]*\$JOB_COMPLETION_INDEX"', command), "each pod writes its own folder"
    volumes = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes
    paths = [m["mountPath"] for m in container["volumeMounts"]]
    for used in re.findall(r"(?<![\w$])(/[A-Za-z][\w/.-]*)", command):
        assert any(used.startswith(p) for p in paths), f"{used} is on no mounted volume"


def test_slurm_array_is_consistent():
    script = (EXAMPLES / "slurm-array.sh").read_text()
    subprocess.run(["bash", "-n", str(EXAMPLES / "slurm-array.sh")], check=True)
    first, last = map(int, re.search(r"^#SBATCH --array=(\d+)-(\d+)$", script, re.M).groups())
    shards = int(re.search(r"^SHARDS=(\d+)", script, re.M).group(1))
    assert (first, last) == (0, shards - 1), "task ids 0..N-1, one per shard"
    assert '--shard "$SLURM_ARRAY_TASK_ID/$SHARDS"' in script
    assert '--out "$OUT/shard-$SLURM_ARRAY_TASK_ID"' in script


def _records(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]


def _explain(out, *extra):
    subprocess.run([str(CLI), "explain", str(ROOT / "Demo" / "model.onnx"), str(ROOT / "Demo" / "samples"),
                    "--method", "gradcam,ig,kernelshap", "--steps", "8", "--samples", "64", "--seed", "7",
                    "--save", "raw", "--quiet", "--out", str(out), *extra], check=True, capture_output=True)


def test_shards_merged_are_the_single_process_run(tmp_path):
    shards = 3
    _explain(tmp_path / "one")
    for i in range(shards):
        _explain(tmp_path / "out" / f"shard-{i}", "--shard", f"{i}/{shards}")
    merged = [r for i in range(shards) for r in _records(tmp_path / "out" / f"shard-{i}" / "results.jsonl")]
    single = _records(tmp_path / "one" / "results.jsonl")
    key = lambda r: (r["image"], r["method"])
    assert len(single) == 12 * 3
    assert sorted(map(key, merged)) == sorted(map(key, single)), "every image and method exactly once"
    where = {key(r): i for i in range(shards) for r in _records(tmp_path / "out" / f"shard-{i}" / "results.jsonl")}
    for r in single:
        shard = tmp_path / "out" / f"shard-{where[key(r)]}" / r["stem"]
        for name in r["files"]:
            a, b = np.load(tmp_path / "one" / r["stem"] / name), np.load(shard / name)
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"{r['stem']}/{name} differs"
    # A shard run again (a retried task) skips what it wrote: no new lines, the same bytes.
    before = (tmp_path / "out" / "shard-1" / "results.jsonl").read_bytes()
    _explain(tmp_path / "out" / "shard-1", "--shard", f"1/{shards}")
    assert (tmp_path / "out" / "shard-1" / "results.jsonl").read_bytes() == before


def test_explain_files_is_the_single_process_run(tmp_path):
    """What a worker of a larger run does (Model.explain_files with the files and folders the driver named from
    xai.list_inputs), split over two calls in any order, is the single `xai explain` run: the same folders,
    the same records, the same bytes."""
    import xai
    _explain(tmp_path / "one")
    files = xai.list_inputs(str(ROOT / "Demo" / "samples"))
    assert len(files) == 12 and len({s for _, s in files}) == 12
    assert xai.list_inputs(str(ROOT / "Demo" / "samples"), shard="1/3") == files[1::3]
    with xai.Model(str(ROOT / "Demo" / "model.onnx")) as model:
        for part in (files[1::2], files[::2]):
            summary = model.explain_files(files=part, out=tmp_path / "two", method="gradcam,ig,kernelshap", steps=8, samples=64,
                                          seed=7, save="raw")
            assert summary["failures"] == [] and summary["written"] == 3 * len(part) and summary["report"] is None
        again = model.explain_files(files=files[:2], out=tmp_path / "two", method="gradcam", save="raw")
        assert again["written"] == 0 and again["skipped"] == 2
    single, split = _records(tmp_path / "one" / "results.jsonl"), _records(tmp_path / "two" / "results.jsonl")
    key = lambda r: (r["image"], r["method"])
    assert sorted(map(key, split)) == sorted(map(key, single))
    by_key = {key(r): r for r in split}
    for r in single:
        other = by_key[key(r)]
        assert {k: v for k, v in r.items() if k != "seconds"} == {k: v for k, v in other.items() if k != "seconds"}
        for name in r["files"]:
            a, b = (tmp_path / "one" / r["stem"] / name).read_bytes(), (tmp_path / "two" / r["stem"] / name).read_bytes()
            assert a == b, f"{r['stem']}/{name} differs"
    assert pathlib.Path(xai.write_report(tmp_path / "two")).name == "index.html"


def test_explain_files_reports_bad_files_and_arguments(tmp_path):
    import xai
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    good = ROOT / "Demo" / "samples" / sorted(os.listdir(ROOT / "Demo" / "samples"))[0]
    with xai.Model(str(ROOT / "Demo" / "model.onnx")) as model:
        summary = model.explain_files([str(bad), str(good)], out=tmp_path / "out", method="saliency", save="raw")
        assert summary["written"] == 1 and len(summary["failures"]) == 1 and str(bad) in summary["failures"][0]
        assert summary["warnings"] == [], "a saliency map of a photo is not constant"
        with pytest.raises(xai.InvalidArgumentError, match="stems"):
            model.explain_files(files=[(str(good), "../escape")], out=tmp_path / "out")
        with pytest.raises(xai.InvalidArgumentError, match="stepz"):
            model.explain_files([str(good)], out=tmp_path / "out", stepz=3)
        with pytest.raises(xai.InvalidArgumentError, match="inputs"):
            model.explain_files(out=tmp_path / "out")
        calls = []
        with pytest.raises(xai.CancelledError):
            model.explain_files([str(good), str(good)], out=tmp_path / "cancel", method="saliency", image_batch=1, save="raw",
                                progress=lambda done, total: calls.append((done, total)) or done >= 1)
        assert calls == [(0, 1), (1, 2)]


def test_xai_ray_without_ray_names_the_extra():
    code = "import sys; sys.modules['ray'] = None\ntry:\n    import xai.ray\nexcept ImportError as e:\n    print(e)\n"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    assert "xai-attribution-engine[ray]" in out, out
