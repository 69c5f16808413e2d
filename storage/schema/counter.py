"""Counter business records: sessions per call, transaction requests, SMS outbox, work orders, SMS codes,
the identity proofs of each session and its liveness challenges; which node has a request in flight
(``tx_requests.node``) and when each node last said it was alive (``counter_nodes``)."""

from storage.migrate import Migration

COMPONENT = "counter"
ORDER = 40
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE counter_sessions (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            account TEXT,
            claimed_name TEXT NOT NULL DEFAULT '',
            face_consent INTEGER,
            level INTEGER NOT NULL DEFAULT 0,
            level_method TEXT NOT NULL DEFAULT '',
            level_at TEXT,
            customer_token_hash TEXT NOT NULL,
            notes TEXT NOT NULL DEFAULT '[]',
            wrap_up TEXT,
            rating INTEGER,
            rating_comment TEXT,
            created_at TEXT NOT NULL,
            closed_at TEXT
        );
        CREATE INDEX counter_sessions_token ON counter_sessions(customer_token_hash);
        CREATE TABLE session_evidence (
            id {pk},
            session_id TEXT NOT NULL REFERENCES counter_sessions(id),
            level INTEGER NOT NULL,
            method TEXT NOT NULL,
            evidence TEXT NOT NULL DEFAULT '[]',
            subject TEXT NOT NULL DEFAULT 'holder',
            recorded_by TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX session_evidence_session ON session_evidence(session_id);
        CREATE TABLE tx_requests (
            id {pk},
            session_id TEXT NOT NULL REFERENCES counter_sessions(id),
            idem_key TEXT NOT NULL,
            code TEXT NOT NULL,
            account TEXT,
            inputs TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            needs_confirmation INTEGER NOT NULL,
            needs_approval INTEGER NOT NULL,
            result TEXT,
            reason TEXT,
            requested_by TEXT NOT NULL,
            confirmed_at TEXT,
            approved_by TEXT,
            approved_at TEXT,
            audit_seq {bigint},
            created_at TEXT NOT NULL,
            finished_at TEXT,
            UNIQUE (session_id, idem_key)
        );
        CREATE INDEX tx_requests_status ON tx_requests(status);
        CREATE TABLE sms_outbox (
            id {pk},
            msisdn TEXT NOT NULL,
            body TEXT NOT NULL,
            tx_id {bigint},
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX sms_outbox_unsent ON sms_outbox(sent_at);
        CREATE TABLE work_orders (
            id {pk},
            session_id TEXT,
            account TEXT,
            kind TEXT NOT NULL,
            category TEXT NOT NULL,
            summary TEXT NOT NULL,
            status TEXT NOT NULL,
            due_at TEXT NOT NULL,
            callback_due_at TEXT,
            callback_done_at TEXT,
            callback_outcome TEXT,
            created_by TEXT NOT NULL,
            history TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX work_orders_status ON work_orders(status, due_at);
        CREATE TABLE guidance_runs (
            id {pk},
            session_id TEXT NOT NULL,
            script TEXT NOT NULL,
            steps TEXT NOT NULL DEFAULT '[]',
            outcome TEXT,
            work_order_id {bigint},
            started_at TEXT NOT NULL,
            finished_at TEXT
        )
        """,
    ),
    Migration(
        2,
        """
        CREATE TABLE session_sms_codes (
            id {pk},
            session_id TEXT NOT NULL REFERENCES counter_sessions(id),
            msisdn TEXT NOT NULL,
            code_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            used_at TEXT
        );
        CREATE INDEX session_sms_codes_session ON session_sms_codes(session_id, id)
        """,
    ),
    Migration(
        3,
        """
        CREATE TABLE session_proofs (
            id {pk},
            session_id TEXT NOT NULL REFERENCES counter_sessions(id),
            kind TEXT NOT NULL,
            sha TEXT NOT NULL,
            facts TEXT NOT NULL DEFAULT '{}',
            at TEXT NOT NULL
        );
        CREATE INDEX session_proofs_session ON session_proofs(session_id, kind, id);
        CREATE TABLE liveness_challenges (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES counter_sessions(id),
            state TEXT NOT NULL,
            deadline {float} NOT NULL,
            created_at TEXT NOT NULL,
            used_at TEXT
        )
        """,
    ),
    Migration(4, "ALTER TABLE counter_sessions ADD COLUMN face_consent_at TEXT"),
    Migration(
        5,
        """
        ALTER TABLE counter_sessions ADD COLUMN call_ended_at TEXT;
        ALTER TABLE work_orders ADD COLUMN assigned_to TEXT
        """,
    ),
    Migration(
        6,
        """
        ALTER TABLE tx_requests ADD COLUMN node TEXT;
        CREATE TABLE counter_nodes (
            id TEXT PRIMARY KEY,
            seen_at {float} NOT NULL
        )
        """,
    ),
]
