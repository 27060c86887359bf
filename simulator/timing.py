"""Iteration times from measured timing tables (Splitwise, SageServe), and profiles fitted
to them.

The tables (`../shared/data/splitwise/perf_model.csv`, `../shared/data/sageserve/*.csv`)
share one schema: model, hardware, prompt_size, batch_size, token_size, peak_power,
average_power, prompt_time, token_time, e2e_time, tensor_parallel. Each row is one run:
`batch_size` requests of `prompt_size` prompt tokens each generating `token_size` tokens.
What the two time columns mean was checked against e2e_time, and it differs by source:

- prompt_time: the prompt phase (prefill), which also yields the first token. At batch 1
  it is the prefill of one prompt of prompt_size tokens in both sources. At batch > 1 the
  sources disagree: Splitwise's grows with the batch (the whole batch's prefill, 10-25%
  slower than one prompt of the same total tokens), SageServe's stays at ~49 ms from 2 x
  512 to 32 x 512 tokens (not a whole-batch prefill). So prefill is read from the
  batch-1 rows only, by prompt tokens.
- token_time, Splitwise (ms): the mean time of one decode iteration (one token for each of
  the batch_size requests): e2e_time = prompt_time + (token_size - 1) x token_time within
  0.1-0.4%. Runs asking for 512 tokens or more stopped early (e2e_time stays near 25 s
  on llama2-70b), so the tokens really generated are read back from e2e_time:
  n = 1 + (e2e_time - prompt_time) / token_time (at most token_size).
- token_time, SageServe (s): the whole decode phase: e2e_time = prompt_time + token_time
  within 0.1-1.6%. One iteration is token_time / (token_size - 1): with that divisor the
  batch-1 step is flat (8.538, 8.538, 8.542 ms for 128, 256, 512 tokens on Llama-3.1-8B
  TP2), with token_size it would rise 0.4% for 64 more tokens of context.

Which file is which source: `format_of(path)` knows the folder names (`SPLITWISE`,
`SAGESERVE`); elsewhere pass a `TableFormat` explicitly. Nothing is guessed silently:
reading checks that e2e_time agrees with the stated meaning of token_time and that a
batch-1 decode step lands in 0.1-2,000 ms in the stated unit, and raises `SpecError`
(file, line or selection, what was expected) otherwise.

`TableLaw` turns a table into the engine's iteration-cost law,
`duration_ms(decode_requests, decode_context_tokens, prefill_tokens,
prefill_context_tokens)`. What it assumes:

- decode: B(b) + s x b x max(m - c0, 0) for b requests of mean context m. B is the step
  time interpolated in b along the series with the most batch sizes (prompt 512, 128
  tokens in every file here; its mean context c0 = 577), made non-decreasing by pooling
  adjacent violators where the measurements dip (4 of the 8 Splitwise tables do, e.g.
  llama2-70b H100 TP2: 52.3 ms at batch 32, 42.3 at 64); a non-decreasing series is
  reproduced exactly. s is the Theil-Sen slope (median of pairwise slopes, >= 0) of
  the batch-1 step time against mean decode context prompt + (n + 2) / 2, over the
  rows by prompt size and by token size. One robust slope, not an interpolation,
  because the batch-1 rows vary little and noisily with context (Splitwise +-2 ms
  around 44 ms, SageServe flat to 4k then 18.9 ms at an 8k prompt) and whatever they
  do is multiplied by the batch. Per-request context cost is linear, as gamma is in
  the profile law. Contexts shorter than c0 are charged as c0 (the tables have no
  batched decode there), which keeps the time non-decreasing in the batch.
- prefill: the batch-1 prompt_time interpolated in the iteration's prefill tokens, as if
  its chunks were one prompt of that many tokens; prefill_context_tokens is not used (the
  table has no axis that separates a chunk's own tokens from the context before it).
- an iteration with both pays the decode part plus the prefill part less the prefill
  curve's intercept at 0 tokens (the fixed cost of a forward pass, extrapolated from its
  two smallest prompts), so the fixed cost is paid once, as in one forward pass.
- interpolation is piecewise linear, extrapolation linear from the two end points, and
  each curve is floored at half its smallest time.

`fit_profile(table)` fits the profile law alpha + beta x tokens + gamma x attention
tokens (`queue_models.engine`) to the same points (decode: tokens = b, attention = b x
mean context; prefill: tokens = attention = prompt tokens, one chunk) by non-negative
least squares on relative errors, and reports the fit's MAPE. This is how a spec's
profile is made for a table-driven accelerator (`ProfileFit.to_profile`).

To extend: a new source is one more `TableFormat` in `KNOWN_FORMATS` (with the folder
name its files live in); a different law (e.g. max instead of sum for mixed iterations)
subclasses `TableLaw` and overrides `duration_ms`.
"""

from __future__ import annotations

import bisect
import csv
import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Literal, get_args

import numpy as np

from specs.documents import Profile
from specs.errors import SpecError

Unit = Literal["ms", "s"]
TokenTimeMeaning = Literal["per_token", "total"]

COLUMNS = (
    "model",
    "hardware",
    "prompt_size",
    "batch_size",
    "token_size",
    "prompt_time",
    "token_time",
    "e2e_time",
    "tensor_parallel",
)
"""Columns a timing table must have (power columns are not used)."""

FLOOR_FRACTION = 0.5
"""Each interpolated part is at least this fraction of the smallest time of its curve."""
STEP_RANGE_MS = (0.1, 2000.0)
"""Plausible batch-1 decode step; outside it the unit is wrong."""
CONTEXT_MERGE = 0.01
"""Batch-1 decode points whose mean contexts differ by at most 1% are averaged."""
E2E_RATIO_RANGE = (0.8, 1.25)
"""Median e2e_time / (prompt + decode) allowed; outside it token_time means something else."""


@dataclass(frozen=True, slots=True)
class TableFormat:
    """How to read a source's timing files: the time unit and what token_time means."""

    source: str
    unit: Unit
    token_time: TokenTimeMeaning

    def __post_init__(self) -> None:
        if self.unit not in get_args(Unit):
            raise ValueError(f"unit must be 'ms' or 's', got {self.unit!r}")
        if self.token_time not in get_args(TokenTimeMeaning):
            raise ValueError(f"token_time must be 'per_token' or 'total', got {self.token_time!r}")

    @property
    def to_ms(self) -> float:
        """Factor from the file's unit to milliseconds."""
        return 1000.0 if self.unit == "s" else 1.0


SPLITWISE = TableFormat("splitwise", "ms", "per_token")
SAGESERVE = TableFormat("sageserve", "s", "total")
KNOWN_FORMATS: dict[str, TableFormat] = {f.source: f for f in (SPLITWISE, SAGESERVE)}
"""Formats by the name of the folder their files live in (as in ../shared/data)."""


def format_of(path: str | Path) -> TableFormat:
    """The format of a file kept in a known source folder (`splitwise/`, `sageserve/`)."""
    for part in reversed(Path(path).parts[:-1]):
        if part in KNOWN_FORMATS:
            return KNOWN_FORMATS[part]
    raise SpecError(
        "unknown timing-table source: the file is not under a folder named "
        + " or ".join(sorted(KNOWN_FORMATS)),
        file=path,
        hint="pass a TableFormat(source, unit='ms' or 's', token_time='per_token' or 'total')",
    )


@dataclass(frozen=True, slots=True)
class TimingPoint:
    """One (prompt_size, batch_size, token_size) setting, repeated runs averaged (ms)."""

    prompt_size: int
    batch_size: int
    token_size: int
    prompt_ms: float
    """prompt_time: the prompt phase (a whole-batch prefill only in some sources)."""
    step_ms: float
    """One decode iteration at batch_size (nan when token_size is 1)."""
    generated_tokens: float
    """Tokens really generated per request (fewer than token_size when a run stopped early)."""
    e2e_ratio: float
    """e2e_time / (prompt + (token_size - 1) decode steps): 1 when token_time is read right."""
    samples: int

    @property
    def decode_context(self) -> float:
        """Mean context of the decode steps, counting the token being generated (as the
        engine does): prompt + (n + 2) / 2 for n tokens generated."""
        return self.prompt_size + (self.generated_tokens + 2.0) / 2.0


@dataclass(frozen=True, slots=True)
class TimingTable:
    """The measured points of one (model, hardware, tensor_parallel) in one file."""

    path: str
    fmt: TableFormat
    model: str
    hardware: str
    tensor_parallel: int
    points: tuple[TimingPoint, ...]

    def prefill_points(self) -> list[tuple[float, float]]:
        """(prompt tokens, prefill ms) of the batch-1 rows, averaged over token sizes."""
        sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for p in self.points:
            if p.batch_size == 1:
                sums[p.prompt_size][0] += p.prompt_ms * p.samples
                sums[p.prompt_size][1] += p.samples
        return [(float(k), v[0] / v[1]) for k, v in sorted(sums.items())]

    def batch_series(self) -> tuple[TimingPoint, ...]:
        """The decode points of the (prompt, token size) with the most batch sizes."""
        series: dict[tuple[int, int], list[TimingPoint]] = defaultdict(list)
        for p in self.decode_points():
            series[(p.prompt_size, p.token_size)].append(p)
        if not series:
            return ()
        key = min(series, key=lambda k: (-len(series[k]), -sum(p.samples for p in series[k]), k))
        return tuple(sorted(series[key], key=lambda p: p.batch_size))

    def context_points(self) -> list[tuple[float, float]]:
        """(mean decode context, step ms) of the batch-1 rows; points whose contexts are
        within `CONTEXT_MERGE` of each other are averaged (runs that stopped early at the
        same length would otherwise make a steep zigzag)."""
        singles = sorted(
            (p.decode_context, p.step_ms) for p in self.decode_points() if p.batch_size == 1
        )
        groups: list[list[tuple[float, float]]] = []
        for point in singles:
            if groups and point[0] - groups[-1][0][0] <= CONTEXT_MERGE * groups[-1][0][0]:
                groups[-1].append(point)
            else:
                groups.append([point])
        return [(sum(c for c, _ in g) / len(g), sum(s for _, s in g) / len(g)) for g in groups]

    def decode_points(self) -> list[TimingPoint]:
        """Points with at least one decode step."""
        return [p for p in self.points if p.token_size >= 2]


# -- reading ------------------------------------------------------------------------------


def _number(row: dict[str, str], column: str, line: int, path: Path) -> float:
    text = row.get(column) or ""
    try:
        return float(text)
    except ValueError:
        raise SpecError(
            f"line {line}: column {column!r} is {text!r}, expected a number",
            json_path=f"$[{line}].{column}",
            file=path,
        ) from None


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise SpecError(
            "timing table not found",
            file=path,
            hint="expected a CSV file with columns " + ", ".join(COLUMNS),
        )
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SpecError(f"missing columns {missing}; expected {list(COLUMNS)}", file=path)
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise SpecError("the timing table has a header and no rows", file=path)
    return rows


def _select(
    rows: list[tuple[int, dict[str, str]]], path: Path, wanted: dict[str, str | None]
) -> tuple[list[tuple[int, dict[str, str]]], tuple[str, str, str]]:
    """The rows of one (model, hardware, tensor_parallel); None matches the only one."""
    combos = sorted({(r["model"], r["hardware"], r["tensor_parallel"]) for _, r in rows})
    names = ("model", "hardware", "tensor_parallel")
    chosen = [
        c for c in combos if all(w is None or c[i] == w for i, w in enumerate(wanted.values()))
    ]
    if len(chosen) != 1:
        what = "no rows match" if not chosen else "several selections match"
        asked = ", ".join(f"{n}={v!r}" for n, v in zip(names, wanted.values(), strict=True))
        raise SpecError(
            f"{what} {asked}",
            file=path,
            hint="the file has (model, hardware, tensor_parallel) " + str(combos),
        )
    combo = chosen[0]
    return [
        (n, r) for n, r in rows if (r["model"], r["hardware"], r["tensor_parallel"]) == combo
    ], combo


def _average(
    rows: list[tuple[int, dict[str, str]]], path: Path, fmt: TableFormat
) -> tuple[TimingPoint, ...]:
    groups: dict[tuple[int, int, int], list[tuple[float, float, float]]] = defaultdict(list)
    for line, row in rows:
        size = tuple(
            int(_number(row, c, line, path)) for c in ("prompt_size", "batch_size", "token_size")
        )
        if min(size[1:]) < 1 or size[0] < 0:
            raise SpecError(
                f"line {line}: (prompt_size, batch_size, token_size) is {size}, expected "
                "prompt_size >= 0 and the others >= 1",
                file=path,
                json_path=f"$[{line}]",
            )
        times = tuple(
            _number(row, c, line, path) * fmt.to_ms
            for c in ("prompt_time", "token_time", "e2e_time")
        )
        groups[(size[0], size[1], size[2])].append((times[0], times[1], times[2]))
    return tuple(_point(key, samples, fmt) for key, samples in sorted(groups.items()))


def _point(
    key: tuple[int, int, int], samples: list[tuple[float, float, float]], fmt: TableFormat
) -> TimingPoint:
    prompt_size, batch, tokens = key
    prompt, token, e2e = (sum(s[i] for s in samples) / len(samples) for i in range(3))
    steps = tokens - 1
    if steps == 0:
        return TimingPoint(prompt_size, batch, tokens, prompt, float("nan"), 1.0, 1.0, len(samples))
    step = token if fmt.token_time == "per_token" else token / steps
    generated = float(tokens)
    if fmt.token_time == "per_token" and step > 0:
        generated = max(1.0, min(float(tokens), 1.0 + (e2e - prompt) / step))
    ratio = e2e / (prompt + steps * step) if prompt + steps * step > 0 else float("inf")
    return TimingPoint(prompt_size, batch, tokens, prompt, step, generated, ratio, len(samples))


def _check(table: TimingTable) -> None:
    """Shape and plausibility checks that catch a wrong unit or meaning of token_time."""
    path, fmt = table.path, table.fmt
    prefill = table.prefill_points()
    if len(prefill) < 2:
        raise SpecError(
            "expected batch-1 rows at two or more prompt sizes (the prefill curve)", file=path
        )
    if len({p.batch_size for p in table.batch_series()}) < 2:
        raise SpecError(
            "expected decode rows at two or more batch sizes for one (prompt_size, token_size)",
            file=path,
        )
    ratio = median(p.e2e_ratio for p in table.decode_points())
    if not E2E_RATIO_RANGE[0] <= ratio <= E2E_RATIO_RANGE[1]:
        other = "total" if fmt.token_time == "per_token" else "per_token"
        raise SpecError(
            f"e2e_time is {ratio:.3g} x prompt_time + decode time when token_time "
            f"is read as {fmt.token_time!r}",
            file=path,
            hint=f"token_time looks {other!r}; check the TableFormat",
        )
    step = min(c[1] for c in table.context_points()) if table.context_points() else None
    if step is not None and not STEP_RANGE_MS[0] <= step <= STEP_RANGE_MS[1]:
        raise SpecError(
            f"a batch-1 decode step of {step:.4g} ms (unit {fmt.unit!r}) is "
            f"implausible; expected {STEP_RANGE_MS[0]}-{STEP_RANGE_MS[1]} ms",
            file=path,
            hint="check the unit ('ms' or 's') of the TableFormat",
        )


def read_table(
    path: str | Path,
    fmt: TableFormat,
    *,
    model: str | None = None,
    hardware: str | None = None,
    tensor_parallel: int | None = None,
) -> TimingTable:
    """One (model, hardware, tensor_parallel) of a timing file, runs averaged.

    A selection left None must be unique in the file. Raises `SpecError` for a missing
    file or column, a bad number, a selection matching no or several combinations, a
    table without a batch axis or prefill curve, or times that contradict `fmt`.
    """
    file = Path(path)
    wanted = {
        "model": model,
        "hardware": hardware,
        "tensor_parallel": None if tensor_parallel is None else str(tensor_parallel),
    }
    rows, combo = _select(_read_rows(file), file, wanted)
    table = TimingTable(
        str(file), fmt, combo[0], combo[1], int(combo[2]), _average(rows, file, fmt)
    )
    _check(table)
    return table


def read_known_table(
    path: str | Path,
    *,
    model: str | None = None,
    hardware: str | None = None,
    tensor_parallel: int | None = None,
) -> TimingTable:
    """`read_table` with the format of the file's source folder (`format_of`)."""
    return read_table(
        path, format_of(path), model=model, hardware=hardware, tensor_parallel=tensor_parallel
    )


# -- the law ------------------------------------------------------------------------------


def non_decreasing(ys: list[float]) -> list[float]:
    """The closest non-decreasing sequence in least squares (pool adjacent violators):
    the input itself when it already is non-decreasing."""
    blocks: list[tuple[float, int]] = []  # (mean, size)
    for y in ys:
        blocks.append((y, 1))
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, n1), (m2, n2) = blocks[-2], blocks[-1]
            blocks[-2:] = [((m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2)]
    return [m for m, n in blocks for _ in range(n)]


def theil_sen_slope(points: list[tuple[float, float]]) -> float:
    """Median of the pairwise slopes (robust to a few outliers); 0 with fewer than 2 x."""
    slopes = [
        (y1 - y0) / (x1 - x0)
        for (x0, y0), (x1, y1) in itertools.combinations(points, 2)
        if x1 != x0
    ]
    return median(slopes) if slopes else 0.0


@dataclass(frozen=True, slots=True)
class Curve:
    """Piecewise-linear y(x) through points, linear beyond them, floored."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    floor: float

    @classmethod
    def of(cls, points: list[tuple[float, float]]) -> Curve:
        """The curve through (x, y) points (sorted, distinct x)."""
        xs, ys = zip(*sorted(points), strict=True)
        return cls(tuple(xs), tuple(ys), FLOOR_FRACTION * min(ys))

    def at(self, x: float) -> float:
        """y at x (constant when the curve has one point)."""
        xs, ys = self.xs, self.ys
        if len(xs) == 1:
            return ys[0]
        i = min(max(bisect.bisect_right(xs, x), 1), len(xs) - 1)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return max(y0 + (y1 - y0) * (x - x0) / (x1 - x0), self.floor)


@dataclass(frozen=True, slots=True)
class TableLaw:
    """Iteration time (ms) read from a timing table (assumptions: the module docstring)."""

    prefill: Curve
    """Prefill ms by prompt tokens (batch-1 rows)."""
    batch: Curve
    """Decode step ms by batch size at `reference_context`, made non-decreasing."""
    context_slope_ms: float
    """Extra decode ms per request per context token beyond `reference_context` (>= 0)."""
    reference_context: float
    """Mean decode context of the batch series."""
    shared_ms: float = 0.0
    """Fixed cost of a forward pass inside the prefill curve (its intercept at 0 tokens,
    extrapolated from its first two points): paid once by a mixed iteration."""

    @classmethod
    def from_table(cls, table: TimingTable) -> TableLaw:
        """The law of one table."""
        series = table.batch_series()
        steps = non_decreasing([p.step_ms for p in series])
        batch = Curve.of([(float(p.batch_size), y) for p, y in zip(series, steps, strict=True)])
        single = [p for p in series if p.batch_size == 1] or list(series)
        reference = sum(p.decode_context for p in single) / len(single)
        slope = max(theil_sen_slope(table.context_points()), 0.0)
        prefill = Curve.of(table.prefill_points())
        return cls(prefill, batch, slope, reference, _intercept(prefill))

    def decode_ms(self, requests: int, context_tokens: int) -> float:
        """One decode step of `requests` requests with `context_tokens` context in all."""
        if requests <= 0:
            return 0.0
        beyond = max(context_tokens / requests - self.reference_context, 0.0)
        return self.batch.at(requests) + self.context_slope_ms * requests * beyond

    def prefill_ms(self, tokens: int) -> float:
        """Prefill of `tokens` prompt tokens in one iteration."""
        return self.prefill.at(tokens) if tokens > 0 else 0.0

    def duration_ms(
        self,
        decode_requests: int,
        decode_context_tokens: int,
        prefill_tokens: int,
        prefill_context_tokens: int,
    ) -> float:
        """Iteration time: decode part + prefill part, the pass's fixed cost counted once
        (0 for an empty iteration).

        prefill_context_tokens is accepted for the law's signature and not used.
        """
        del prefill_context_tokens
        decode = self.decode_ms(decode_requests, decode_context_tokens)
        prefill = self.prefill_ms(prefill_tokens)
        if decode and prefill:
            prefill = max(prefill - self.shared_ms, self.prefill.floor)
        return decode + prefill


def _intercept(curve: Curve) -> float:
    """The curve's value at x = 0 by its first two points, within [0, its first value]."""
    if len(curve.xs) < 2:
        return 0.0
    (x0, x1), (y0, y1) = curve.xs[:2], curve.ys[:2]
    at_zero = y0 - (y1 - y0) * x0 / (x1 - x0)
    return min(max(at_zero, 0.0), y0)


# -- fitting the profile law --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileFit:
    """alpha + beta x tokens + gamma x attention tokens fitted to a table (ms)."""

    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    mape_pct: float
    """Mean absolute percentage error over the fitted points."""
    max_error_pct: float
    decode_mape_pct: float
    prefill_mape_pct: float
    points: int

    @property
    def params(self) -> tuple[float, float, float]:
        """(alpha_ms, beta_ms, gamma_ms)."""
        return self.alpha_ms, self.beta_ms, self.gamma_ms

    def to_profile(
        self, model: str, accelerator: str, max_batch: int, token_budget: int = 8192
    ) -> Profile:
        """A spec profile with the fitted parameters."""
        return Profile(
            model=model,
            accelerator=accelerator,
            alpha_ms=self.alpha_ms,
            beta_ms=self.beta_ms,
            gamma_ms=self.gamma_ms,
            max_batch=max_batch,
            token_budget=token_budget,
        )


def fit_points(table: TimingTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(design rows [1, tokens, attention], measured ms, is_decode) of the fitted points."""
    rows: list[tuple[float, float, float]] = []
    ys: list[float] = []
    decode: list[bool] = []
    for p in table.decode_points():
        rows.append((1.0, float(p.batch_size), p.batch_size * p.decode_context))
        ys.append(p.step_ms)
        decode.append(True)
    for tokens, ms in table.prefill_points():
        rows.append((1.0, tokens, tokens))
        ys.append(ms)
        decode.append(False)
    return np.array(rows), np.array(ys), np.array(decode)


def _nnls_relative(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on relative errors: exact for 3 unknowns (every set of
    free coefficients is tried; the best with all coefficients >= 0 wins)."""
    a = design / y[:, None]
    b = np.ones_like(y)
    best, best_cost = np.zeros(design.shape[1]), float(np.sum(b * b))
    for size in range(1, design.shape[1] + 1):
        for free in itertools.combinations(range(design.shape[1]), size):
            sub, *_ = np.linalg.lstsq(a[:, free], b, rcond=None)
            if np.any(sub < 0):
                continue
            coef = np.zeros(design.shape[1])
            coef[list(free)] = sub
            cost = float(np.sum((a @ coef - b) ** 2))
            if cost < best_cost:
                best, best_cost = coef, cost
    return best


def fit_profile(table: TimingTable) -> ProfileFit:
    """Fit the profile law to the table's decode steps and batch-1 prefills."""
    design, y, decode = fit_points(table)
    coef = _nnls_relative(design, y)
    errors = np.abs(design @ coef - y) / y * 100.0
    return ProfileFit(
        alpha_ms=float(coef[0]),
        beta_ms=float(coef[1]),
        gamma_ms=float(coef[2]),
        mape_pct=float(errors.mean()),
        max_error_pct=float(errors.max()),
        decode_mape_pct=float(errors[decode].mean()),
        prefill_mape_pct=float(errors[~decode].mean()),
        points=int(y.size),
    )
