"""The face and ID card models of this process, loaded once, and whether they are ready."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from identity import EvidenceStore, IdentityService

log = logging.getLogger("counter.identity_models")


class IdentityNotReady(Exception):
    """The identity checks are unavailable: the models are still loading, or could not be."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"identity checks are unavailable: {reason}")


class IdentityState:
    """The identity service once its models are loaded, and the evidence store.

    What a session proved (face match, liveness, accepted stills, ID stills) and its liveness
    challenges are in the database (:class:`counter.proofs.SessionProofs`), seen by every node.
    """

    def __init__(self, evidence: EvidenceStore) -> None:
        self.evidence = evidence
        self.service: IdentityService | None = None
        self.error: str | None = "loading models"

    def ready(self) -> IdentityService:
        """The loaded service, or :class:`IdentityNotReady`."""
        if self.service is None:
            raise IdentityNotReady(self.error or "not loaded")
        return self.service

    async def load(self, settings: Any) -> str | None:
        """Load the models in an executor; ``None`` once loaded, else why not (kept in :attr:`error`)."""
        try:
            self.service = await asyncio.to_thread(load_service, settings)
            self.error = None
        except Exception as exc:
            self.error = f"face and ID models not loaded: {exc}"
            log.error("%s", self.error)
        return self.error


_LOADED: dict[tuple[str, tuple[str, ...], int], IdentityService] = {}
_LOAD_LOCK = threading.Lock()


def load_service(settings: Any) -> IdentityService:
    """The process's identity service: every model session created once (blocking: run it in an executor).

    The models come from ``settings.models_dir`` (checked to be a folder when the settings are loaded);
    unset, the identity package looks in its own places (its cache, packages carrying models)."""
    key = (str(settings.models_dir), tuple(settings.onnx_providers), settings.onnx_threads)
    with _LOAD_LOCK:
        service = _LOADED.get(key)
        if service is None:
            service = IdentityService(settings.models_dir, settings.onnx_providers, settings.onnx_threads)
            service.cards.ocr_engine()
            _LOADED[key] = service
        return service
