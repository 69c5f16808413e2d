"""Nothing left half-done by a crash: requests a gone node had in flight are finished by the others.

A request in flight is stamped with the node handling it (``tx_requests.node``); every node says it
is alive every :data:`HEARTBEAT_S` seconds (``counter_nodes``).  On start, and every few seconds after,
a request left ``running`` (its change never committed) ends ``failed``, and one the customer confirmed
that never ran is run now if its call is still live (else refused), each with its one audit entry.
Only orphans are touched: this node's own from before its start, or another node's once that node
stopped saying it is alive (:data:`NODE_TTL_S`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from counter.sessions import CounterSession, SessionError
from counter.transactions.outcome import TxOutcome, TxStatus
from counter.transactions.runner import TxRunner
from storage import Row
from storage.timeutil import parse_iso

log = logging.getLogger("counter.transactions")

#: How often a node says it is alive (``counter_nodes``) and looks for orphaned requests.
HEARTBEAT_S = 3.0
#: A node silent this long is taken for dead: another node finishes what it had in flight.  Also how
#: long this node's own request must have been in flight outside any running code before it counts as
#: orphaned (a database outage in the middle of a request).  Node clocks must agree well within it.
NODE_TTL_S = 15.0
#: A confirmed request that never ran (the node died in between) is run on recovery only if the
#: customer confirmed it this recently, with the level and preconditions checked again; older ones are
#: refused (the customer may ask again).
RERUN_WITHIN = timedelta(minutes=10)

#: The reasons a recovered request ends with (English, zh-CN): shown on both screens and audited.
RESTARTED_RUNNING = (
    "the system restarted before it finished; nothing was changed",
    "系统重启，本次业务未办理完成，未做任何更改",
)
RESTARTED_CALL_ENDED = (
    "the system restarted before it ran and the call is no longer connected; nothing was changed",
    "系统重启时通话已不在线，本次业务未办理，未做任何更改",
)
RESTARTED_TOO_OLD = (
    "the system restarted before it ran and the confirmation is too old to run it now; nothing was changed, "
    "ask again if it is still wanted",
    "系统重启，您的确认已过时，本次业务未办理，未做任何更改；如仍需办理请重新发起",
)


#: Requests that only a running engine can finish: ``running``, or confirmed (and approved where an
#: approval is needed) but not yet claimed to run.  A4 requests waiting for a supervisor are not in it.
IN_FLIGHT_SQL = (
    "SELECT * FROM tx_requests WHERE status = 'running' OR (status = 'pending' AND confirmed_at IS NOT NULL"
    " AND (needs_approval = 0 OR approved_by IS NOT NULL)) ORDER BY id"
)


@dataclass
class RecoveryReport:
    """What one :meth:`TxRecovery.recover` pass finished (request ids)."""

    failed: list[int] = field(default_factory=list)
    rerun: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many requests were finished."""
        return len(self.failed) + len(self.rerun) + len(self.refused)


class TxRecovery(TxRunner):
    """A runner that also finishes the orphaned requests of gone nodes, and the requests of ended calls."""

    async def heartbeat(self, now: float | None = None) -> None:
        """This node is alive (``counter_nodes``): other nodes leave what it has in flight alone."""
        await self.db.execute(
            "INSERT INTO counter_nodes (id, seen_at) VALUES ($1, $2)"
            " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            self.node_id,
            time.time() if now is None else now,
        )

    async def recover(
        self,
        *,
        at_start: bool = False,
        now: float | None = None,
        still_connected: Callable[[CounterSession], Awaitable[bool]] | None = None,
    ) -> RecoveryReport:
        """Finish every request left in flight by a node that is gone, each with its one audit entry.

        * ``running`` (its change never committed: the change and its ``done`` are one database
          transaction) ends ``failed``, "the system restarted before it finished; nothing was changed";
        * confirmed by the customer (and approved, where needed) but never run: run now if its session
          is still live (no end of its call recorded and, where ``still_connected`` is given, the call
          still connected to its agent in the shared signaling state) and the confirmation is recent
          (:data:`RERUN_WITHIN`; the level and the preconditions are checked again as for any run),
          else refused with the reason;
        * plain ``pending`` ones (waiting for the customer or a supervisor) are left alone: they end
          with the call (:meth:`call_ended`).

        Orphans are a request stamped with this node that no code of this process is working on
        (``at_start``: all of them, this process has just begun; later: those in flight longer than
        :data:`NODE_TTL_S`), one of a node that has not said it is alive for :data:`NODE_TTL_S`, and
        one with no node (recorded before nodes were stamped).  Every ending is a conditional update,
        so a request a slow node is still working on is finished once, by whoever comes first.
        """
        clock = time.time() if now is None else now
        alive = {
            str(r["id"])
            for r in await self.db.fetch("SELECT id FROM counter_nodes WHERE seen_at >= $1", clock - NODE_TTL_S)
        }
        report = RecoveryReport()
        for row in await self.db.fetch(IN_FLIGHT_SQL):
            tx_id = int(row["id"])
            if not self._orphaned(row, alive, at_start=at_start, now=clock) or tx_id in self._inflight:
                continue
            with self._working_on(tx_id):
                try:
                    await self._recover_one(row, report, clock, still_connected)
                except Exception:
                    log.exception("could not recover transaction #%s; will try again", tx_id)
        if report.count:
            log.warning(
                "recovered %d transaction request(s) left in flight: failed %s, run %s, refused %s",
                report.count, report.failed, report.rerun, report.refused,
            )
        return report

    def _orphaned(self, row: Row, alive: set[str], *, at_start: bool, now: float) -> bool:
        node = row["node"]
        if node is None:
            return True
        if node != self.node_id:
            return node not in alive
        if at_start:
            return True
        since = row["created_at"] if row["status"] == TxStatus.RUNNING.value else row["confirmed_at"]
        return parse_iso(since).timestamp() < now - NODE_TTL_S

    async def _recover_one(
        self,
        row: Row,
        report: RecoveryReport,
        now: float,
        still_connected: Callable[[CounterSession], Awaitable[bool]] | None,
    ) -> None:
        tx_id = int(row["id"])
        if row["status"] == TxStatus.RUNNING.value:
            await self._finish(tx_id, TxStatus.FAILED, *RESTARTED_RUNNING)
            report.failed.append(tx_id)
            return
        try:
            session = await self.sessions.get(row["session_id"])
            live = session.live and (still_connected is None or await still_connected(session))
        except SessionError:
            live = False
        confirmed = parse_iso(row["confirmed_at"]).timestamp()
        if not live:
            await self._finish(tx_id, TxStatus.REFUSED, *RESTARTED_CALL_ENDED)
            report.refused.append(tx_id)
        elif confirmed < now - RERUN_WITHIN.total_seconds():
            await self._finish(tx_id, TxStatus.REFUSED, *RESTARTED_TOO_OLD)
            report.refused.append(tx_id)
        else:
            await self._execute(tx_id)
            report.rerun.append(tx_id)

    async def call_ended(self, session_id: str) -> list[TxOutcome]:
        """The session's call ended: requests still waiting for the customer (or a supervisor) are
        refused, one audit entry each, so none is left half-done or confirmable later."""
        rows = await self.db.fetch(
            "SELECT id FROM tx_requests WHERE session_id = $1 AND status = 'pending' ORDER BY id", session_id
        )
        return [
            await self._finish(
                int(r["id"]), TxStatus.REFUSED, "the call ended before it was done: nothing was changed",
                "通话已结束，本次业务未办理",
            )
            for r in rows
        ]

    async def forget_secrets(self, ended_before: str) -> int:
        """Drop the customer's copy of secret results (a PUK, a new SIM's ICCID) of sessions whose call
        ended before ``ended_before`` (ISO time): it was theirs to see on their own screen during the
        call and the short while after it; it is not kept at rest beyond that.  Returns how many."""
        rows = await self.db.fetch(
            "SELECT r.id, r.result FROM tx_requests r JOIN counter_sessions s ON s.id = r.session_id"
            " WHERE s.call_ended_at IS NOT NULL AND s.call_ended_at < $1 AND r.result LIKE $2",
            ended_before,
            '%"_customer"%',
        )
        forgotten = 0
        for row in rows:
            result = json.loads(row["result"])
            if result.pop("_customer", None) is None:
                continue
            forgotten += await self.db.execute(
                "UPDATE tx_requests SET result = $2 WHERE id = $1 AND result = $3",
                int(row["id"]),
                json.dumps(result, ensure_ascii=False, default=str),
                row["result"],
            )
        return forgotten
