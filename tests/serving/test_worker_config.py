"""Worker settings from a spec (native or inferno), and the tokenizer approximation."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import build_parser
from controller.commands.worker import settings_from_args
from queue_models.engine import LOWEST_PRIORITY, BatchEngine
from serving.openai_api import BadRequest, parse_request, text_tokens
from serving.worker_config import DEFAULT_TOKENS_PER_REQUEST, worker_settings
from specs.errors import SpecError
from specs.loading import load_fleet
from tests.conftest import shared_path

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "h100-vllm.json"


def test_settings_from_native_spec() -> None:
    spec = load_fleet(EXAMPLE).spec
    s = worker_settings(spec, "llama_3_1_8b", "H100", max_batch=32, max_queue=10)
    assert (s.engine.alpha_ms, s.engine.beta_ms, s.engine.gamma_ms) == (6.49, 0.0219, 4.96e-05)
    assert s.engine.max_batch == 32 and s.engine.max_queue == 10
    assert s.engine.kv_capacity_tokens == 128 * (512 + 256)  # ceiling x largest mean in+out
    assert s.priority("Premium") == 1 and s.priority("bronze") == 2
    assert s.priority(None) == s.priority("gold") == LOWEST_PRIORITY
    assert worker_settings(spec, "llama_3_1_8b", "H100", kv_capacity_tokens=5).max_model_len == 5


@pytest.mark.parametrize(("flag", "budget"), [((), 8192), (("--token-budget", "1024"), 1024)])
def test_the_worker_engine_runs_with_the_token_budget_flag(flag: tuple, budget: int) -> None:
    args = build_parser("worker").parse_args(
        ["worker", "--model", "llama_3_1_8b", "--accelerator", "H100", "--spec", str(EXAMPLE),
         *flag])
    engine = BatchEngine(settings_from_args(args).engine)
    assert engine.token_budget == budget  # without the flag: the profile's
    engine.submit("long", 3000, 1, 0.0)
    assert engine.next_iteration(0.0).tokens == min(budget, 3000)


def test_settings_from_inferno_directory() -> None:
    directory = shared_path("inferno", "control-loop-vllm-gpu")
    spec = load_fleet(directory).spec
    s = worker_settings(spec, "qwen_2_5_14b", "H100")
    assert s.engine.max_batch == 128 and s.engine.alpha_ms == pytest.approx(10.645377)
    assert s.engine.kv_capacity_tokens == 128 * DEFAULT_TOKENS_PER_REQUEST


def test_unknown_profile_names_the_pairs() -> None:
    spec = load_fleet(EXAMPLE).spec
    with pytest.raises(SpecError) as caught:
        worker_settings(spec, "llama_3_1_8b", "A100", source=EXAMPLE)
    text = str(caught.value)
    assert "h100-vllm.json" in text and "$.profiles" in text and "llama_3_1_8b has profiles on: H100" in text


def test_tokenizer_approximation() -> None:
    assert text_tokens("") == 1 and text_tokens("abcd") == 1 and text_tokens("abcde") == 2
    assert parse_request("completion", {"prompt": ["abcdefgh"]}, 16).prompt_tokens == 2
    assert parse_request("completion", {"prompt": [[1, 2, 3]]}, 16).prompt_tokens == 3
    with pytest.raises(BadRequest):
        parse_request("completion", {"prompt": 5}, 16)
    with pytest.raises(BadRequest):
        parse_request("chat", {"messages": []}, 16)
