"""Shared test fixtures: where the public data beside the project lives.

Tests that read `../shared/data/` ask for the `shared_data` fixture (or call
`shared_path`); where the folder or file is absent they skip, naming the path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared/data, skipping the calling test if it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public data not found: {path}")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder (skips the test when it is absent)."""
    return shared_path()
