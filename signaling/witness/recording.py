"""Call recordings: encoded media remuxed (never re-encoded) into WebM segments, encrypted at rest.

A :class:`Recorder` takes the encoded frames the witness's RTP receivers reassembled (VP8 video,
Opus audio, both parties) and muxes them into one WebM container per segment (four tracks:
customer video, customer audio, agent video, agent audio; timestamps in milliseconds from the
start of the recording).  Each segment is a standalone file: it starts with a video key frame per
party (the recorder asks the sender for one at each cut).  A closed segment is encrypted with
AES-256-GCM under the recording's own key (wrapped by the master key, RFC 3394) and handed to
``on_segment`` with the sha256 of the encrypted file, for the audit log.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import fractions
import hashlib
import json
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from av.container import OutputContainer
from av.stream import Stream
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from identity.files import write_atomic

log = logging.getLogger("signaling.witness.recording")

#: The tracks of every segment, in order: (party, kind).  A helper's (家属) two tracks follow in the
#: segments cut after the helper's first packet (:data:`EXTRA_PARTIES`).
TRACKS: tuple[tuple[str, str], ...] = (("customer", "video"), ("customer", "audio"), ("agent", "video"),
                                        ("agent", "audio"))
EXTRA_PARTIES = ("helper",)
MS = fractions.Fraction(1, 1000)
NONCE = 12
#: After a cut, how long a party's video may keep going into the previous segment waiting for a key frame.
SWITCH_TIMEOUT_S = 2.0
SEGMENT_SUFFIX = ".webm.enc"


class RecordingError(Exception):
    """A recording cannot be written or read; the message says why and what to do."""


class SegmentTampered(RecordingError):
    """A segment's file fails authentication or does not match the hash in the audit log."""


@dataclass(frozen=True)
class SegmentInfo:
    """A closed, encrypted segment: ``sha256`` is the hash of the file as stored."""

    recording_id: str
    call_id: str
    index: int
    sha256: str
    size: int
    start_ms: int
    end_ms: int
    tracks: tuple[str, ...]
    path: Path


SegmentHook = Callable[[SegmentInfo], Awaitable[None]]
KeyframeRequest = Callable[[str], None]


def key_id(master_key: bytes) -> str:
    """A short public fingerprint of a master key."""
    return hashlib.sha256(b"recording-master-key" + master_key).hexdigest()[:16]


def _aad(recording_id: str, index: int) -> bytes:
    return f"remote-counter/recording|{recording_id}|{index}".encode()


class RecordingFiles:
    """One recording's folder: ``recording.json`` (wrapped key) and ``seg-NNNNNN.webm.enc`` files."""

    def __init__(self, directory: Path, master_key: bytes) -> None:
        self.directory = directory
        self._master = master_key
        self._key: bytes | None = None
        self._header: dict[str, Any] | None = None
        self._unsaved = False
        self._saving = threading.Lock()

    @classmethod
    def create(cls, directory: Path, master_key: bytes, recording_id: str, call_id: str) -> RecordingFiles:
        """A new recording folder with a fresh key wrapped by ``master_key`` (blocking: it writes the folder)."""
        files = cls.new(directory, master_key, recording_id, call_id)
        files.save()
        return files

    @classmethod
    def new(cls, directory: Path, master_key: bytes, recording_id: str, call_id: str) -> RecordingFiles:
        """A new recording with a fresh key wrapped by ``master_key``, in memory only: the folder is
        written by :meth:`save`, which the first :meth:`write_segment` calls (off the event loop)."""
        files = cls(directory, master_key)
        files._unsaved = True
        files._key = AESGCM.generate_key(bit_length=256)
        files._header = {
            "v": 1,
            "recording_id": recording_id,
            "call_id": call_id,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "format": "webm",
            # Stream i of every segment is tracks[i]; a helper's follow in segments that have them.
            "tracks": [f"{party}.{kind}" for party, kind in TRACKS]
            + [f"{party}.{kind}" for party in EXTRA_PARTIES for kind in ("video", "audio")],
            "key_id": key_id(master_key),
            "wrapped_key": base64.b64encode(aes_key_wrap(master_key, files._key)).decode(),
        }
        return files

    def save(self) -> None:
        """Write the folder and its ``recording.json`` unless written already (blocking: it syncs to disk)."""
        with self._saving:
            if self._unsaved:
                self.directory.mkdir(parents=True, mode=0o700)
                write_atomic(self.directory / "recording.json", json.dumps(self.header).encode())
                self._unsaved = False

    @property
    def header(self) -> dict[str, Any]:
        if self._header is None:
            try:
                self._header = json.loads((self.directory / "recording.json").read_bytes())
            except FileNotFoundError:
                raise RecordingError(f"no recording in {self.directory}: purged, or never written") from None
        return self._header

    @property
    def recording_id(self) -> str:
        return str(self.header["recording_id"])

    def _record_key(self) -> bytes:
        if self._key is None:
            try:
                self._key = aes_key_unwrap(self._master, base64.b64decode(self.header["wrapped_key"]))
            except InvalidUnwrap:
                raise RecordingError(
                    f"recording {self.recording_id} was wrapped by master key {self.header.get('key_id')}, "
                    f"not {key_id(self._master)}: use the key file it was recorded with"
                ) from None
        return self._key

    def segment_path(self, index: int) -> Path:
        return self.directory / f"seg-{index:06d}{SEGMENT_SUFFIX}"

    def segments(self) -> list[int]:
        """Indexes of the segment files present, in order."""
        return sorted(int(p.name[4:10]) for p in self.directory.glob(f"seg-*{SEGMENT_SUFFIX}"))

    def write_segment(self, index: int, plaintext: bytes) -> tuple[str, int, Path]:
        """Encrypt and store segment ``index``; return (sha256 of the file, its size, its path)."""
        self.save()
        nonce = secrets.token_bytes(NONCE)
        blob = nonce + AESGCM(self._record_key()).encrypt(nonce, plaintext, _aad(self.recording_id, index))
        path = self.segment_path(index)
        write_atomic(path, blob)
        return hashlib.sha256(blob).hexdigest(), len(blob), path

    def file_sha256(self, index: int) -> str:
        try:
            return hashlib.sha256(self.segment_path(index).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise SegmentTampered(f"segment {index} of recording {self.recording_id} is missing") from None

    def read_segment(self, index: int, expected_sha256: str | None = None) -> bytes:
        """The decrypted segment; checks the file against ``expected_sha256`` (from the audit log) first."""
        try:
            blob = self.segment_path(index).read_bytes()
        except FileNotFoundError:
            raise SegmentTampered(f"segment {index} of recording {self.recording_id} is missing") from None
        if expected_sha256 is not None and hashlib.sha256(blob).hexdigest() != expected_sha256:
            raise SegmentTampered(
                f"segment {index} of recording {self.recording_id} does not match the hash in the audit log"
            )
        try:
            return AESGCM(self._record_key()).decrypt(blob[:NONCE], blob[NONCE:], _aad(self.recording_id, index))
        except InvalidTag:
            raise SegmentTampered(
                f"segment {index} of recording {self.recording_id} fails authentication: altered or swapped"
            ) from None

    @staticmethod
    def plaintext_size(file_size: int) -> int:
        """Size of a segment's WebM bytes from the size of its encrypted file."""
        return max(0, file_size - NONCE - 16)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _Sink:
    """A write-only, non-seekable byte sink for the muxer (WebM is written in live mode)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) if ``data`` is a VP8 key frame (RFC 6386 9.1), else ``None``."""
    if len(data) < 10 or data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF


class _Segment:
    """One open WebM container with the four tracks."""

    def __init__(self, index: int, sizes: dict[str, tuple[int, int]], opened_at: float,
                 tracks: tuple[tuple[str, str], ...] = TRACKS) -> None:
        self.index = index
        self.sink = _Sink()
        self.container: OutputContainer = av.open(self.sink, "w", format="webm", options={"live": "1"})
        self.streams: dict[str, Stream] = {}
        for party, kind in tracks:
            name = f"{party}.{kind}"
            if kind == "video":
                width, height = sizes.get(name, (640, 480))
                self.streams[name] = self.container.add_mux_stream("vp8", width=width, height=height, time_base=MS)
            else:
                self.streams[name] = self.container.add_mux_stream("opus", rate=48000, time_base=MS)
        self.started: set[str] = set()
        self.start_ms: int | None = None
        self.end_ms = 0
        self.opened_at = opened_at

    def write(self, name: str, data: bytes, pts: int, keyframe: bool) -> None:
        packet = av.Packet(data)
        packet.stream = self.streams[name]
        packet.pts = packet.dts = pts
        packet.time_base = MS
        packet.is_keyframe = keyframe
        self.container.mux_one(packet)
        self.started.add(name)
        self.start_ms = pts if self.start_ms is None else min(self.start_ms, pts)
        self.end_ms = max(self.end_ms, pts)

    def finish(self) -> bytes:
        self.container.close()
        return bytes(self.sink.data)


@dataclass
class _Track:
    first_ts: int
    offset_ms: int
    clock: int
    last_pts: int = -1
    last_key_request: float = 0.0


@dataclass
class RecorderStats:
    packets: int = 0
    bytes_in: int = 0
    dropped: int = 0
    segments: int = 0
    mux_s: float = 0.0
    finish_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class Recorder:
    """Records one call.  :meth:`packet` is called on the event loop for every encoded frame received."""

    def __init__(
        self,
        files: RecordingFiles,
        call_id: str,
        on_segment: SegmentHook | None = None,
        segment_s: float = 10.0,
        request_keyframe: KeyframeRequest | None = None,
    ) -> None:
        self.files = files
        self.call_id = call_id
        self.recording_id = files.recording_id
        self.on_segment = on_segment
        self.segment_s = segment_s
        self.request_keyframe = request_keyframe
        self.stats = RecorderStats()
        self.segments: list[SegmentInfo] = []
        self._t0: float | None = None
        self._tracks: dict[str, _Track] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._layout: tuple[tuple[str, str], ...] = TRACKS
        self._current: _Segment | None = None
        self._previous: _Segment | None = None
        self._cut_at = 0.0
        self._next_index = 0
        self._pending: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def started_at(self) -> float | None:
        """``time.monotonic()`` of the first packet."""
        return self._t0

    @property
    def duration_ms(self) -> int:
        """Milliseconds recorded so far (last timestamp written)."""
        ends = [s.end_ms for s in self.segments]
        ends += [s.end_ms for s in (self._current, self._previous) if s is not None and s.start_ms is not None]
        return max(ends, default=0)

    def packet(self, party: str, kind: str, data: bytes, timestamp: int, clock: int, now: float | None = None) -> None:
        """Mux one encoded frame (``timestamp`` in RTP clock units, from 0 at the track's first frame)."""
        if self._closed or not data:
            return
        started = time.perf_counter()
        now = time.monotonic() if now is None else now
        name = f"{party}.{kind}"
        if self._t0 is None:
            self._t0 = now
        track = self._tracks.get(name)
        if track is None:
            track = self._tracks[name] = _Track(timestamp, int((now - self._t0) * 1000), clock)
        pts = track.offset_ms + (timestamp - track.first_ts) * 1000 // track.clock
        pts = max(pts, track.last_pts + 1)
        track.last_pts = pts
        self.stats.packets += 1
        self.stats.bytes_in += len(data)
        keyframe = kind == "audio"
        if kind == "video":
            size = vp8_keyframe_size(data)
            keyframe = size is not None
            if size is not None:
                self._sizes[name] = size
        if party in EXTRA_PARTIES and (party, kind) not in self._layout:
            self._layout = (*self._layout, (party, "video"), (party, "audio"))
        if self._current is None:
            self._current = _Segment(self._next_index, self._sizes, now, self._layout)
            self._next_index += 1
            self._cut_at = now
        elif self._previous is None and (now - self._current.opened_at >= self.segment_s
                                         or name not in self._current.streams):
            self._cut(now)
        if name not in self._current.streams:  # a new party: in the next segment (after this cut)
            self.stats.dropped += 1
            return
        target = self._route(name, kind, keyframe, track, now)
        if target is not None:
            target.write(name, data, pts, keyframe)
        else:
            self.stats.dropped += 1
        previous = self._previous
        if previous is not None:
            waiting = {n for n in previous.started if n.endswith(".video")} - self._current.started
            if not waiting or now - self._cut_at > SWITCH_TIMEOUT_S:
                self._finish(previous)
                self._previous = None
        self.stats.mux_s += time.perf_counter() - started

    def _route(self, name: str, kind: str, keyframe: bool, track: _Track, now: float) -> _Segment | None:
        current = self._current
        assert current is not None
        if kind == "audio" or name in current.started or keyframe:
            return current
        if self._previous is not None and name in self._previous.started:
            return self._previous
        if self.request_keyframe is not None and now - track.last_key_request > 1.0:
            track.last_key_request = now
            self.request_keyframe(name.split(".")[0])
        return None

    def _cut(self, now: float) -> None:
        previous = self._previous = self._current
        assert previous is not None
        self._current = _Segment(self._next_index, self._sizes, now, self._layout)
        self._next_index += 1
        self._cut_at = now
        if self.request_keyframe is not None:
            for party in {n.split(".")[0] for n in previous.started if n.endswith(".video")}:
                self.request_keyframe(party)

    def _finish(self, segment: _Segment) -> None:
        started = time.perf_counter()
        plaintext = segment.finish() if segment.start_ms is not None else b""
        self.stats.finish_s += time.perf_counter() - started
        if not plaintext:
            return
        previous = self._pending
        self._pending = asyncio.ensure_future(self._store(segment, plaintext, previous))

    async def _store(self, segment: _Segment, plaintext: bytes, previous: asyncio.Task[None] | None) -> None:
        sha, size, path = await asyncio.to_thread(self.files.write_segment, segment.index, plaintext)
        if previous is not None:
            await previous  # segments are reported in order
        info = SegmentInfo(self.recording_id, self.call_id, segment.index, sha, size, segment.start_ms or 0,
                           segment.end_ms, tuple(sorted(segment.started)), path)
        self.segments.append(info)
        self.stats.segments += 1
        if self.on_segment is not None:
            try:
                await self.on_segment(info)
            except Exception:
                log.exception("recording %s: segment %d stored but not reported", self.recording_id, segment.index)

    async def close(self) -> list[SegmentInfo]:
        """Close the open segments, store and report them; return every segment of the recording."""
        if not self._closed:
            self._closed = True
            for segment in (self._previous, self._current):
                if segment is not None:
                    self._finish(segment)
            self._previous = self._current = None
        if self._pending is not None:
            await self._pending
        if not self.segments:  # a recording without media still leaves its folder, as one with media does
            await asyncio.to_thread(self.files.save)
        return list(self.segments)


class RecordingStore:
    """The folder of all recordings: ``<root>/<recording id>/``."""

    def __init__(self, root: Path, master_key: bytes) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._master = master_key

    def new_id(self, call_id: str) -> str:
        safe = "".join(c for c in call_id if c.isalnum() or c in "-_")[:40] or "call"
        return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{safe}-{secrets.token_hex(3)}"

    def create(self, call_id: str) -> RecordingFiles:
        """A new recording of ``call_id``: nothing is written before its first segment (:meth:`RecordingFiles.new`)."""
        recording_id = self.new_id(call_id)
        return RecordingFiles.new(self.root / recording_id, self._master, recording_id, call_id)

    def open(self, recording_id: str) -> RecordingFiles:
        if not recording_id or "/" in recording_id or recording_id.startswith("."):
            raise RecordingError(f"{recording_id!r} is not a recording id")
        return RecordingFiles(self.root / recording_id, self._master)

    def remove(self, recording_id: str) -> None:
        self.open(recording_id).remove()
