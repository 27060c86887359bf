"""`ScrapeCollector` over a fake `Fetcher`: rates between scrapes, gauge means, failures."""

from __future__ import annotations

import pytest

from collector import (
    CollectorConfig,
    FigureStatus,
    ScrapeCollector,
    SourceStatus,
    VariantConfig,
    observation_of,
    observations_of,
)
from tests.collector.fakes import FakeFetcher, exposition

URLS = ("http://127.0.0.1:1", "http://127.0.0.1:2")
CONFIG = CollectorConfig(variants=(VariantConfig(name="v", server="s", model="m",
                                                 accelerator="H100", urls=URLS),))
START = dict(success=100, prompt=50_000, generation=20_000, ttft_sum=5.0, ttft_count=100,
             itl_sum=200.0, itl_count=19_900, running=8, waiting=0,
             ttft_buckets=[0, 40, 90, 100, 100])


def later(seconds: float, growth: int = 0, **changes: float) -> dict:
    """Counters after `seconds` at 4 req/s, 500 in / 200 out tokens, TTFT 60 ms, ITL 10 ms."""
    done = 4 * seconds
    page = dict(START)
    page.update(success=100 + done, prompt=50_000 + 500 * done,
                generation=20_000 + 200 * done, ttft_sum=5.0 + 0.06 * done,
                ttft_count=100 + done, itl_sum=200.0 + 0.01 * 199 * done,
                itl_count=19_900 + 199 * done, running=8 + growth,
                ttft_buckets=[0, 40, 90 + 0.5 * done, 100 + done, 100 + done])
    page.update(changes)
    return page


def collector(sep: str = ":") -> tuple[ScrapeCollector, FakeFetcher]:
    fetcher = FakeFetcher()
    for url in URLS:
        fetcher.pages[url] = exposition(**START, sep=sep)
    return ScrapeCollector(CONFIG, fetcher), fetcher


@pytest.mark.parametrize("sep", [":", "_"])
def test_rates_between_snapshots(sep: str) -> None:
    scraper, fetcher = collector(sep)
    first = scraper.snapshot(100.0).variant("v")
    assert first.arrival_rate_rps.status == FigureStatus.MISSING  # no baseline yet
    assert first.running.value == 8 and first.replicas.value == 2
    for url in URLS:
        fetcher.pages[url] = exposition(**later(20.0, growth=2), sep=sep)
    v = scraper.snapshot(120.0).variant("v")
    assert v.completion_rate_rps.value == pytest.approx(8.0)  # two replicas at 4 req/s
    assert v.arrival_rate_rps.value == pytest.approx(8.0 + 2 * 2 / 20)
    assert v.in_tokens.value == pytest.approx(500) and v.out_tokens.value == pytest.approx(200)
    assert v.ttft_mean_ms.value == pytest.approx(60.0)
    assert v.itl_mean_ms.value == pytest.approx(10.0)
    # half of the new requests in (0.05, 0.1] s, half in (0.1, 0.5]: p95 interpolates there
    assert v.ttft_p95_ms.value == pytest.approx(100 + 400 * (0.95 * 80 - 40) / 40)
    assert v.running.value == pytest.approx(9.0) and v.window_s == pytest.approx(20.0)
    assert v.max_batch.value == 64 and v.arrival_rate_rps.usable
    obs = observation_of(v)
    assert obs.arrival_rate_rps == pytest.approx(4.1) and obs.running == pytest.approx(9.0)
    idle = scraper.snapshot(121.0).variant("v")  # nothing happened in the last second
    assert idle.completion_rate_rps.value == 0.0 and idle.ttft_mean_ms.status == "nan"


def test_samples_between_snapshots_average_the_gauges() -> None:
    scraper, fetcher = collector()
    scraper.snapshot(0.0)
    for t, running in ((5.0, 20), (10.0, 20), (15.0, 20)):
        for url in URLS:
            fetcher.pages[url] = exposition(**later(t, running=running))
        scraper.sample(t)
    for url in URLS:
        fetcher.pages[url] = exposition(**later(20.0, running=8))
    v = scraper.snapshot(20.0).variant("v")
    assert v.running.value == pytest.approx((8 + 20 * 3 + 8) / 5)


def test_counter_reset_counts_from_zero() -> None:
    scraper, fetcher = collector()
    scraper.snapshot(0.0)
    restarted = dict(START, success=40, prompt=20_000, generation=8_000, ttft_sum=2.4,
                     ttft_count=40, itl_sum=79.6, itl_count=7_960, ttft_buckets=[0] * 5)
    for url in URLS:
        fetcher.pages[url] = exposition(**restarted)
    v = scraper.snapshot(10.0).variant("v")
    assert v.completion_rate_rps.value == pytest.approx(8.0)
    assert v.in_tokens.value == pytest.approx(500)


def test_one_replica_down_is_partial_all_down_is_unavailable() -> None:
    scraper, fetcher = collector()
    scraper.snapshot(0.0)
    for url in URLS:
        fetcher.pages[url] = exposition(**later(10.0))
    fetcher.down = {URLS[1]}
    snapshot = scraper.snapshot(10.0)
    v = snapshot.variant("v")
    assert snapshot.status == SourceStatus.PARTIAL and URLS[1] in snapshot.error
    assert v.completion_rate_rps.value == pytest.approx(4.0)
    assert v.completion_rate_rps.status == FigureStatus.PARTIAL and v.replicas.value == 1
    assert observations_of(snapshot)[0] == []
    fetcher.down = set(URLS)
    snapshot = scraper.snapshot(20.0)
    assert snapshot.status == SourceStatus.UNAVAILABLE
    figure = snapshot.variant("v").arrival_rate_rps
    assert figure.status == FigureStatus.UNAVAILABLE and figure.value is None


def test_per_request_token_histograms_win_over_counters() -> None:
    """Token counters also count requests still running; the per-request histograms give
    the exact means of the requests that finished."""
    scraper, fetcher = collector()
    for url in URLS:
        fetcher.pages[url] = exposition(**START, request_tokens=(25_600, 6_400, 100))
    scraper.snapshot(0.0)
    for url in URLS:  # 80 more finished, each 256 in / 64 out; counters say 500 / 200
        fetcher.pages[url] = exposition(**later(20.0),
                                        request_tokens=(25_600 + 80 * 256, 6_400 + 80 * 64, 180))
    v = scraper.snapshot(20.0).variant("v")
    assert v.in_tokens.value == pytest.approx(256) and v.out_tokens.value == pytest.approx(64)
