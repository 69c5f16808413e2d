"""The catalog's declaration: entries.toml and the handlers registered for it agree, and a
transaction's words and flags are declared, not guessed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from counter.transactions import CATALOG
from counter.transactions.catalog import NoInput, SuspendIn
from counter.transactions.outcome import SHOWN_TO_CUSTOMER, worded_result
from counter.transactions.spec import ENTRIES, Entry, TxContext, transaction


async def _handler(ctx: TxContext, inputs: Any) -> dict[str, Any]:
    return {}


def test_every_entry_has_its_handler_in_the_files_order() -> None:
    assert list(CATALOG) == list(ENTRIES)
    for code, spec in CATALOG.items():
        assert spec.code == code and spec.title_zh == ENTRIES[code].title_zh


def test_changing_state_is_declared() -> None:
    assert CATALOG["line.suspend"].changes_state and not CATALOG["balance.query"].changes_state
    assert all(spec.effect for spec in CATALOG.values() if spec.changes_state)
    with pytest.raises(ValidationError, match="says what it changes"):
        Entry.model_validate({"title_zh": "x", "title_en": "x", "level": "A1", "changes_state": True})


def test_registration_refuses_what_the_table_does_not_declare() -> None:
    with pytest.raises(ValueError, match="no entry"):
        transaction("no.such", NoInput)(_handler)
    with pytest.raises(ValueError, match="registered twice"):
        transaction("balance.query", NoInput)(_handler)
    assert "line.suspend" in CATALOG  # the table marks "reason" personal: SuspendIn has it
    assert "reason" in SuspendIn.model_fields


def test_secret_results_are_withheld_from_staff_words() -> None:
    worded = worded_result(CATALOG["puk.query"], {"puk": "12345678", "iccid_tail": "0042"})
    assert worded.secrets == {"puk": "12345678"} and "puk" not in worded.data
    assert "12345678" not in worded.text_zh + worded.text_en + worded.receipt_zh
    assert SHOWN_TO_CUSTOMER[1] in worded.text_en and "12345678" in worded.customer_text_en
    assert "_customer" in worded.record() and worded.record()["data"] == {"iccid_tail": "0042"}
