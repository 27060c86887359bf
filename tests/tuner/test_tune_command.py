"""`fleetplan tune`: offline calibration from measurements in JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from queue_models import get_queue_model
from specs.loading import load_fleet
from tests.conftest import REPO_ROOT, shared_path
from tests.tuner.helpers import NOISE
from tuner.observation import Observation
from tuner.synthetic import Truth, synthetic_observations

EXAMPLE_SPEC = REPO_ROOT / "specs" / "examples" / "h100-vllm.json"
TRUTH = Truth("llama_3_1_8b", "H100", 8.0, 0.03, 7e-5)  # not the example spec's profile


def record(obs: Observation) -> dict:
    return {"model": obs.model, "accelerator": obs.accelerator,
            "arrival_rate_rpm": obs.arrival_rate_rps * 60, "in_tokens": obs.in_tokens,
            "out_tokens": obs.out_tokens, "max_batch": obs.max_batch, "ttft_ms": obs.ttft_ms,
            "itl_ms": obs.itl_ms, "running": obs.running}


def write_records(path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    observations = synthetic_observations(TRUTH, get_queue_model("batch-queue"), rng, n,
                                          noise=NOISE)
    path.write_text("# measured on the bench\n"
                    + "".join(json.dumps(record(o)) + "\n" for o in observations))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict | None, str]:
    code = main(["tune", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def within(found: dict, truth: Truth, rel: float) -> bool:
    return all(found[k] == pytest.approx(v, rel=rel) for k, v in
               (("alpha", truth.alpha_ms), ("beta", truth.beta_ms), ("gamma", truth.gamma_ms)))


def test_tune_without_spec_fits_then_filters(tmp_path: Path, capsys) -> None:
    path = write_records(tmp_path / "obs.jsonl", 20)
    code, document, _ = run(capsys, str(path), "--ttft-noise", "0.05", "--running-noise", "0.05")
    assert code == 0
    (found,) = document["profiles"]
    assert found["model"] == "llama_3_1_8b" and found["accelerator"] == "H100"
    assert found["start"] == "fit" and found["observations"] == 20
    assert within(found, TRUTH, 0.10), found
    assert found["ttft_error_pct"] < 10 and found["itl_error_pct"] < 10


def test_tune_starts_from_the_spec_and_writes_a_merged_spec(tmp_path: Path, capsys) -> None:
    path = write_records(tmp_path / "obs.jsonl", 15, seed=1)
    out = tmp_path / "tuned.json"
    code, document, _ = run(capsys, str(path), "--spec", str(EXAMPLE_SPEC),
                            "--ttft-noise", "0.05", "--running-noise", "0.05",
                            "--output-spec", str(out))
    assert code == 0
    (found,) = document["profiles"]
    assert found["start"] == "spec" and found["phase"] == "tracking"
    assert within(found, TRUTH, 0.10), found
    merged = load_fleet(out).spec.profile("llama_3_1_8b", "H100")
    assert merged.alpha_ms == found["alpha"] and merged.max_batch == 128
    untouched = load_fleet(out).spec.profile("qwen_2_5_14b", "H100")
    assert untouched == load_fleet(EXAMPLE_SPEC).spec.profile("qwen_2_5_14b", "H100")


@pytest.mark.parametrize(("line", "words"), [
    ('{"model": "m"}', ["line 2", "missing field", "accelerator"]),
    ('{"model": "m", "accelerator": "a", "arrival_rate_rpm": 60, "in_tokens": 10, '
     '"out_tokens": 10, "max_batch": 4, "ttft_ms": 5, "itl_ms": 1, "latency": 3}',
     ["line 2", "unknown field 'latency'"]),
    ('{"model": "m", "accelerator": "a", "arrival_rate_rpm": -1, "in_tokens": 10, '
     '"out_tokens": 10, "max_batch": 4, "ttft_ms": 5, "itl_ms": 1}',
     ["line 2", "$.arrival_rate_rpm"]),
    ("not json", ["line 2", "invalid JSON"]),
])
def test_bad_measurements_exit_2(tmp_path: Path, capsys, line: str, words: list[str]) -> None:
    path = write_records(tmp_path / "obs.jsonl", 1)
    path.write_text(path.read_text().splitlines()[1] + "\n" + line + "\n")
    code, _, err = run(capsys, str(path))
    assert code == 2
    assert "obs.jsonl" in err and all(w in err for w in words), err


def test_empty_or_missing_file_exits_2(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n# nothing\n")
    assert run(capsys, str(empty))[0] == 2
    code, _, err = run(capsys, str(tmp_path / "absent.jsonl"))
    assert code == 2 and "absent.jsonl" in err


def test_inferno_control_loop_records(tmp_path: Path, capsys) -> None:
    """inferno's three logged cycles of qwen on a real H100 (vLLM): each server line is a
    measurement; the fit must explain them about as well as inferno's own profile."""
    sample = shared_path("inferno", "control-loop-cycles-sample.jsonl")
    lines = []
    for cycle in map(json.loads, sample.read_text().splitlines()):
        for s in cycle["servers"]:
            lines.append(json.dumps({
                "model": s["model"], "accelerator": s["accelerator"],
                "arrival_rate_rpm": s["rpm"] / s["replicas"], "in_tokens": s["avgInTok"],
                "out_tokens": s["avgOutTok"], "max_batch": s["maxBatch"],
                "ttft_ms": s["ttft"], "itl_ms": s["itl"], "running": s["occPerReplica"]}))
    path = tmp_path / "inferno.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, document, _ = run(capsys, str(path))
    assert code == 0
    (found,) = document["profiles"]
    assert found["observations"] == 3 and found["start"] == "fit"
    assert found["ttft_error_pct"] < 15 and found["itl_error_pct"] < 15
