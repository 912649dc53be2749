"""xai.ray on a local Ray cluster of 2 CPUs: the maps of one `xai explain` process, bit for bit; a worker killed
mid-run leaves nothing missing or twice; a second run resumes; bad files and an unreadable model fail as
documented. Skipped, saying so, where Ray is not installed (`make test` installs it into the wheel's venv)."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install \"xai-attribution-engine[ray]\"): the Ray tests do not run")

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = pathlib.Path(os.environ.get("XAI_CLI", ROOT / ".build" / "release" / "xai"))
MODEL = str(ROOT / "Demo" / "model.onnx")
SAMPLES = ROOT / "Demo" / "samples"
KNOBS = {"steps": 8, "samples": 64, "seed": 7}
METHODS = "gradcam,ig,kernelshap"


@pytest.fixture(scope="module")
def cluster():
    # Workers inherit the driver's environment: the same library and, from a checkout, the same package.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pathlib.Path(__import__("xai").__file__).parents[1]),
                                                             os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process run the Ray runs must equal."""
    out = tmp_path_factory.mktemp("single")
    subprocess.run([str(CLI), "explain", MODEL, str(SAMPLES), "--method", METHODS, "--steps", "8", "--samples", "64", "--seed", "7",
                    "--save", "raw", "--quiet", "--out", str(out)], check=True, capture_output=True)
    return out


def _records(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]


def _same_as_single(out, single):
    records, expected = _records(out / "results.jsonl"), _records(single / "results.jsonl")
    key = lambda r: (r["image"], r["method"])
    assert len(expected) == 12 * 3
    assert sorted(map(key, records)) == sorted(map(key, expected)), "every image and method exactly once"
    mine = {key(r): r for r in records}
    for r in expected:
        other = mine[key(r)]
        assert other["stem"] == r["stem"] and other["target"] == r["target"] and other["files"] == r["files"]
        for name in r["files"]:
            assert (single / r["stem"] / name).read_bytes() == (out / r["stem"] / name).read_bytes(), f"{r['stem']}/{name} differs"


def test_two_workers_write_the_single_process_maps(cluster, single, tmp_path):
    import xai.ray
    summary = xai.ray.explain(str(SAMPLES), MODEL, METHODS, str(tmp_path), workers=2, batch_size=3, save="raw", progress=False, **KNOBS)
    assert summary["failures"] == [] and summary["written"] == 36 and summary["skipped"] == 0 and summary["files"] == 12
    assert len(summary["workers"]) == 2 and len({w["pid"] for w in summary["workers"]}) == 2
    _same_as_single(tmp_path, single)
    # Run again: everything is recorded, nothing is redone or written twice.
    before = (tmp_path / "results.jsonl").read_bytes()
    again = xai.ray.explain(str(SAMPLES), MODEL, METHODS, str(tmp_path), workers=2, save="raw", progress=False, **KNOBS)
    assert again["written"] == 0 and again["skipped"] == 36 and again["workers"] == []
    assert (tmp_path / "results.jsonl").read_bytes() == before
    # The driver killed while it wrote the last line: that line is torn. The next run cuts it off and redoes its map.
    lines = before.decode().splitlines(keepends=True)
    (tmp_path / "results.jsonl").write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    resumed = xai.ray.explain(str(SAMPLES), MODEL, METHODS, str(tmp_path), workers=1, save="raw", progress=False, **KNOBS)
    assert resumed["written"] == 1 and resumed["skipped"] == 35
    _same_as_single(tmp_path, single)


def _worker_pids():
    found = subprocess.run(["pgrep", "-f", "ray::XAIWorker"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(cluster, single, tmp_path):
    """A batch is back and others are running or queued (two per worker) when one worker's process is killed
    outright: Ray restarts it and runs its batch again; the output is complete, once, and the same bytes."""
    import xai.ray
    done, killed, outcome = [], [], {}

    def progress(n, total):
        done.append(n)

    def run():
        try:
            outcome["summary"] = xai.ray.explain(str(SAMPLES), MODEL, METHODS, str(tmp_path), workers=2, batch_size=2, save="raw",
                                                 progress=progress, **KNOBS)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 300
    while not done and thread.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    # A batch is back, the others are running or queued (two per worker): kill one worker outright.
    pids = _worker_pids()
    assert pids, "no worker process found"
    os.kill(pids[0], signal.SIGKILL)
    killed_at = time.time()
    killed.append(pids[0])
    thread.join(timeout=600)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert killed[0] in {w["pid"] for w in summary["workers"]}, "the process killed was a worker of this run"
    started = {w["pid"] for w in summary["workers"]}
    assert {m["pid"] for m in summary["memory"]} - started, "batches came back from the restarted worker"
    # A batch the killed worker finished just before the kill may still arrive after it (the driver counts it
    # then), so what is checked is when each batch was finished, not when it came back.
    assert not [m for m in summary["memory"] if m["pid"] == killed[0] and m["finished"] > killed_at], "nothing finished by the killed one after"
    assert summary["failures"] == [] and summary["written"] == 36, summary
    assert done[-1] == 12
    _same_as_single(tmp_path, single)


def test_bad_files_fail_alone_and_an_unreadable_model_fails_first(cluster, tmp_path):
    import xai
    import xai.ray
    images = tmp_path / "images"
    images.mkdir()
    for name in sorted(os.listdir(SAMPLES))[:3]:
        (images / name).write_bytes((SAMPLES / name).read_bytes())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    out = tmp_path / "out"
    summary = xai.ray.explain(str(images), MODEL, "gradcam", str(out), workers=2, batch_size=2, progress=False)
    assert summary["written"] == 3 and len(summary["failures"]) == 1 and "broken.png" in summary["failures"][0]
    failures = _records(out / "failures.jsonl")
    assert len(failures) == 1 and "broken.png" in failures[0]["error"]
    assert (out / "index.html").exists(), "the report, written once at the end"
    with pytest.raises(xai.FileError, match="not readable from node"):
        xai.ray.explain(str(images), str(tmp_path / "missing" / "model.onnx"), "gradcam", str(tmp_path / "none"), workers=1,
                        progress=False)
    assert not (tmp_path / "none" / "results.jsonl").exists() or not _records(tmp_path / "none" / "results.jsonl")
    with pytest.raises(xai.InvalidArgumentError, match="stepz"):
        xai.ray.explain(str(images), MODEL, "gradcam", str(tmp_path / "none"), stepz=3)
    with pytest.raises(xai.InvalidArgumentError, match="nosuch"):
        xai.ray.explain(str(images), MODEL, "gradcam,nosuch", str(tmp_path / "none"))


def test_command_line_and_parquet(cluster, single, tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow (ray[data])")
    import pyarrow.parquet as pq
    env = dict(os.environ)
    run = subprocess.run([sys.executable, "-m", "xai.ray", MODEL, str(SAMPLES), "--method", "gradcam", "--out", str(tmp_path),
                          "--address", cluster, "--workers", "2", "--save", "raw", "--format", "parquet", "--quiet",
                          "--knob", "seed=7"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "12 maps written" in run.stdout, run.stdout
    table = pq.read_table(str(tmp_path / "parquet")).to_pydict()
    assert sorted(table["stem"]) == sorted(r["stem"] for r in _records(tmp_path / "results.jsonl"))
    for stem, method, h, w, values in zip(table["stem"], table["method"], table["height"], table["width"], table["map"]):
        expected = np.load(single / stem / f"{method}.npy")
        assert (h, w) == expected.shape
        assert np.array_equal(np.asarray(values, dtype=np.float32).reshape(h, w), expected)
    # A Ray Dataset of paths is an input too: the same maps.
    import xai.ray
    rows = ray.data.from_items([{"path": str(SAMPLES / name)} for name in sorted(os.listdir(SAMPLES))[:4]])
    summary = xai.ray.explain(rows, MODEL, "gradcam", str(tmp_path / "dataset"), workers=1, save="raw", progress=False, seed=7)
    assert summary["written"] == 4 and summary["failures"] == []
    for r in _records(tmp_path / "dataset" / "results.jsonl"):
        assert (tmp_path / "dataset" / r["stem"] / "gradcam.npy").read_bytes() == (single / r["stem"] / "gradcam.npy").read_bytes()


def test_evaluate_scores_what_xai_evaluate_scores(cluster, tmp_path):
    """xai.ray.evaluate on two workers writes the lines one `xai evaluate` writes (maps made where missing), once each,
    and resumes."""
    import xai.ray
    metrics = "deletion,sparseness,pointing_game"
    masks = str(ROOT / "Demo" / "masks")
    subprocess.run([str(CLI), "evaluate", MODEL, str(SAMPLES), "--method", "gradcam,saliency", "--metrics", metrics, "--ground-truth", masks,
                    "--step", "256", "--quiet", "--out", str(tmp_path / "single")], check=True, capture_output=True)
    summary = xai.ray.evaluate(str(SAMPLES), MODEL, "gradcam,saliency", metrics, str(tmp_path / "ray"), masks=masks, workers=2, batch_size=4,
                               step=256, progress=False)
    assert summary["failures"] == [] and summary["written"] == 12 * 2 * 3 and summary["skipped"] == 0
    key = lambda r: (r["image"], r["method"], r["metric"])
    single = {key(r): r for r in _records(tmp_path / "single" / "metrics.jsonl")}
    mine = _records(tmp_path / "ray" / "metrics.jsonl")
    assert sorted(map(key, mine)) == sorted(single), "every image x method x metric exactly once"
    for r in mine:
        expected = single[key(r)]
        assert r["score"] == expected["score"] and r.get("curve") == expected.get("curve") and r["stem"] == expected["stem"], key(r)
    assert {(s["method"], s["metric"]) for s in summary["scores"]} == {(m, k) for m in ("gradcam", "saliency") for k in metrics.split(",")}
    assert all(s["count"] == 12 for s in summary["scores"])
    assert (tmp_path / "ray" / "index.html").exists()
    again = xai.ray.evaluate(str(SAMPLES), MODEL, "gradcam,saliency", metrics, str(tmp_path / "ray"), masks=masks, workers=2, step=256,
                             progress=False)
    assert again["written"] == 0 and again["skipped"] == 72 and again["workers"] == []
