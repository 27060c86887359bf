"""Cross-reference checks of a `FleetSpec`: names that must exist and must be unique.

Each failed check raises `SpecError` with the JSON path of the offending field and a hint
listing what would have been accepted. To extend: add a `_check_*` function and call it
from `check_references`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from specs.errors import SpecError

if TYPE_CHECKING:
    from specs.documents import FleetSpec


def _known(names: Iterable[str]) -> str:
    listed = sorted(set(names))
    shown = ", ".join(listed[:12]) + (" ..." if len(listed) > 12 else "")
    return f"known: {shown or '(none)'}"


def _unique(items: Iterable[str], field: str, what: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(items):
        if name in seen:
            raise SpecError(f"duplicate {what} {name!r}", json_path=f"$.{field}[{i}]")
        seen.add(name)


def _check_profiles(spec: FleetSpec) -> None:
    accelerators = {a.name for a in spec.accelerators}
    pairs = [f"{p.model} on {p.accelerator}" for p in spec.profiles]
    _unique(pairs, "profiles", "profile")
    for i, p in enumerate(spec.profiles):
        if p.accelerator not in accelerators:
            raise SpecError(
                f"profile of {p.model!r} names unknown accelerator {p.accelerator!r}",
                json_path=f"$.profiles[{i}].accelerator",
                hint=_known(accelerators),
            )


def _check_classes(spec: FleetSpec) -> None:
    _unique((c.name for c in spec.service_classes), "service_classes", "service class")
    for i, c in enumerate(spec.service_classes):
        _unique((t.model for t in c.targets), f"service_classes[{i}].targets", "target model")


def _check_servers(spec: FleetSpec) -> None:
    _unique((s.name for s in spec.servers), "servers", "server")
    classes = {c.name for c in spec.service_classes}
    modelled = {p.model for p in spec.profiles}
    accelerators = {a.name for a in spec.accelerators}
    for i, s in enumerate(spec.servers):
        if s.service_class not in classes:
            raise SpecError(
                f"server {s.name!r} names unknown service class {s.service_class!r}",
                json_path=f"$.servers[{i}].service_class",
                hint=_known(classes),
            )
        if s.model not in modelled:
            raise SpecError(
                f"server {s.name!r} serves model {s.model!r}, which has no profile",
                json_path=f"$.servers[{i}].model",
                hint=_known(modelled),
            )
        if s.current is not None and s.current.accelerator not in accelerators:
            raise SpecError(
                f"server {s.name!r} runs on unknown accelerator {s.current.accelerator!r}",
                json_path=f"$.servers[{i}].current.accelerator",
                hint=_known(accelerators),
            )
        if s.keep_accelerator and s.current is None:
            raise SpecError(
                f"server {s.name!r} sets keep_accelerator but has no current allocation",
                json_path=f"$.servers[{i}].keep_accelerator",
            )


def check_references(spec: FleetSpec) -> None:
    """Raise `SpecError` at the first broken reference or duplicate name."""
    _unique((a.name for a in spec.accelerators), "accelerators", "accelerator")
    _check_profiles(spec)
    _check_classes(spec)
    _check_servers(spec)
