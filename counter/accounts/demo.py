"""Demo accounts: five holders with lines, SIMs, bills, payments, add-ons and points.

Real-name photos come from ``settings.effective_demo_faces_dir`` when present.  王秀英 (born 1951)
is the 65+ holder for the care lane.  Every demo service password is ``246810``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from counter.accounts.builtin import StorageAccountSystem
from counter.accounts.model import LineStatus
from counter.config import Settings
from counter.sealed import Sealer
from identity.idcard import check_digit
from storage import Database

log = logging.getLogger("counter.accounts.demo")


#: msisdn, name, birth date, photo (relative to the faces folder), plan, status, balance, points, add-ons
DEMO_ACCOUNTS = [
    (
        "13800138000",
        "妮可·基德曼",
        "1967-06-20",
        "faceonnx/nicole_kidman/nicole_0.jpg",
        "5g-59",
        LineStatus.ACTIVE,
        8650,
        5200,
        ("caller-id", "video-vip"),
    ),
    (
        "13900139000",
        "奥巴马",
        "1961-08-04",
        "face_recognition/obama/obama.jpg",
        "5g-129",
        LineStatus.ACTIVE,
        23000,
        12800,
        ("caller-id",),
    ),
    (
        "13700137000",
        "王秀英",
        "1951-03-07",
        "face_recognition/biden/biden.jpg",
        "silver-39",
        LineStatus.SUSPENDED_ARREARS,
        -4210,
        900,
        ("family-call",),
    ),
    (
        "13600136000",
        "布拉德·皮特",
        "1963-12-18",
        "faceonnx/brad_pitt/brad_1.jpg",
        "basic-19",
        LineStatus.SUSPENDED,
        1200,
        300,
        (),
    ),
    (
        "13500135000",
        "莎拉·保罗森",
        "1974-12-17",
        "faceonnx/sarah_paulson/sarah_0.jpg",
        "5g-59",
        LineStatus.ACTIVE,
        500,
        2500,
        ("data-10g",),
    ),
]


def demo_id_number(birth_date: str, serial: str) -> str:
    body = f"110101{birth_date.replace('-', '')}{serial}"
    return body + check_digit(body)


def _photo(faces: Path | None, relative: str) -> bytes | None:
    if faces is None:
        return None
    path = faces / relative
    if not path.is_file():
        candidates = sorted(path.parent.glob("*.jp*g")) if path.parent.is_dir() else []
        path = candidates[0] if candidates else path
    return path.read_bytes() if path.is_file() else None


async def load_demo_accounts(db: Database, settings: Settings) -> None:
    """The DEMO_HOOKS entry: create the demo accounts (only on a new database)."""
    accounts = StorageAccountSystem(db, Sealer(settings.effective_master_key_file))
    faces = settings.effective_demo_faces_dir
    for i, (msisdn, name, birth, photo, plan, status, balance, points, addons) in enumerate(DEMO_ACCOUNTS):
        await accounts.create(
            msisdn=msisdn,
            name=name,
            id_number=demo_id_number(birth, f"{i + 1:02d}2"),
            birth_date=birth,
            id_expires="2036-01-01",
            photo=await asyncio.to_thread(_photo, faces, photo),
            password="246810",
            plan=plan,
            status=status,
            balance_cents=balance,
            credit_limit_cents=10000,
            points=points,
            contact_address="北京市东城区示例路1号",
            contact_email=f"demo{i + 1}@example.cn",
            addons=addons,
        )
        for month, amount, paid in (("2026-09", 5900, True), ("2026-10", 6120, balance >= 0)):
            await accounts.add_bill(msisdn, month, amount, paid, [{"item": plan, "cents": amount}])
        await accounts.add_payment(msisdn, "2026-10-05T08:00:00+00:00", 5900, "wechat")
    log.info("demo accounts: %s", ", ".join(a[0] for a in DEMO_ACCOUNTS))
