"""Demo data loaded on first start: staff logins (and, through hooks, accounts)."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from counter.config import Settings
from counter.users import Role, UserStore
from storage import Database

log = logging.getLogger("counter.demo")


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: Role
    display_name: str
    skills: tuple[str, ...] = ()


DEMO_STAFF = [
    DemoLogin("agent1", "agent1-demo", Role.AGENT, "王坐席 Agent Wang", ("general", "care")),
    DemoLogin("agent2", "agent2-demo", Role.AGENT, "李坐席 Agent Li", ("general",)),
    DemoLogin("super1", "super1-demo", Role.SUPERVISOR, "赵班长 Supervisor Zhao", ("general", "care")),
    DemoLogin("audit1", "audit1-demo", Role.AUDITOR, "钱审计 Auditor Qian"),
]

#: Other components' demo loaders, ``"module:function"``; each is ``async def f(db, settings) -> None``
#: and runs only when the database is new.
DEMO_HOOKS: list[str] = [
    "counter.accounts.demo:load_demo_accounts",
]


async def load_demo(db: Database, settings: Settings) -> bool:
    """Load the demo data if the database has no users yet; return whether it did."""
    if await db.fetchval("SELECT COUNT(*) FROM users"):
        return False
    users = UserStore(db)
    for login in DEMO_STAFF:
        await users.create(login.username, login.password, login.role, login.display_name, list(login.skills))
    for ref in DEMO_HOOKS:
        module, func = ref.split(":")
        await getattr(importlib.import_module(module), func)(db, settings)
    log.info("demo data loaded")
    return True
