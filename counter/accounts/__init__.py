"""The account system behind the counter: an interface and a built-in implementation on storage."""

from counter.accounts.builtin import StorageAccountSystem, check_password, hash_password
from counter.accounts.model import (
    ADDONS,
    PLANS,
    Account,
    AccountChange,
    AccountError,
    AccountNotFound,
    AccountSystem,
    Bill,
    Holder,
    Invoice,
    LineStatus,
    Payment,
    Sim,
)

__all__ = [
    "ADDONS",
    "PLANS",
    "Account",
    "AccountChange",
    "AccountError",
    "AccountNotFound",
    "AccountSystem",
    "Bill",
    "Holder",
    "Invoice",
    "LineStatus",
    "Payment",
    "Sim",
    "StorageAccountSystem",
    "check_password",
    "hash_password",
]
