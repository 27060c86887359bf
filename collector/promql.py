"""Render the collector's query templates into PromQL (pure string work).

`render(template, labels, window_s)` replaces `$window` by the window in seconds and each
`[[metric:name]]` by a selector that matches both spellings of the name and the variant's
label matchers:

    [[vllm:request_success_total]] with {"namespace": "llm"}
    -> {__name__=~"vllm[:_]request_success_total",namespace="llm"}

Colons in a name become `[:_]` because prometheus-client's OpenMetrics escaping can store
`vllm:x` as `vllm_x` (prometheus/client_python#1177); other regex characters are escaped.
Label values are escaped as PromQL strings.

To extend: another placeholder is one more substitution in `render`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_METRIC = re.compile(r"\[\[([a-zA-Z_:][a-zA-Z0-9_:]*)\]\]")


def name_pattern(name: str) -> str:
    """A regex matching `name` with ':' or '_' where it has ':'."""
    return "[:_]".join(re.escape(part) for part in name.split(":"))


def quote(value: str) -> str:
    """A PromQL double-quoted string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def selector(name: str, labels: Mapping[str, str]) -> str:
    """The series selector of a metric (both spellings) restricted by exact labels."""
    matchers = [f"__name__=~{quote(name_pattern(name))}"]
    matchers += [f"{key}={quote(value)}" for key, value in sorted(labels.items())]
    return "{" + ",".join(matchers) + "}"


def duration(seconds: float) -> str:
    """A PromQL duration in whole milliseconds or seconds, e.g. `60s`, `1500ms`."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def render(template: str, labels: Mapping[str, str], window_s: float) -> str:
    """The template with its placeholders filled (see the module docstring)."""
    text = _METRIC.sub(lambda m: selector(m.group(1), labels), template)
    return text.replace("$window", duration(window_s))
