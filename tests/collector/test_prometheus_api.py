"""The thin prometheus-api-client wrapper: answers become typed samples, outages become
`PrometheusUnavailable` (checked against a closed local port, no server needed)."""

from __future__ import annotations

import math
import socket

import pytest

from collector.prometheus_api import PrometheusConnectApi, PrometheusUnavailable, parse_result


def test_vector_scalar_and_nan_answers() -> None:
    vector = [{"metric": {"pod": "a"}, "value": [1.0, "2.5"]},
              {"metric": {}, "value": [1.0, "NaN"]}]
    samples = parse_result(vector)
    assert samples[0].labels == {"pod": "a"} and samples[0].value == 2.5
    assert math.isnan(samples[1].value)
    (scalar,) = parse_result([1.0, "3"])
    assert scalar.value == 3.0 and scalar.labels == {}
    assert parse_result([]) == []


def test_unreachable_prometheus_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    api = PrometheusConnectApi(f"http://127.0.0.1:{port}", timeout_s=1.0)
    with pytest.raises(PrometheusUnavailable, match=str(port)):
        api.query("up", 1.0)
    api.close()
