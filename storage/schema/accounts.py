"""The built-in account system: holders, lines, SIMs, bills, payments, add-ons, invoices."""

from storage.migrate import Migration

COMPONENT = "accounts"
ORDER = 30
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE acct_holders (
            id {pk},
            name TEXT NOT NULL,
            id_number TEXT NOT NULL,
            birth_date TEXT NOT NULL,
            id_expires TEXT NOT NULL DEFAULT '',
            photo {blob},
            photo_sha256 TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE INDEX acct_holders_id_number ON acct_holders(id_number);
        CREATE TABLE acct_lines (
            msisdn TEXT PRIMARY KEY,
            holder_id INTEGER NOT NULL REFERENCES acct_holders(id),
            status TEXT NOT NULL,
            status_before_loss TEXT,
            suspended_until TEXT,
            emergency_until TEXT,
            plan TEXT NOT NULL,
            pending_plan TEXT,
            pending_plan_from TEXT,
            roaming INTEGER NOT NULL DEFAULT 0,
            forwarding TEXT,
            datacap_mb INTEGER,
            spamblock INTEGER NOT NULL DEFAULT 0,
            password_hash TEXT NOT NULL,
            balance_cents {bigint} NOT NULL DEFAULT 0,
            credit_limit_cents {bigint} NOT NULL DEFAULT 0,
            points {bigint} NOT NULL DEFAULT 0 CHECK (points >= 0),
            contact_address TEXT NOT NULL DEFAULT '',
            contact_email TEXT NOT NULL DEFAULT '',
            refund_cents {bigint},
            closed_at TEXT,
            version INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX acct_lines_holder ON acct_lines(holder_id);
        CREATE TABLE acct_sims (
            iccid TEXT PRIMARY KEY,
            msisdn TEXT NOT NULL REFERENCES acct_lines(msisdn),
            puk TEXT NOT NULL,
            esim INTEGER NOT NULL DEFAULT 0,
            active INTEGER NOT NULL DEFAULT 1,
            issued_at TEXT NOT NULL
        );
        CREATE INDEX acct_sims_msisdn ON acct_sims(msisdn);
        CREATE TABLE acct_bills (
            msisdn TEXT NOT NULL REFERENCES acct_lines(msisdn),
            month TEXT NOT NULL,
            amount_cents {bigint} NOT NULL,
            paid INTEGER NOT NULL DEFAULT 0,
            items TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (msisdn, month)
        );
        CREATE TABLE acct_payments (
            id {pk},
            msisdn TEXT NOT NULL REFERENCES acct_lines(msisdn),
            paid_at TEXT NOT NULL,
            amount_cents {bigint} NOT NULL,
            channel TEXT NOT NULL
        );
        CREATE INDEX acct_payments_msisdn ON acct_payments(msisdn);
        CREATE TABLE acct_addons (
            msisdn TEXT NOT NULL REFERENCES acct_lines(msisdn),
            addon TEXT NOT NULL,
            since TEXT NOT NULL,
            PRIMARY KEY (msisdn, addon)
        );
        CREATE TABLE acct_invoices (
            id {pk},
            msisdn TEXT NOT NULL REFERENCES acct_lines(msisdn),
            month TEXT NOT NULL,
            amount_cents {bigint} NOT NULL,
            email TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            UNIQUE (msisdn, month)
        );
        CREATE TABLE acct_emergency (
            id {pk},
            msisdn TEXT NOT NULL REFERENCES acct_lines(msisdn),
            started_at TEXT NOT NULL,
            until TEXT NOT NULL
        );
        CREATE INDEX acct_emergency_msisdn ON acct_emergency(msisdn)
        """,
    ),
]
