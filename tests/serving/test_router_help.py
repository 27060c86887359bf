"""The router's backends document is documented where a user looks: `--help` and docs/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import build_parser
from serving.router_config import BackendEntry, parse_backends
from specs.errors import SpecError

REPO = Path(__file__).resolve().parents[2]


def _router_help() -> str:
    parser = build_parser("router")
    action = next(a for a in parser._actions if hasattr(a, "choices") and a.choices
                  and "router" in a.choices)
    return action.choices["router"].format_help()


def test_router_help_and_docs_describe_the_backends_document() -> None:
    help_text = _router_help()
    assert "backends document (--backends FILE" in help_text
    fields = set(BackendEntry.model_fields)
    assert all(f"  {name}" in help_text for name in fields - {"url", "model"})
    doc = (REPO / "docs" / "router.md").read_text()
    assert all(f"`{name}`" in doc for name in fields)
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    document = parse_backends(json.loads(example), "docs/router.md")
    assert {b.variant for b in document.backends} == {"llama-h100", "llama-l4"}


def test_backends_numbers_are_strict() -> None:
    with pytest.raises(SpecError, match=r"\$\.backends\[0\]\.weight: expected a number"):
        parse_backends({"backends": [{"url": "http://127.0.0.1:1", "model": "m",
                                      "weight": "1"}]}, "test")
