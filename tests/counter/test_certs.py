"""`counter certs`: a local CA and a server certificate with the right names and private keys."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from counter.certs import create_certs, ensure_certs
from counter.cli import main


def test_certs_have_sans_and_private_keys(tmp_path: Path) -> None:
    paths = create_certs(tmp_path / "certs", ["counter.example"])
    cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "counter.example"} <= set(san.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    cert.verify_directly_issued_by(ca)
    for key in (paths.key, paths.ca_key):
        assert key.stat().st_mode & 0o777 == 0o600


def test_ca_is_kept_and_server_cert_reissued(tmp_path: Path) -> None:
    first = create_certs(tmp_path, with_lan=False)
    ca_before = first.ca_cert.read_bytes()
    cert_before = first.cert.read_bytes()
    second = create_certs(tmp_path, with_lan=False)
    assert second.ca_cert.read_bytes() == ca_before
    assert second.cert.read_bytes() != cert_before
    assert ensure_certs(tmp_path).cert.read_bytes() == second.cert.read_bytes()


def test_cli_certs(tmp_path: Path, capsys: object, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COUNTER_CERT_DIR", str(tmp_path / "c"))
    assert main(["certs", "--name", "desk.local"]) == 0
    assert (tmp_path / "c" / "server.crt").exists()


def test_gitignore_keeps_private_keys_out() -> None:
    ignore = (Path(__file__).resolve().parents[2] / ".gitignore").read_text()
    assert "certs/*" in ignore
