"""Scale-out without a scheduler of our own (docs/scale-out.md): the committed Slurm and Kubernetes
examples say what they mean, and shards of one run, merged, are the single-process run."""
import json
import os
import pathlib
import re
import subprocess

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
