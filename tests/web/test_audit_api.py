"""The auditor HTTP API behind the whole app: roles, audited record views, proofs, verify-now."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from counter.app import build_app
from counter.appkeys import DB
from counter.audit import AUDIT, AuditEvent
from counter.audit.entry import canonical
from counter.audit.keys import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    Signer,
    checkpoint_valid,
    load_public_key,
    note_verifier_key,
)
from counter.audit.merkle import hash_leaf, verify_consistency, verify_inclusion
from counter.audit.witness import cosign
from counter.config import Settings
from tests.conftest import login

Client = TestClient[Any, Any]


async def seed(client: Client) -> int:
    log = client.app[AUDIT]  # type: ignore[index]
    for i in range(5):
        await log.append(AuditEvent("transaction.puk.query", "agent", "agent1", account="13811112222",
                                    details={"i": i}))
    receipt = await log.append(AuditEvent(
        "identity.id_card", "agent", "agent2", account="13833334444",
        personal={"name": "赵六", "id_number": "110101199003071234"}, outcome="refused", reason="expired card",
    ))
    await log.flush()
    return receipt.seq


async def test_public_key_and_checkpoint_are_public_and_verify(app_client: Client) -> None:
    await seed(app_client)
    key = await (await app_client.get("/.well-known/audit-key")).json()
    assert key["algorithm"] == "Ed25519"
    public = load_public_key(key["public_key_pem"])
    assert load_public_key(key["public_key_hex"]) == public
    cp_json = await (await app_client.get("/api/audit/checkpoint/latest")).json()
    cp_json.pop("note")
    assert checkpoint_valid(Checkpoint(**cp_json), public)


async def test_roles_are_enforced(app_client: Client) -> None:
    seq = await seed(app_client)
    assert (await app_client.get("/api/audit/entries")).status == 401
    await login(app_client, "agent1", "agent1-demo")
    assert (await app_client.get("/api/audit/entries")).status == 403
    await login(app_client, "super1", "super1-demo")
    resp = await app_client.get("/api/audit/entries", params={"outcome": "refused"})
    assert resp.status == 200
    entries = (await resp.json())["entries"]
    assert [e["seq"] for e in entries] == [seq] and "赵六" not in str(entries)
    assert (await app_client.get(f"/api/audit/entries/{seq}", params={"personal": "1"})).status == 403
    headers = await login(app_client, "super1", "super1-demo")
    assert (await app_client.post("/api/audit/verify", headers=headers)).status == 403


async def test_viewing_personal_data_is_itself_audited_and_visible(app_client: Client) -> None:
    seq = await seed(app_client)
    await login(app_client, "audit1", "audit1-demo")
    plain = await (await app_client.get(f"/api/audit/entries/{seq}")).json()
    assert "personal" not in plain and plain["personal_stored"]
    opened = await (await app_client.get(f"/api/audit/entries/{seq}", params={"personal": "1"})).json()
    assert opened["personal"] == {"name": "赵六", "id_number": "110101199003071234"}
    views = await (await app_client.get("/api/audit/entries", params={"action": "auditor.view_record"})).json()
    assert [(v["entry"]["actor_id"], v["entry"]["details"]["seq"]) for v in views["entries"]] == [("audit1", seq)]
    assert views["entries"][0]["seq"] == opened["view_logged_as"]
    by_account = await (await app_client.get("/api/audit/entries", params={"account": "13811112222"})).json()
    assert len(by_account["entries"]) == 5
    searches = await (await app_client.get("/api/audit/entries", params={"action": "auditor.search"})).json()
    assert len(searches["entries"]) == 1 and "13811112222" not in str(searches)


async def test_proofs_and_verify_now(app_client: Client) -> None:
    await seed(app_client)
    log = app_client.app[AUDIT]  # type: ignore[index]
    old = log.latest_checkpoint()
    await log.append(AuditEvent("call.joined", "customer", "session:abc"))
    new = await log.flush()
    headers = await login(app_client, "audit1", "audit1-demo")
    entry = await (await app_client.get("/api/audit/entries/2")).json()
    proof = await (await app_client.get("/api/audit/proof/inclusion", params={"seq": "2"})).json()
    assert proof["tree_size"] == new.tree_size and proof["checkpoint"]["root_hash"] == new.root_hash
    leaf = hash_leaf(canonical(entry["entry"]))
    verify_inclusion(2, new.tree_size, leaf, [bytes.fromhex(p) for p in proof["path"]], bytes.fromhex(new.root_hash))
    cons = await (await app_client.get("/api/audit/proof/consistency",
                                       params={"from": str(old.tree_size), "to": str(new.tree_size)})).json()
    verify_consistency(old.tree_size, new.tree_size, [bytes.fromhex(p) for p in cons["path"]],
                       bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash))
    assert (await app_client.get("/api/audit/proof/inclusion", params={"seq": "x"})).status == 400
    report = await (await app_client.post("/api/audit/verify", headers=headers)).json()
    assert report["ok"] and report["verified_size"] == new.tree_size
    bundle = await (await app_client.get("/api/audit/export", params={"from": "0", "to": "3"})).json()
    assert [e["seq"] for e in bundle["entries"]] == [0, 1, 2, 3]


async def test_verify_now_checks_the_checkpoints_an_auditor_kept(app_client: Client) -> None:
    await seed(app_client)
    log = app_client.app[AUDIT]  # type: ignore[index]
    cp = await log.flush()
    headers = await login(app_client, "audit1", "audit1-demo")
    served = await (await app_client.get("/checkpoint")).text()
    report = await (await app_client.post("/api/audit/verify", headers=headers,
                                          json={"checkpoints": [served]})).json()
    assert report["ok"], report
    # A checkpoint the auditor kept from before the database was rolled back (signed by the log key).
    ahead = log.signer.sign(cp.tree_size + 5, bytes(32), cp.time).signed_note(log.signer.public_key)
    report = await (await app_client.post("/api/audit/verify", headers=headers,
                                          json={"checkpoints": [ahead]})).json()
    assert not report["ok"] and "rollback" in {p["kind"] for p in report["problems"]}, report
    forged = served.replace(f"\n{cp.tree_size}\n", f"\n{cp.tree_size + 1}\n", 1)
    resp = await app_client.post("/api/audit/verify", headers=headers, json={"checkpoints": [forged]})
    assert resp.status == 400


async def test_verify_now_requires_the_configured_witness_quorum(settings: Settings) -> None:
    witness = Signer.generate("witness.example/w1")
    vkey = note_verifier_key(witness.origin, witness.public_key, ALG_COSIGNATURE_V1)
    configured = settings.model_copy(update={"audit_witnesses": [f"http://127.0.0.1:9 {vkey}"],
                                             "audit_witness_quorum": 1})
    client: Client = TestClient(TestServer(await build_app(configured)))  # the witness is unreachable
    await client.start_server()
    try:
        await seed(client)
        headers = await login(client, "audit1", "audit1-demo")
        report = await (await client.post("/api/audit/verify", headers=headers)).json()
        assert not report["ok"] and report["first_problem"]["kind"] == "witness_quorum", report
        # the witness catches up and cosigns a checkpoint
        cp = client.app[AUDIT].latest_checkpoint()  # type: ignore[index]
        await client.app[DB].execute(  # type: ignore[index]
            "INSERT INTO audit_cosignatures (tree_size, witness, line) VALUES ($1, $2, $3)",
            cp.tree_size, witness.origin, cosign(witness, cp.note().decode(), 1_700_000_000))
        report = await (await client.post("/api/audit/verify", headers=headers)).json()
        assert report["ok"] and report["witnessed_size"] == cp.tree_size, report
    finally:
        await client.close()
