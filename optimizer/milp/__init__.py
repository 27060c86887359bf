"""The `milp` solver: a MILP solved by HiGHS (highspy), with PuLP's CBC as the fallback.

The only place that imports PuLP or highspy (import-linter checks it). Layout:

- `optimizer.milp.model`: the formulation, as arrays (and as a PuLP problem for CBC);
- `optimizer.milp.backends`: `HighsSession` (highspy) and `PulpSession` (PuLP + CBC),
  the two implementations of `optimizer.lexicographic.Session`;
- `optimizer.milp.solver`: `solve_milp`, the registered solver (pruning, the "cheapest
  fits" shortcut, stages on a backend with fallback, best effort, the report).

Priorities are handled by `optimizer.lexicographic` (a served-load stage per priority
group that cannot trivially be served, then the cost stage); dominance pruning by
`optimizer.pruning`.

To extend: a constraint goes into `model.Builder`; another backend is another
`Session` in `backends` and one more name in `solver._run`.
"""

from optimizer.milp.backends import quiet_stdout
from optimizer.milp.solver import solve_milp

__all__ = ["quiet_stdout", "solve_milp"]
