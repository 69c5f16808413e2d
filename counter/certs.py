"""A local certificate authority and a server certificate, so phones on the LAN get HTTPS.

Browsers grant camera access only to secure pages; install ``certs/ca.crt`` on a phone (or accept
the warning once) to use the service from it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from storage.timeutil import utcnow


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, cert_dir: Path) -> CertPaths:
        return cls(cert_dir / "ca.crt", cert_dir / "ca.key", cert_dir / "server.crt", cert_dir / "server.key")

    def exist(self) -> bool:
        return self.cert.exists() and self.key.exists()


def lan_addresses() -> list[str]:
    """This machine's IPv4/IPv6 addresses other than loopback, best effort (never sends a packet)."""
    found: set[str] = set()
    if shutil.which("ip"):
        try:
            out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, timeout=5, check=False)
            for link in json.loads(out.stdout or "[]"):
                for info in link.get("addr_info", []):
                    found.add(str(info.get("local", "")))
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    result = []
    for text in found:
        try:
            addr = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            continue
        if not (addr.is_loopback or addr.is_link_local or addr.is_unspecified):
            result.append(str(addr))
    return sorted(result)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: expected an EC private key")
    return key


def create_certs(cert_dir: Path, names: list[str] | None = None, *, with_lan: bool = True) -> CertPaths:
    """Create (or reuse) the CA in ``cert_dir`` and issue a fresh server certificate."""
    paths = CertPaths.in_dir(cert_dir)
    cert_dir.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    if paths.ca_cert.exists() and paths.ca_key.exists():
        ca_key = _load_key(paths.ca_key)
        ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Remote Counter local CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(paths.ca_key, ca_key)
        paths.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    dns = ["localhost", socket.gethostname(), *(names or [])]
    ips = ["127.0.0.1", "::1", *(lan_addresses() if with_lan else [])]
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns) if n]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Remote Counter")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        # Apple platforms refuse server certificates valid for more than 825 days.
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths.key, key)
    paths.cert.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    return paths


def ensure_certs(cert_dir: Path, names: list[str] | None = None) -> CertPaths:
    """The certificate paths, creating them on first use."""
    paths = CertPaths.in_dir(cert_dir)
    return paths if paths.exist() else create_certs(cert_dir, names)
