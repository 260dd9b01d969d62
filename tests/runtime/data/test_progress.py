"""Progress lines come at most every interval, with bytes, percent and rate."""

from __future__ import annotations

from structlog.testing import capture_logs

from kaito_runtime.data._progress import ProgressReporter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_logged_once_per_interval_with_percent_and_rate() -> None:
    clock = FakeClock()
    reporter = ProgressReporter(
        url="http://h/a", file="a", start_bytes=1000, total=11000, interval=5.0, clock=clock
    )
    with capture_logs() as logs:
        for _ in range(10):
            clock.now += 1.0
            reporter.advance(1000)
        reporter.finish()
    progress = [e for e in logs if e["event"] == "download_progress"]
    assert [e["bytes"] for e in progress] == [6000, 11000]
    assert progress[0]["percent"] == 54.5
    assert progress[0]["rate_bytes_per_second"] == 1000
    done = [e for e in logs if e["event"] == "download_completed"]
    assert done[0]["bytes"] == 11000
    assert done[0]["percent"] == 100.0


def test_unknown_total_logs_bytes_without_percent() -> None:
    clock = FakeClock()
    reporter = ProgressReporter(
        url="http://h/a", file="a", start_bytes=0, total=None, interval=2.0, clock=clock
    )
    with capture_logs() as logs:
        clock.now += 3.0
        reporter.advance(10)
    assert logs[0]["bytes"] == 10
    assert "percent" not in logs[0]
