"""Without a store, the snapshot directory obeys keep_days and the disk budget: real
files in the daemon's layout, a time-compressed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from lprmeta.snapshot_retention import SnapshotRetention
from lprmeta.stats import Stats

START = datetime(2026, 10, 1, tzinfo=UTC)
SIZE = 1000
PER_HOUR = 3


def take(root: Path, when: datetime, n: int) -> Path:
    day = root / "gate" / when.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    path = day / f"{when.strftime('%H%M%S%f')[:9]}_AB{n:04d}_plate_x{n:05d}.jpg"
    path.write_bytes(bytes(SIZE))
    return path


def files(root: Path) -> set[Path]:
    return set(root.rglob("*.jpg"))


def run(tmp_path: Path, days: int, budget: int | None) -> tuple[Stats, dict[Path, datetime]]:
    root = tmp_path / "snapshots"
    now = START
    stats = Stats()
    tidy = SnapshotRetention(
        root,
        keep_days=5,
        max_bytes=budget,
        stats=stats,
        clock=lambda: now.timestamp(),  # noqa: PLW0108  # late-bound: the simulated now
    )
    taken: dict[Path, datetime] = {}
    n = 0
    for hour in range(days * 24):
        now = START + timedelta(hours=hour)
        for _ in range(PER_HOUR):
            n += 1
            taken[take(root, now, n)] = now
        if hour % 6 == 5:
            while tidy.pass_once().more:
                pass
            on_disk = files(root)
            if budget is not None:
                assert sum(p.stat().st_size for p in on_disk) <= budget
            for path, when in taken.items():
                if when < now - timedelta(days=5):
                    assert path not in on_disk
                elif stats.get("retention_forced") == 0:
                    assert path in on_disk
    return stats, taken


def test_pictures_older_than_keep_days_go_and_younger_stay(tmp_path: Path) -> None:
    stats, _ = run(tmp_path, 12, budget=None)
    assert stats.get("retention_pictures_removed") > 0
    assert stats.get("retention_forced") == 0
    # Day directories that emptied are gone too.
    days = {p.name for p in (tmp_path / "snapshots" / "gate").iterdir()}
    assert min(days) >= (START + timedelta(days=12 - 6)).strftime("%Y-%m-%d")


def test_the_budget_holds_and_forcing_is_said_once(tmp_path: Path) -> None:
    budget = 2 * 24 * PER_HOUR * SIZE  # two days' worth, under keep_days' five
    with capture_logs() as logs:
        stats, _ = run(tmp_path, 8, budget=budget)
    assert stats.get("retention_forced") > 0
    assert len([e for e in logs if "disk budget forces" in e["event"]]) == 1
