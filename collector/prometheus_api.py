"""The thin wrapper around prometheus-api-client: the only module that imports it.

`PrometheusApi` is the Protocol the collector uses: `query(promql, at_s)` evaluates an
instant query at a Unix time and returns typed `Sample`s (labels and a float value, NaN
kept as NaN); any failure to reach Prometheus or a query error raises
`PrometheusUnavailable` (with the reason) or `QueryError`. `PrometheusConnectApi` is the
implementation over `prometheus_api_client.PrometheusConnect`, with a request timeout and
no retries of its own (the loop decides what to do with an outage). Tests fake
`PrometheusApi`, never the library.

To extend: another call (e.g. a range query for recording) is one more Protocol method,
implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector (or a scalar, with no labels)."""

    labels: Mapping[str, str]
    value: float


class PrometheusUnavailable(Exception):
    """Prometheus could not be reached or did not answer in time."""


class QueryError(Exception):
    """Prometheus answered with an error for a query (bad PromQL, bad data)."""


class PrometheusApi(Protocol):
    """What the collector needs from Prometheus."""

    def query(self, promql: str, at_s: float | None = None) -> list[Sample]:
        """Evaluate an instant query at Unix time `at_s` (None: now)."""
        ...


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def parse_result(result: Any) -> list[Sample]:
    """Samples from the `data.result` of an instant query (vector or scalar)."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return [Sample({}, _float(result[1]))]  # a scalar: [time, "value"]
    samples = []
    for item in result or []:
        value = item.get("value") or (None, None)
        samples.append(Sample(dict(item.get("metric") or {}), _float(value[1])))
    return samples


class PrometheusConnectApi:
    """`PrometheusApi` over prometheus-api-client."""

    def __init__(self, url: str, timeout_s: float = 5.0,
                 headers: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self._client: PrometheusConnect | None = None

    def _connect(self) -> PrometheusConnect:
        if self._client is None:
            self._client = PrometheusConnect(url=self.url, headers=self.headers or None,
                                             retry=Retry(total=0), timeout=self.timeout_s)
        return self._client

    def query(self, promql: str, at_s: float | None = None) -> list[Sample]:
        """Evaluate an instant query (see `PrometheusApi.query`)."""
        params = {"time": f"{at_s:.3f}"} if at_s is not None else None
        try:
            result = self._connect().custom_query(promql, params=params)
        except requests.exceptions.RequestException as exc:
            raise PrometheusUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        except PrometheusApiClientException as exc:
            message = str(exc)
            if any(code in message for code in ("502", "503", "504")):
                raise PrometheusUnavailable(f"{self.url}: {message}") from exc
            raise QueryError(f"{message} (query: {promql})") from exc
        return parse_result(result)

    def close(self) -> None:
        """Release the HTTP session."""
        if self._client is not None:
            self._client.close()
            self._client = None
