"""ONVIF Profile M object metadata, sans-IO: plates in scene descriptions -> one read per
tracked object.

A camera that describes its scene (``tt:VideoAnalytics`` / ``tt:Frame`` /
``tt:Object``, ``wsdl/ver10/schema/metadatastream.xsd``) may put a plate in an
object's ``tt:Appearance/tt:LicensePlateInfo`` (``PlateNumber``, ``PlateType``,
``CountryCode``, ``IssuingEntity``, each a ``StringLikelihood``), frame after frame
while the car is in view. lprmeta makes **one read per tracked object** of that:

* the object is tracked by its ``ObjectId``, or by its ``Parent``'s when it has one
  (the schema's own example: "License plate object has Vehicle object as parent"),
  so a plate object that the camera renames does not make a second car;
* the read is the frame where the plate's likelihood was highest (the plate
  number's own ``Likelihood``; with none, the object's class likelihood; with
  neither, the first), with the vehicle's ``VehicleInfo`` (from the plate's parent
  object in that frame when the plate is a child object), the object's
  ``Behaviour/Speed`` (kept raw: the schema gives no unit), its ``Image`` (the
  crop, inline base64) or ``ImageRef``, and the frame's ``SceneImage`` or
  ``SceneImageRef`` (the full picture);
* it is emitted **within** ``hold`` (1 s) **of the first frame with a plate**, or at
  once when the object leaves the scene (``tt:ObjectTree/tt:Delete``), whichever
  comes first; after that the object is remembered (by id, while it keeps being
  seen, and for ``forget`` seconds after) so a car that stands in view for a
  minute is still one read.

Bounds: a frame's first :data:`MAX_OBJECT_VISITS` objects are looked at (the
rest counted); :data:`MAX_TRACKS` objects wait at once (one more emits the oldest
early; nothing is dropped); a likelihood outside 0-1 and 0-100 ranks lowest and
is counted (its raw value is kept).

Frames without a plate cost what they cost before: the RTSP session drops them by
a byte search (:func:`has_scene_plates`) without parsing.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from ..envelope import Read
from ..events import ImageRef, Kind, Source, replaced
from .jsonpost import normalize_json, weighed_raw

__all__ = [
    "MAX_TRACKS",
    "PlateTracker",
    "Ready",
    "SceneObject",
    "SceneParse",
    "has_scene_plates",
    "scene_objects",
    "scene_read",
]

MAX_OBJECT_VISITS: Final = 1024  # tt:Object elements looked at in one document
MAX_LEAVES: Final = 64  # values read from one object
# Elements looked at in one document (objects, deletions, the leaves of appearances):
# a megabyte of nested junk in one object used to be walked whole (175 ms of the loop).
MAX_ELEMENT_VISITS: Final = 8192
MAX_ID: Final = 64  # characters of an ObjectId kept (ids are remembered per camera)
MAX_TEXT: Final = 256  # characters of a value kept while it waits (pictures: whole)
_WHOLE: Final = frozenset({"Image"})  # leaves kept whole: the inline picture
MAX_TRACKS: Final = 64  # objects waiting for their read at once, per camera
MAX_REMEMBERED: Final = 4096  # objects already read, remembered by id
MAX_WAITING_BYTES: Final = 16 * 1024 * 1024  # held by one camera's waiting objects
_PICTURE_NOTE = "<picture: {n} characters of base64, see images>"


def has_scene_plates(doc: bytes, *, deletes: bool = False) -> bool:
    """Cheap pre-filter (no parsing): can this scene description give or end a plate
    read? ``deletes``: objects are waiting, so a frame that deletes objects counts."""
    return b"LicensePlateInfo" in doc or (deletes and b"Delete" in doc)


@dataclass(frozen=True, slots=True)
class SceneObject:
    """A plate seen in one frame."""

    track: str  # the id the read is for (the parent's, when the plate has one)
    object_id: str
    frame_time: str | None
    plate: str
    rank: float  # the likelihood compared between frames (-1: none or out of range)
    items: dict[str, str]
    out_of_range: bool = False  # a likelihood outside 0-1 and 0-100


@dataclass(frozen=True, slots=True)
class SceneParse:
    objects: tuple[SceneObject, ...] = ()
    deleted: tuple[str, ...] = ()
    # Objects not looked at (past MAX_OBJECT_VISITS objects or MAX_ELEMENT_VISITS
    # elements); at least 1 when the document was cut short anywhere.
    skipped_objects: int = 0


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _flatten(el: Any, prefix: str, out: dict[str, str], budget: list[int]) -> None:
    """Each leaf under ``el`` as ``prefix.Path.Leaf`` (text) and ``...@Attr``, values cut
    to :data:`MAX_TEXT` (but an inline picture), within ``budget`` element visits."""
    for leaf in itertools.islice(el.iter("{*}*"), 1, None):
        budget[0] -= 1
        if len(out) >= MAX_LEAVES or budget[0] < 0:
            return
        if next(leaf.iterchildren("{*}*"), None) is not None:
            continue
        names = []
        node = leaf
        while node is not None and node is not el:
            names.append(_local(node.tag))
            node = node.getparent()
        key = ".".join([prefix, *reversed(names)] if prefix else reversed(names))
        text = (leaf.text or "").strip()
        if text:
            out.setdefault(key, text if names[0] in _WHOLE else text[:MAX_TEXT])
        for attr, value in leaf.attrib.items():
            out.setdefault(f"{key}@{_local(attr)}", value[:MAX_TEXT])


def _rank(items: dict[str, str]) -> tuple[float, bool]:
    """The likelihood frames are compared by, 0..1 (-1: none), and whether one was given
    outside both scales."""
    for key in ("LicensePlateInfo.PlateNumber@Likelihood", "Class.Type@Likelihood"):
        value = items.get(key)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            return -1.0, True
        if not math.isfinite(number) or number < 0 or number > 100:
            return -1.0, True
        return (number / 100 if number > 1 else number), False
    return -1.0, False


def scene_objects(root: Any) -> SceneParse:
    """The plates in a parsed ``tt:MetadataStream``'s frames, and the objects they say
    left the scene."""
    found: list[SceneObject] = []
    deleted: list[str] = []
    budget = [MAX_ELEMENT_VISITS]
    visited = 0
    for frame in root.iter("{*}Frame"):
        if budget[0] <= 0:
            break
        time = (frame.get("UtcTime") or "")[:MAX_ID] or None
        scene: dict[str, str] = {}
        for child in frame.iterchildren("{*}SceneImage", "{*}SceneImageRef"):
            if (child.text or "").strip():
                scene.setdefault(_local(child.tag), child.text.strip())
        if frame.get("Source"):
            scene["Frame@Source"] = frame.get("Source", "")[:MAX_TEXT]
        objects: dict[str, Any] = {}
        for obj in frame.iterchildren("{*}Object"):
            budget[0] -= 1
            if visited >= MAX_OBJECT_VISITS or budget[0] < 0:
                break
            visited += 1
            objects[obj.get("ObjectId", "")[:MAX_ID]] = obj
        for tree in frame.iterchildren("{*}ObjectTree"):
            for gone in tree.iterchildren("{*}Delete"):
                budget[0] -= 1
                if budget[0] < 0:
                    break
                deleted.append(gone.get("ObjectId", "")[:MAX_ID])
        for object_id, obj in objects.items():
            appearance = next(obj.iterchildren("{*}Appearance"), None)
            if appearance is None:
                continue
            plate_info = next(appearance.iterchildren("{*}LicensePlateInfo"), None)
            if plate_info is None:
                continue
            items: dict[str, str] = {"ObjectId": object_id}
            _flatten(appearance, "", items, budget)
            behaviour = next(obj.iterchildren("{*}Behaviour"), None)
            if behaviour is not None:
                _flatten(behaviour, "Behaviour", items, budget)
            parent_id = (obj.get("Parent") or "")[:MAX_ID]
            if parent_id:
                items["Parent"] = parent_id
                parent = objects.get(parent_id)
                parent_look = (
                    next(parent.iterchildren("{*}Appearance"), None) if parent is not None else None
                )
                parent_moves = (
                    next(parent.iterchildren("{*}Behaviour"), None) if parent is not None else None
                )
                if parent_moves is not None:
                    _flatten(parent_moves, "Behaviour", items, budget)
                if parent_look is not None:
                    vehicle: dict[str, str] = {}
                    _flatten(parent_look, "", vehicle, budget)
                    for key, value in vehicle.items():
                        if key.startswith(("VehicleInfo", "Class", "Color")):
                            items.setdefault(key, value)
                        elif key == "Image":
                            items.setdefault("VehicleImage", value)
            items.update(scene)
            plate = items.get("LicensePlateInfo.PlateNumber", "")
            rank, odd = _rank(items)
            found.append(
                SceneObject(
                    track=parent_id or object_id,
                    object_id=object_id,
                    frame_time=time,
                    plate=plate,
                    rank=rank,
                    items=items,
                    out_of_range=odd,
                )
            )
    skipped = 0
    if budget[0] < 0 or visited >= MAX_OBJECT_VISITS:  # counted in C, only when cut short
        skipped = max(1, sum(1 for _ in root.iter("{*}Object")) - visited)
    return SceneParse(tuple(found), tuple(deleted), skipped)


# A tracked object's read: its best frame, the frames seen, and why it is read now.
Ready = tuple[SceneObject, int, str]


def _size(obj: SceneObject) -> int:
    return sum(len(k) + len(v) for k, v in obj.items.items())


@dataclass
class _Track:
    first: float  # when its first plate came (the caller's clock)
    best: SceneObject
    frames: int = 1
    first_time: str | None = None


@dataclass
class PlateTracker:
    """One camera's tracked objects: ``frame`` takes what a document carried and gives
    the reads that are ready; ``due`` gives those whose ``hold`` has passed (call it on
    a timer: a camera may stop sending frames); ``flush`` gives every waiting one."""

    hold: float = 1.0
    forget: float = 60.0
    max_tracks: int = MAX_TRACKS
    max_bytes: int = MAX_WAITING_BYTES
    _waiting: OrderedDict[str, _Track] = field(default_factory=OrderedDict)
    _bytes: int = 0  # what the waiting objects' best frames hold (inline pictures too)
    _done: OrderedDict[str, float] = field(default_factory=OrderedDict)  # id -> last seen

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def next_due(self) -> float | None:
        """When the oldest waiting object is due (None: none waits)."""
        first = next(iter(self._waiting.values()), None)
        return first.first + self.hold if first is not None else None

    def frame(self, parsed: SceneParse, now: float) -> list[Ready]:
        """(the best frame, frames seen, why now) of every object that is ready."""
        out: list[Ready] = []
        for obj in parsed.objects:
            if obj.track in self._done:
                self._done[obj.track] = now
                self._done.move_to_end(obj.track)
                continue
            track = self._waiting.get(obj.track)
            if track is None:
                if not obj.plate:
                    continue
                if len(self._waiting) >= self.max_tracks:  # the oldest goes out early
                    out.append(self._emit(next(iter(self._waiting)), now, "too many waiting"))
                self._waiting[obj.track] = _Track(now, obj, first_time=obj.frame_time)
                self._bytes += _size(obj)
                continue
            track.frames += 1
            if obj.plate and obj.rank > track.best.rank:
                self._bytes += _size(obj) - _size(track.best)
                track.best = obj
        while self._bytes > self.max_bytes and self._waiting:  # memory: oldest out early
            out.append(self._emit(next(iter(self._waiting)), now, "too much waiting"))
        for gone in parsed.deleted:
            if gone in self._waiting:
                out.append(self._emit(gone, now, "left the scene"))
        out += self.due(now)
        self._forget(now)
        return out

    def due(self, now: float) -> list[Ready]:
        out = []
        while self._waiting:
            key, track = next(iter(self._waiting.items()))
            if now < track.first + self.hold:
                break
            out.append(self._emit(key, now, f"{self.hold:g} s after its first plate"))
        return out

    def flush(self, now: float) -> list[Ready]:
        return [self._emit(key, now, "the stream ended") for key in list(self._waiting)]

    def _emit(self, key: str, now: float, why: str) -> Ready:
        track = self._waiting.pop(key)
        self._bytes -= _size(track.best)
        self._done[key] = now
        self._done.move_to_end(key)
        best = track.best
        if track.first_time is not None:
            best = replace(best, items={**best.items, "FirstSeen": track.first_time})
        return best, track.frames, why

    def _forget(self, now: float) -> None:
        while self._done:
            key, seen = next(iter(self._done.items()))
            if now - seen < self.forget and len(self._done) <= MAX_REMEMBERED:
                break
            del self._done[key]


_PICTURES: Final = {"Image": "plate_image", "SceneImage": "full_image"}
_PICTURE_SIGNATURES: Final = ("/9j/", "iVBORw0KGgo")  # base64 of JPEG's and PNG's first bytes
_NOT_A_PICTURE: Final = "inline picture is not a JPEG or PNG"

_PICTURE_REFS: Final = {"ImageRef": "plate", "SceneImageRef": "full"}


def scene_read(
    obj: SceneObject,
    *,
    camera: str,
    received: datetime,
    frames: int,
    why: str,
    max_picture: int = 16 * 1024 * 1024,
) -> Read:
    """The read of one tracked object: its best frame, normalised like every ONVIF item
    (``LicensePlateInfo.PlateNumber`` is the plate, its ``@Likelihood`` the confidence,
    ``CountryCode`` the country, ``VehicleInfo.Type``/``Brand`` the vehicle)."""
    items = obj.items
    inline: dict[str, str] = {}
    refused: list[ImageRef] = []
    for name, field_name in _PICTURES.items():
        value = items.get(name)
        if value is None:
            continue
        if value.lstrip().startswith(_PICTURE_SIGNATURES):
            inline[field_name] = name
        else:  # a picture is JPEG or PNG; anything else is marked missing, the read goes on
            role = "plate" if field_name == "plate_image" else "full"
            refused.append(ImageRef(role, None, None, None, missing=_NOT_A_PICTURE))
    raw_items = {
        k: (_PICTURE_NOTE.format(n=len(v)) if k in _PICTURES or k == "VehicleImage" else v)
        for k, v in items.items()
    }
    raw, dropped, weight = weighed_raw({"object": raw_items, "frame_time": obj.frame_time})
    problems = [dropped] if dropped else []
    if obj.out_of_range:
        problems.append("a likelihood outside 0-1 and 0-100; it was not compared")
    body: dict[str, Any] = {
        k: v for k, v in items.items() if k in inline.values() or k not in _PICTURES
    }
    body["time"] = obj.frame_time
    if obj.out_of_range:  # no confidence at all rather than a wrong one
        body.pop("LicensePlateInfo.PlateNumber@Likelihood", None)
    details: dict[str, Any] = {
        "onvif": "scene description",
        "object_id": obj.object_id,
        "track": obj.track,
        "frames": frames,
        "read_when": why,
    }
    if problems:
        details["problems"] = problems
    paths = tuple((role, items[name]) for name, role in _PICTURE_REFS.items() if items.get(name))
    read = normalize_json(
        body,
        camera=camera,
        source=Source.RTSP,
        received=received,
        kind=Kind.PLATE,
        fields=inline,
        raw=raw,
        details=details,
        picture_paths=paths,
        max_picture=max_picture,
    )
    if refused:
        event = replaced(read.event, images=(*read.event.images, *refused))
        read = replaced(read, event=event)
    return replaced(read, weight=weight)
