"""simulator.timing: reading Splitwise / SageServe timing tables, the table law, the fit.

Synthetic tables (written to tmp_path) check the mechanics exactly; the real files in
../shared/data check the meaning of the columns, interpolation at table points and the
fit's error (skipped, naming the path, where the data is absent).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from simulator.timing import (
    COLUMNS,
    SAGESERVE,
    SPLITWISE,
    Curve,
    TableFormat,
    TableLaw,
    fit_profile,
    format_of,
    non_decreasing,
    read_known_table,
    read_table,
    theil_sen_slope,
)
from specs.errors import SpecError
from tests.conftest import shared_path

ALPHA, BETA, GAMMA = 8.0, 0.05, 2e-4
MS = TableFormat("test", "ms", "per_token")
SPLITWISE_COMBOS = [
    ("llama2-70b", hardware, tp) for hardware in ("a100-80gb", "h100-80gb") for tp in (2, 4, 8)
] + [("bloom-176b", hardware, 8) for hardware in ("a100-80gb", "h100-80gb")]
SAGESERVE_FILES = [f"{m}-tp-{tp}.csv" for m in ("Llama-3.1-8B", "Llama-3.2-3B") for tp in (2, 4)]


def law_ms(tokens: float, attention: float) -> float:
    return ALPHA + BETA * tokens + GAMMA * attention


def synthetic_rows(tokens: int = 128) -> list[dict[str, object]]:
    """A star design (prompt axis at batch 1, batch axis at prompt 512) made by the law."""
    rows = []
    settings = [(p, 1) for p in (128, 512, 2048)] + [(512, b) for b in (2, 4, 16)]
    for prompt, batch in settings:
        context = prompt + (tokens + 2) / 2
        step = law_ms(batch, batch * context)
        prefill = law_ms(prompt, prompt)
        for _ in range(2):  # repeated runs are averaged
            rows.append(
                dict(
                    model="m",
                    hardware="gpu",
                    prompt_size=prompt,
                    batch_size=batch,
                    token_size=tokens,
                    peak_power=0,
                    average_power=0,
                    prompt_time=prefill,
                    token_time=step,
                    e2e_time=prefill + (tokens - 1) * step,
                    tensor_parallel=2,
                )
            )
    return rows


def write_csv(
    path: Path,
    rows: list[dict[str, object]],
    columns: tuple[str, ...] | None = None,
) -> Path:
    names = list(columns or rows[0].keys())
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "table.csv", synthetic_rows())


# -- synthetic tables --------------------------------------------------------------------


def test_synthetic_table_is_averaged_and_interpolated(synthetic):
    table = read_table(synthetic, MS)
    assert (table.model, table.hardware, table.tensor_parallel) == ("m", "gpu", 2)
    assert all(p.samples == 2 for p in table.points)
    law = TableLaw.from_table(table)
    assert law.reference_context == 577.0 and law.context_slope_ms == pytest.approx(GAMMA)
    for p in table.decode_points():
        got = law.duration_ms(p.batch_size, round(p.batch_size * p.decode_context), 0, 0)
        if p.decode_context >= law.reference_context:
            assert got == pytest.approx(p.step_ms, rel=1e-9)
        else:  # shorter contexts are charged as the reference context
            assert got == pytest.approx(law.decode_ms(1, 577), rel=1e-12)
            assert got > p.step_ms
    for tokens, ms in table.prefill_points():
        assert law.duration_ms(0, 0, int(tokens), int(tokens)) == pytest.approx(ms, rel=1e-12)
    mixed = law.duration_ms(4, 4 * 577, 512, 512)
    # one forward pass: the prefill curve's fixed cost (its intercept) is paid once
    assert 0.0 < law.shared_ms <= law.prefill_ms(min(t for t, _ in table.prefill_points()))
    assert mixed == pytest.approx(law.decode_ms(4, 4 * 577) + law.prefill_ms(512)
                                  - law.shared_ms)
    assert law.duration_ms(0, 0, 0, 0) == 0.0


def test_fit_recovers_the_law_that_made_the_table(synthetic):
    fit = fit_profile(read_table(synthetic, MS))
    assert fit.params == pytest.approx((ALPHA, BETA, GAMMA), rel=1e-6)
    assert fit.mape_pct < 1e-6 and fit.points == 9
    profile = fit.to_profile("m", "2xGPU", max_batch=16)
    assert (profile.alpha_ms, profile.max_batch) == (pytest.approx(ALPHA), 16)


def test_non_decreasing_pools_violators_and_theil_sen_ignores_an_outlier():
    assert non_decreasing([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    assert non_decreasing([1.0, 3.0, 2.0, 5.0]) == [1.0, 2.5, 2.5, 5.0]
    assert non_decreasing([3.0, 2.0, 1.0]) == [2.0, 2.0, 2.0]
    points = [(float(x), 2.0 * x + 1.0) for x in range(6)] + [(6.0, 100.0)]
    assert theil_sen_slope(points) == pytest.approx(2.0)
    assert theil_sen_slope([(1.0, 5.0)]) == 0.0


def test_curve_extrapolates_linearly_and_is_floored():
    curve = Curve.of([(1.0, 10.0), (2.0, 8.0), (4.0, 8.0)])
    assert curve.at(0.0) == pytest.approx(12.0)  # linear below the table
    assert curve.at(3.0) == pytest.approx(8.0)
    assert Curve.of([(1.0, 10.0), (2.0, 5.0)]).at(100.0) == pytest.approx(2.5)  # floor


def test_missing_file_and_columns_are_named(tmp_path):
    with pytest.raises(SpecError, match="not found") as missing:
        read_table(tmp_path / "absent.csv", MS)
    assert missing.value.file == str(tmp_path / "absent.csv")
    path = write_csv(tmp_path / "cols.csv", synthetic_rows(), COLUMNS[:-2])
    with pytest.raises(SpecError, match=r"missing columns \['e2e_time', 'tensor_parallel'\]"):
        read_table(path, MS)
    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(SpecError, match="no rows"):
        read_table(header_only, MS)


def test_bad_number_names_the_line(tmp_path):
    rows = synthetic_rows()
    rows[2]["prompt_time"] = "fast"
    with pytest.raises(SpecError, match="line 4: column 'prompt_time' is 'fast'") as error:
        read_table(write_csv(tmp_path / "bad.csv", rows), MS)
    assert "bad.csv" in str(error.value)


def test_selection_errors_list_what_the_file_has(tmp_path):
    rows = synthetic_rows() + [dict(r, tensor_parallel=4) for r in synthetic_rows()]
    path = write_csv(tmp_path / "two.csv", rows)
    with pytest.raises(SpecError, match="several selections match") as several:
        read_table(path, MS)
    assert "('m', 'gpu', '4')" in str(several.value)
    with pytest.raises(SpecError, match="no rows match model='x'"):
        read_table(path, MS, model="x")
    assert read_table(path, MS, tensor_parallel=4).tensor_parallel == 4


def test_a_table_without_a_batch_axis_is_refused(tmp_path):
    rows = [r for r in synthetic_rows() if r["batch_size"] == 1]
    with pytest.raises(SpecError, match="two or more batch sizes"):
        read_table(write_csv(tmp_path / "flat.csv", rows), MS)


def test_wrong_unit_or_meaning_is_refused(tmp_path, synthetic):
    with pytest.raises(SpecError, match="implausible") as unit:
        read_table(synthetic, TableFormat("test", "s", "per_token"))
    assert "unit" in str(unit.value)
    with pytest.raises(SpecError, match="token_time looks 'per_token'"):
        read_table(synthetic, TableFormat("test", "ms", "total"))
    with pytest.raises(ValueError, match="unit"):
        TableFormat("test", "us", "total")  # type: ignore[arg-type]


def test_format_of_knows_the_source_folders(tmp_path):
    assert format_of(Path("/x/splitwise/perf_model.csv")) is SPLITWISE
    assert format_of(Path("/x/sageserve/Llama-3.1-8B-tp-2.csv")) is SAGESERVE
    with pytest.raises(SpecError, match="unknown timing-table source"):
        format_of(tmp_path / "table.csv")


# -- the real files ----------------------------------------------------------------------


def splitwise(model: str, hardware: str, tp: int):
    path = shared_path("splitwise", "perf_model.csv")
    return read_known_table(path, model=model, hardware=hardware, tensor_parallel=tp)


def sageserve(name: str):
    return read_known_table(shared_path("sageserve", name))


def test_column_meanings_hold_in_the_data():
    # Splitwise: token_time is per decode step, e2e = prompt + (tokens - 1) steps
    point = next(
        p
        for p in splitwise("llama2-70b", "a100-80gb", 4).points
        if (p.prompt_size, p.batch_size, p.token_size) == (512, 1, 128)
    )
    assert point.samples == 15 and point.e2e_ratio == pytest.approx(1.0, abs=0.005)
    assert point.step_ms == pytest.approx(44.96, abs=0.01)
    # SageServe: token_time is the whole decode phase, in seconds
    point = next(
        p
        for p in sageserve("Llama-3.1-8B-tp-2.csv").points
        if (p.prompt_size, p.batch_size, p.token_size) == (512, 1, 128)
    )
    assert point.step_ms == pytest.approx(8.538, abs=0.002)
    assert point.e2e_ratio == pytest.approx(1.0, abs=0.005)


def test_splitwise_runs_that_stopped_early_are_read_back_from_e2e():
    table = splitwise("llama2-70b", "a100-80gb", 4)
    long = next(
        p for p in table.points if (p.prompt_size, p.batch_size, p.token_size) == (512, 1, 8192)
    )
    assert 500 < long.generated_tokens < 650


@pytest.mark.parametrize("name", SAGESERVE_FILES)
def test_sageserve_law_reproduces_table_points(name):
    table = sageserve(name)
    law = TableLaw.from_table(table)
    for p in table.batch_series():  # non-decreasing in these files: reproduced exactly
        got = law.duration_ms(p.batch_size, round(p.batch_size * p.decode_context), 0, 0)
        assert got == pytest.approx(p.step_ms, rel=1e-9)
    for context, ms in table.context_points():  # one robust slope: close up to 4k context
        if law.reference_context <= context <= 4200:
            assert law.decode_ms(1, round(context)) == pytest.approx(ms, rel=0.03)
    for tokens, ms in table.prefill_points():
        assert law.prefill_ms(int(tokens)) == pytest.approx(ms, rel=1e-12)


@pytest.mark.parametrize("combo", SPLITWISE_COMBOS, ids=lambda c: f"{c[0]}-{c[1]}-tp{c[2]}")
def test_decode_time_grows_with_the_batch(combo):
    table = splitwise(*combo)
    law = TableLaw.from_table(table)
    for context in (200, 1000, 4000):
        times = [law.decode_ms(b, b * context) for b in range(1, 257)]
        assert all(b >= a for a, b in zip(times, times[1:], strict=False))
    assert law.decode_ms(1, 500) > 0 and law.prefill_ms(1) > 0
    measured = [p.step_ms for p in table.batch_series()]
    if measured == sorted(measured):  # where the table does not dip, its points are kept
        for p in table.batch_series():
            assert law.decode_ms(p.batch_size, round(p.batch_size * 577)) == pytest.approx(
                p.step_ms
            )


@pytest.mark.parametrize("combo", SPLITWISE_COMBOS, ids=lambda c: f"{c[0]}-{c[1]}-tp{c[2]}")
def test_fit_error_on_splitwise_is_reported_and_bounded(combo):
    fit = fit_profile(splitwise(*combo))
    assert min(fit.params) >= 0 and fit.alpha_ms > 0
    assert fit.mape_pct < 10.0 and fit.decode_mape_pct < 8.0 and fit.prefill_mape_pct < 25.0
    assert fit.max_error_pct >= fit.mape_pct


@pytest.mark.parametrize("name", SAGESERVE_FILES)
def test_fit_error_on_sageserve_is_reported_and_bounded(name):
    fit = fit_profile(sageserve(name))
    assert min(fit.params) >= 0 and fit.alpha_ms > 0
    assert fit.mape_pct < 15.0 and fit.decode_mape_pct < 10.0 and fit.prefill_mape_pct < 25.0
