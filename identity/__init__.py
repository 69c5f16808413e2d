"""Identity checks on ONNX models: face match, liveness, ID-card capture, encrypted evidence.

Imports nothing from the rest of the project; ``web/`` calls :class:`IdentityService`.
"""

from identity.evidence import EvidenceStore
from identity.face import MATCH_THRESHOLD, FaceEngine, FaceMatch, FaceQuality, QualityIssue
from identity.idcard import IdCardReader, IdCardResult, read_id, validate_number
from identity.liveness import Challenge, LivenessResult, evaluate, new_challenge
from identity.models import ModelError, ModelRegistry
from identity.service import Checked, IdentityService

__all__ = [
    "MATCH_THRESHOLD",
    "Challenge",
    "Checked",
    "EvidenceStore",
    "FaceEngine",
    "FaceMatch",
    "FaceQuality",
    "IdCardReader",
    "IdCardResult",
    "IdentityService",
    "LivenessResult",
    "ModelError",
    "ModelRegistry",
    "QualityIssue",
    "evaluate",
    "new_challenge",
    "read_id",
    "validate_number",
]
