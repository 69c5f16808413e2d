"""The server-side witness of every call: recording (双录) and identity frames from the live video."""

from signaling.witness.peer import MediaState, Witness, WitnessCall, WitnessError
from signaling.witness.recording import (
    Recorder,
    RecordingError,
    RecordingFiles,
    RecordingStore,
    SegmentInfo,
    SegmentTampered,
)

__all__ = [
    "MediaState",
    "Recorder",
    "RecordingError",
    "RecordingFiles",
    "RecordingStore",
    "SegmentInfo",
    "SegmentTampered",
    "Witness",
    "WitnessCall",
    "WitnessError",
]
