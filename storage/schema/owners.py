"""Call state that must outlive the node that owns the call: recording consent and recording parts.

``call_consents``: the customer's answer to "this call is recorded", read by whichever node's witness
takes the call's legs.  ``recording_parts``: which node wrote each recording, and the part it
continues (a call whose owner died goes on in a next part, linked to the previous one).
"""

from storage.migrate import Migration

COMPONENT = "owners"
ORDER = 55
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE call_consents (
            call_id TEXT PRIMARY KEY,
            accepted_at {float} NOT NULL
        );
        CREATE TABLE recording_parts (
            recording_id TEXT PRIMARY KEY,
            call_id TEXT NOT NULL,
            node TEXT NOT NULL,
            part INTEGER NOT NULL,
            previous_id TEXT
        );
        CREATE INDEX recording_parts_call ON recording_parts(call_id)
        """,
    ),
]
