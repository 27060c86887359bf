"""Queue-model validation on a scenario's simulated hardware.

For every profile of a model the scenario serves, `validate_scenario` compares the
queue model's mean TTFT and ITL (with the spec's profile, as the policies size) against
one simulated replica running on the scenario's hardware: the measured timing table
where the scenario has one for that (model, accelerator), else the profile itself
(`simulator.validation`). The difference is what a policy sizing with the model gets
wrong on this hardware: the model's own error plus the profile fit's.

To extend: other validation options are `simulator.validation.ValidationOptions` fields.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from controller.evaluation.run import timing_laws
from controller.evaluation.scenario import Scenario
from queue_models.engine import BatchEngine, EngineConfig
from simulator.validation import ValidationOptions, ValidationResult, validate


def validate_scenario(scenario: Scenario, data_dir: Path,
                      options: ValidationOptions | None = None) -> ValidationResult:
    """The validation table of every profile the scenario's servers can use."""
    spec = scenario.fleet()
    laws = timing_laws(scenario, data_dir)
    models = {s.model for s in spec.servers}
    results = []
    for profile in sorted((p for p in spec.profiles if p.model in models),
                          key=lambda p: (p.model, p.accelerator)):
        law = laws.get((profile.model, profile.accelerator))

        def engine(config: EngineConfig, law: object = law) -> BatchEngine:
            return BatchEngine(config if law is None else replace(config, law=law))

        results.append(validate(spec, options, profiles=[(profile.model, profile.accelerator)],
                                engine_factory=engine))
    first = results[0]
    return ValidationResult(first.queue_model, first.options,
                            tuple(row for r in results for row in r.rows),
                            tuple(case for r in results for case in r.cases))
