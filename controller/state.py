"""The loop's persisted state: everything that must survive a tick or a restart.

`LoopState` is a frozen pydantic value: the tick counter, the forecaster's series per
server, the stabiliser's state, the tuner's filters, and the last final plan (with its
id). The loop returns a new one every tick; `StateFile` writes it atomically (temporary
file and rename, `specs.loading.write_json_atomic`) and reads it back at start, so a
restart resumes the tuner, the forecasts and the stabiliser's scale-down window where
they were.

To extend: add a field with a default, so a state file written by an older version loads;
a field whose meaning changes is dropped or converted when read (e.g. the stabiliser's
`pending` scale-downs from before its scale-down window, see
`controller.stabilize.StabilizerState`), never misread.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.correction import CorrectionState
from controller.forecast import Series
from controller.stabilize import StabilizerState
from specs.errors import SpecError
from specs.loading import validation_error, write_json_atomic
from specs.plan import Plan
from tuner.state import TunerState


class LoopState(BaseModel):
    """What the loop carries from one tick to the next (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick: int = Field(0, ge=0, description="Ticks completed.")
    forecasts: dict[str, Series] = Field(default_factory=dict,
                                         description="Forecaster series by server.")
    stabilizer: StabilizerState = Field(default_factory=StabilizerState,
                                        description="Stabiliser state.")
    tuner: TunerState = Field(default_factory=TunerState, description="Tuner filters.")
    correction: CorrectionState = Field(default_factory=CorrectionState,
                                        description="Online correction factors per variant.")
    last_plan: Plan | None = Field(None, description="The last final plan.")
    last_plan_id: str | None = Field(None, description="Its id.")


class StateFile:
    """Reads and writes `LoopState` at a path (nothing happens in the constructor)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> LoopState:
        """The saved state, or a fresh one when there is no file (`SpecError` if corrupt)."""
        if not self.path.exists():
            return LoopState()
        try:
            text = self.path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"not UTF-8 text (byte {exc.start}), so not a state file",
                            file=self.path, hint="move it away to start afresh") from None
        except OSError as exc:
            raise SpecError(f"cannot read the state file: {exc.strerror}",
                            file=self.path) from None
        try:
            return LoopState.model_validate_json(text)
        except ValidationError as exc:
            raise validation_error(exc, self.path) from None

    def save(self, state: LoopState) -> None:
        """Write atomically."""
        write_json_atomic(self.path, state)


def require_writable(path: Path) -> None:
    """`SpecError` unless `path`'s folder exists or can be created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"cannot create folder: {exc.strerror}", file=path.parent) from None
