"""A call's connection figures as the agent's console measured them: :mod:`web.link_api`."""

from storage.migrate import Migration

COMPONENT = "linkstats"
ORDER = 70
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE call_link_stats (
            call_id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            samples INTEGER NOT NULL,
            rtt_ms {float} NOT NULL,
            loss_pct {float} NOT NULL,
            up_kbps {float} NOT NULL,
            down_kbps {float} NOT NULL,
            audio_only_s INTEGER NOT NULL,
            worst TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
    ),
]
