from __future__ import annotations

import errno
import hashlib
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from lprmeta.envelope import Picture
from lprmeta.events import Event, Kind, Source
from lprmeta.storage import ImageStore, safe_part

JPEG = b"\xff\xd8\xff\xe0payload\xff\xd9"


@pytest.mark.parametrize(
    ("plate", "camera"),
    [
        ("../../etc/x", "c"),
        ("/abs/olute", "c"),
        ("부산02가1234", "c"),
        ("AB1234", "../../up"),
        ("..", ".."),
    ],
)
def test_saved_pictures_never_leave_the_snapshot_dir(
    tmp_path: Path, plate: str, camera: str
) -> None:
    store = ImageStore(tmp_path / "snaps")
    event = Event(kind=Kind.PLATE, camera=camera, source=Source.HTTP, plate=plate)
    ref = store.save(event, Picture("plate", JPEG))
    assert ref.path is not None and ref.missing is None
    path = Path(ref.path)
    assert path.resolve().is_relative_to((tmp_path / "snaps").resolve())
    assert path.read_bytes() == JPEG and path.suffix == ".jpg"
    assert ref.sha256 == hashlib.sha256(JPEG).hexdigest()


@pytest.mark.parametrize(
    "received",
    [
        datetime(2026, 3, 4, 5, 6, 7, 891_234, tzinfo=UTC),
        datetime(2026, 3, 4, 7, 6, 7, 891_999, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_a_picture_is_named_by_its_camera_utc_day_time_plate_role_and_id(
    tmp_path: Path, received: datetime
) -> None:
    """<camera>/<YYYY-MM-DD>/<HHMMSSmmm>_<plate>_<role>_<id>.<ext>, in UTC whatever the
    zone of the time, milliseconds cut (not rounded)."""
    store = ImageStore(tmp_path)
    event = Event(
        kind=Kind.PLATE, camera="gate/1", source=Source.TCP, plate="AB 12-3", received=received
    )
    path = store.path_for(event, "plate", JPEG)
    assert path == tmp_path.resolve() / "gate1" / "2026-03-04" / (
        f"050607891_AB12-3_plate_{event.id[-10:]}.jpg"
    )


def test_safe_part() -> None:
    assert safe_part("../../etc/x") == "etcx"
    assert safe_part("..") == "x"
    assert safe_part("AB-12_c") == "AB-12_c"


def test_unwritable_dir_marks_picture_missing(tmp_path: Path) -> None:
    blocker = tmp_path / "snaps"
    blocker.write_text("a file where the directory should be")
    store = ImageStore(blocker)
    event = Event(
        kind=Kind.PLATE,
        camera="c",
        source=Source.TCP,
        plate="A",
    )
    ref = store.save(event, Picture("full", JPEG))
    assert ref.path is None and ref.missing is not None and ref.missing.startswith("save failed")
    assert ref.bytes == len(JPEG)


def test_a_day_directory_removed_meanwhile_is_made_again(tmp_path: Path) -> None:
    """Retention (or an operator) may remove a day's directory the store has already
    made: the next picture of that day makes it again instead of going missing."""
    import shutil

    store = ImageStore(tmp_path / "snaps")
    event = Event(kind=Kind.PLATE, camera="gate", source=Source.TCP, plate="AB12")
    first = store.save(event, Picture("plate", JPEG))
    assert first.path is not None
    shutil.rmtree(Path(first.path).parent)
    again = store.save(
        Event(kind=Kind.PLATE, camera="gate", source=Source.TCP), Picture("full", JPEG)
    )
    assert again.missing is None
    assert again.path is not None
    assert Path(again.path).read_bytes() == JPEG
    assert not list(Path(again.path).parent.glob("*.part"))


def test_the_set_of_known_directories_stays_bounded(tmp_path: Path) -> None:
    """One directory a camera a day: a daemon running for years must not keep every one
    it ever made in memory. Past the bound it forgets them and goes on saving."""
    from lprmeta import storage

    store = ImageStore(tmp_path / "snaps")
    for i in range(storage._MADE_MAX + 50):
        event = Event(kind=Kind.PLATE, camera=f"cam{i}", source=Source.TCP, plate="AB12")
        ref = store.save(event, Picture("plate", JPEG))
        assert ref.missing is None and ref.path is not None
    assert len(store._made) <= storage._MADE_MAX
    again = store.save(
        Event(kind=Kind.PLATE, camera="cam0", source=Source.TCP, plate="AB12"),
        Picture("plate", JPEG),
    )
    assert again.missing is None and again.path is not None
    assert Path(again.path).read_bytes() == JPEG


def test_while_a_picture_is_written_its_name_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader listing the day's directory while a picture is written never finds it by
    its name, half written. With O_TMPFILE it finds nothing of it at all (the file has no
    name until it is linked whole); where the file system has none, only a ``.part``."""
    from lprmeta import storage

    seen: list[list[str]] = []
    real_write_all = storage._write_all

    def write_all(fd: int, data: bytes) -> None:  # the store's own writes only, not os's
        seen.append(sorted(p.name for p in Path(directory).iterdir()))
        real_write_all(fd, data)

    directory = str(tmp_path / "day")
    monkeypatch.setattr(storage, "_write_all", write_all)
    storage._write_new(directory, f"{directory}/a.jpg", JPEG * 1000, made=set())
    monkeypatch.undo()
    assert seen
    assert all(names == ([] if storage._UNNAMED else ["a.jpg.part"]) for names in seen)
    assert Path(directory, "a.jpg").read_bytes() == JPEG * 1000
    assert sorted(p.name for p in Path(directory).iterdir()) == ["a.jpg"]


@pytest.mark.parametrize("unnamed", [True, False], ids=["o_tmpfile", "part_and_rename"])
def test_a_picture_saved_again_under_its_name_replaces_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    """Both ways of writing leave one file, the newer, and no ``.part`` (a crash's
    leftover ``.part`` of the same name included)."""
    from lprmeta import storage

    monkeypatch.setattr(storage, "_UNNAMED", unnamed and storage._UNNAMED)
    directory = str(tmp_path / "day")
    path = f"{directory}/a.jpg"
    storage._write_new(directory, path, b"old", made=set())
    Path(path + ".part").write_bytes(b"leftover")
    storage._write_new(directory, path, JPEG, made=set())
    assert Path(path).read_bytes() == JPEG
    assert sorted(p.name for p in Path(directory).iterdir()) == ["a.jpg"]


def test_a_file_system_without_o_tmpfile_gets_part_files_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where opening a directory with O_TMPFILE is refused (EISDIR, EOPNOTSUPP: an old
    kernel, a network file system), the store says so to itself once and writes
    ``.part`` files renamed into place; the pictures are saved all the same."""
    from lprmeta import storage

    monkeypatch.setattr(storage, "_UNNAMED", True)
    # Opening a directory for writing without O_TMPFILE: EISDIR, as an old kernel answers.
    monkeypatch.setattr(storage, "_UNNAMED_FILE", os.O_WRONLY | os.O_CLOEXEC)
    store = ImageStore(tmp_path / "snaps")
    event = Event(kind=Kind.PLATE, camera="gate", source=Source.TCP, plate="AB12")
    ref = store.save(event, Picture("plate", JPEG))
    assert ref.missing is None and ref.path is not None
    assert Path(ref.path).read_bytes() == JPEG
    assert storage._UNNAMED is False
    again = store.save(event, Picture("full", JPEG))
    assert again.missing is None and again.path is not None
    assert sorted(p.name for p in Path(ref.path).parent.iterdir()) == sorted(
        [Path(ref.path).name, Path(again.path).name]
    )


def test_a_link_refused_by_proc_or_the_file_system_falls_back_to_part_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_TMPFILE opened, but linking it refused (EXDEV, EPERM: a /proc or file system
    that will not): the picture is still saved, as a ``.part`` renamed, and so are the
    next ones without trying again."""
    from lprmeta import storage

    links: list[str] = []

    def refuse(src: str, dst: str, **kwargs: Any) -> None:
        links.append(dst)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(storage, "_UNNAMED", True)
    monkeypatch.setattr(storage.os, "link", refuse)
    store = ImageStore(tmp_path / "snaps")
    event = Event(kind=Kind.PLATE, camera="gate", source=Source.TCP, plate="AB12")
    first = store.save(event, Picture("plate", JPEG))
    second = store.save(event, Picture("full", JPEG))
    for ref in (first, second):
        assert ref.missing is None and ref.path is not None
        assert Path(ref.path).read_bytes() == JPEG
    assert storage._UNNAMED is False
    assert len(links) <= 1  # tried once at most, not for every picture
    assert not list((tmp_path / "snaps").rglob("*.part"))
