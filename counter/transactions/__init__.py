"""Counter transactions: the declarative catalog (:data:`CATALOG`) and the execution engine."""

from counter.transactions import catalog as _catalog  # noqa: F401  (registers every entry)
from counter.transactions.spec import CATALOG, Refused, TxContext, TxInput, TxSpec, transaction

__all__ = ["CATALOG", "Refused", "TxContext", "TxInput", "TxSpec", "transaction"]
