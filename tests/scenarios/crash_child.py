"""Child process for the crash test: append from many tasks forever, print each acknowledged seq.

Usage: python crash_child.py DB_URL KEY_FILE WRITERS.  Prints ``ack SEQ LEAF_HASH`` after ``append``
returns (so the entry is committed), flushed at once; the parent kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from counter.audit import AuditEvent, AuditLog
from counter.audit.keys import Signer
from storage import open_database


async def main(url: str, key_file: str, writers: int) -> None:
    db = await open_database(url)
    log = await AuditLog.open(db, Signer.from_file(Path(key_file)), b"k" * 32, checkpoint_interval=0.05)
    out = sys.stdout

    async def writer(w: int) -> None:
        i = 0
        while True:
            receipt = await log.append(
                AuditEvent("call.joined", "customer", f"session:{os.getpid()}-{w}", details={"i": i},
                           personal={"phone": f"1380000{i:04d}"} if i % 7 == 0 else {})
            )
            out.write(f"ack {receipt.seq} {receipt.leaf_hash}\n")
            out.flush()
            i += 1

    out.write("ready\n")
    out.flush()
    await asyncio.gather(*(writer(w) for w in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
