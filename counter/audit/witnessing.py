"""The log's side of witnessing: ask the configured witnesses (C2SP ``tlog-witness``) to cosign each
new checkpoint, keep their cosignatures, and at start refuse to serve a database that is behind
or not consistent with what the witnesses hold.

Witnesses are configured as ``"<url> <cosignature verifier key>"`` (``audit_witnesses``).  A witness
that cannot be reached is logged, not fatal (it catches up with the next checkpoint); a witness
that answers that it holds a larger tree (409 with a larger size) or that our tree does not extend
its own (422) is proof of a rollback or a rewrite: :class:`WitnessRefusal`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from counter.audit.entry import AuditError, AuditEvent
from counter.audit.keys import Checkpoint, split_note
from counter.audit.log import AuditLog
from counter.audit.merkle import EMPTY_ROOT
from counter.audit.tiles import latest_checkpoint
from counter.audit.witness import Cosigner
from storage.timeutil import iso

log = logging.getLogger("counter.audit.witnessing")
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class WitnessRefusal(AuditError):
    """A witness holds a checkpoint this database is behind, or not consistent with."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class WitnessConfig:
    """One witness: where to reach it and the key its cosignatures are checked with."""

    url: str
    cosigner: Cosigner

    @classmethod
    def parse(cls, spec: str) -> WitnessConfig:
        """From ``"<url> <verifier key>"``; raises :class:`ValueError`."""
        parts = spec.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://")):
            raise ValueError(f"audit witness {spec[:80]!r}: give '<http(s) url> <cosignature verifier key>'")
        return cls(parts[0].rstrip("/"), Cosigner.parse(parts[1]))


def _cosigns(cosigner: Cosigner, note: str, line: str) -> bool:
    body, _ = split_note(note)
    try:
        _, sigs = split_note(body + "\n" + line + "\n")
    except ValueError:
        return False
    return cosigner.valid(body, sigs)


@dataclass
class Witnessing:
    """Cosigning of the log's checkpoints by its witnesses."""

    audit: AuditLog
    witnesses: list[WitnessConfig]
    sizes: dict[str, int] = field(default_factory=dict)  # what each witness holds, as last seen
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _http: aiohttp.ClientSession | None = None

    async def _post(self, w: WitnessConfig, body: str) -> tuple[int, str]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=_TIMEOUT)
        async with self._http.post(w.url + "/add-checkpoint", data=body.encode("utf-8")) as resp:
            return resp.status, (await resp.text())[:4096]

    async def _submit(self, w: WitnessConfig, cp: Checkpoint) -> str | None:
        """The cosignature line of ``w`` on ``cp``; ``None`` if unreachable or odd; raises WitnessRefusal."""
        note = cp.signed_note(self.audit.signer.public_key)
        old = min(self.sizes.get(w.cosigner.name, cp.tree_size), cp.tree_size)
        for _ in range(3):
            proof = [] if old in (0, cp.tree_size) else await self.audit.consistency_proof(old, cp.tree_size)
            body = f"old {old}\n" + "".join(base64.b64encode(bytes.fromhex(p)).decode() + "\n" for p in proof)
            try:
                status, text = await self._post(w, body + "\n" + note)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("audit witness %s unreachable: %s", w.cosigner.name, exc)
                return None
            details = {"witness": w.cosigner.name, "tree_size": cp.tree_size}
            if status == 409 and text.strip().isdigit():
                held = int(text.strip())
                self.sizes[w.cosigner.name] = held
                if held > cp.tree_size:
                    raise WitnessRefusal(
                        f"witness {w.cosigner.name} has cosigned a tree of {held} entries, the database holds"
                        f" {cp.tree_size}: it is behind (restored from an older copy?); not serving",
                        {**details, "witness_size": held, "problem": "rollback"},
                    )
                old = held
                continue
            if status == 422:
                raise WitnessRefusal(
                    f"witness {w.cosigner.name} refuses the checkpoint of size {cp.tree_size}: the stored log"
                    f" is not consistent with the one it cosigned ({text.strip()[:200]}); not serving",
                    {**details, "witness_size": self.sizes.get(w.cosigner.name), "problem": "inconsistent"},
                )
            if status != 200:
                log.warning("audit witness %s answered %d: %s", w.cosigner.name, status, text[:200])
                return None
            valid = [line for line in text.splitlines() if line and _cosigns(w.cosigner, note, line)]
            if not valid:
                log.warning("audit witness %s sent no valid cosignature", w.cosigner.name)
                return None
            self.sizes[w.cosigner.name] = cp.tree_size
            return valid[0]
        return None

    async def cosign(self, cp: Checkpoint) -> dict[str, str]:
        """Ask every witness to cosign ``cp``; keep and return the cosignature lines by witness name."""
        results = await asyncio.gather(*(self._submit(w, cp) for w in self.witnesses))
        got = {w.cosigner.name: line for w, line in zip(self.witnesses, results, strict=True) if line}
        if got and cp.tree_size > 0:
            async with self.audit.db.transaction() as tx:
                for name, line in got.items():
                    await tx.execute(
                        "INSERT INTO audit_cosignatures (tree_size, witness, line) VALUES ($1, $2, $3)"
                        " ON CONFLICT (tree_size, witness) DO NOTHING", cp.tree_size, name, line,
                    )
        return got

    async def check_on_start(self) -> None:
        """Compare the stored tree with what every witness holds; raise :class:`WitnessRefusal` if behind
        or inconsistent."""
        cp = await latest_checkpoint(self.audit)
        if cp is None:  # an empty log: the signed empty tree, which a witness holding anything refuses
            cp = self.audit.signer.sign(0, EMPTY_ROOT, iso())
        await self.cosign(cp)

    def checkpoint_signed(self, cp: Checkpoint) -> None:
        """Hook for the log: a new checkpoint is signed (cosigned in the background)."""
        self._wake.set()

    def start(self) -> None:
        self.audit.on_checkpoint.append(self.checkpoint_signed)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-witnessing")

    async def _run(self) -> None:
        done = 0
        reported: set[str] = set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            cp = self.audit.latest_checkpoint()
            if cp is None or cp.tree_size <= done:
                continue
            try:
                await self.cosign(cp)
                done = cp.tree_size
            except WitnessRefusal as exc:
                log.error("audit witnessing: %s", exc)
                key = f"{exc.details.get('witness')}:{exc.details.get('problem')}"
                if key not in reported:  # once: the entry's own checkpoint would be refused again
                    reported.add(key)
                    with contextlib.suppress(AuditError):
                        await self.audit.append(AuditEvent("audit.witness_refused", "system", "system",
                                                           outcome="failed", details=exc.details, reason=str(exc)))
            except Exception:
                log.exception("audit witnessing failed")
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self.checkpoint_signed in self.audit.on_checkpoint:
            self.audit.on_checkpoint.remove(self.checkpoint_signed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()
