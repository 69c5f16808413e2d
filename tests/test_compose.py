"""docker-compose.yml stays correct although Docker does not run here: parsed and checked against
the settings the app really reads."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from counter.config import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand(value: str) -> str:
    """Compose's ${VAR:-default} interpolation with an empty environment."""
    return VAR.sub(lambda m: m.group(2) or "", value)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


def app_env() -> dict[str, str]:
    env = compose()["services"]["app"]["environment"]
    return {k: expand(str(v)) for k, v in env.items()}


def test_every_app_variable_is_a_real_setting_and_validates(tmp_path: Path) -> None:
    env = app_env()
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(env) <= known, f"unknown settings: {set(env) - known}"
    settings = load_settings(tmp_path / "none.toml", environ=env)
    assert settings.database_url.startswith("postgresql://")
    assert settings.redis_url.startswith("redis://")
    assert settings.turn_secret and settings.turn_urls


def test_what_scale_out_needs_is_set() -> None:
    env = app_env()
    for key in ("COUNTER_DATABASE_URL", "COUNTER_REDIS_URL", "COUNTER_TURN_SECRET", "COUNTER_TURN_URLS",
                "COUNTER_MODELS_DIR", "COUNTER_DATA_DIR"):
        assert env.get(key), f"{key} must be set for the app in docker-compose.yml"


def test_services_the_app_needs_exist_and_are_healthy_before_it_starts() -> None:
    data = compose()
    services = data["services"]
    env = app_env()
    for url_key in ("COUNTER_DATABASE_URL", "COUNTER_REDIS_URL"):
        host = urlsplit(env[url_key]).hostname
        assert host in services, f"{url_key} points at {host!r}, which is not a service"
        assert services["app"]["depends_on"][host]["condition"] == "service_healthy"
        assert "healthcheck" in services[host]
    assert "coturn" in services and "app" in services and "healthcheck" in services["app"]
    pg_env = {k: expand(str(v)) for k, v in services["postgres"]["environment"].items()}
    db = urlsplit(env["COUNTER_DATABASE_URL"])
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])


def test_turn_secret_is_shared_with_coturn() -> None:
    data = compose()
    args = [expand(a) for a in data["services"]["coturn"]["command"]]
    assert f"--static-auth-secret={app_env()['COUNTER_TURN_SECRET']}" in args
    assert "--use-auth-secret" in args


def test_named_volumes_are_declared() -> None:
    data = compose()
    declared = set(data["volumes"])
    for name, service in data["services"].items():
        for vol in service.get("volumes", []):
            source = vol.split(":", 1)[0]
            if not source.startswith(("/", ".", "$")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_dockerfile_installs_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for pkg in ("counter", "signaling", "identity", "web"):
        assert f"COPY {pkg} ./{pkg}" in text


def _ip_range(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    lo, _, hi = text.partition("-")
    return ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)


def test_turn_refuses_special_purpose_peers_and_has_quotas() -> None:
    """ASVS 17.1.1/17.1.2: the relay cannot reach internal addresses, and one user cannot exhaust it."""
    args = [expand(a) for a in compose()["services"]["coturn"]["command"]]
    denied = [_ip_range(a.split("=", 1)[1]) for a in args if a.startswith("--denied-peer-ip=")]
    for probe in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1",
                  "0.0.0.0", "::1", "fd00::1", "fe80::1"):
        addr = ipaddress.ip_address(probe)
        assert any(lo.version == addr.version and lo <= addr <= hi for lo, hi in denied), probe  # type: ignore[operator]
    public = ipaddress.ip_address("203.0.113.7")
    assert not any(lo.version == 4 and lo <= public <= hi for lo, hi in denied)  # type: ignore[operator]
    quotas = {
        a.split("=", 1)[0]: int(a.split("=", 1)[1]) for a in args if a.startswith(("--user-quota", "--total-quota"))
    }
    assert 0 < quotas["--user-quota"] <= 20 and quotas["--total-quota"] >= quotas["--user-quota"]


# --- two replicas behind the load balancer ------------------------------------------------------------

APPS = ("app", "app2")
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


def _haproxy_lines() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in HAPROXY_CFG.read_text().splitlines()]
    return [line for line in lines if line]


def test_two_app_replicas_share_one_configuration_and_the_keys() -> None:
    services = compose()["services"]
    envs = [{k: expand(str(v)) for k, v in services[name]["environment"].items()} for name in APPS]
    assert envs[0] == envs[1], "the replicas must run with the same settings"
    for key in ("COUNTER_MASTER_KEY_FILE", "COUNTER_AUDIT_KEY_FILE", "COUNTER_PSEUDONYM_KEY_FILE"):
        assert envs[0][key].startswith("/app/shared/"), f"{key}: one key for every replica"
    mounts = [{v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]} for name in APPS]
    assert mounts[0]["/app/shared"] == mounts[1]["/app/shared"], "the keys' volume is shared"
    assert mounts[0]["/app/certs"] == mounts[1]["/app/certs"], "one local CA and certificate for the site"
    assert mounts[0]["/data"] != mounts[1]["/data"], "each replica has its own data directory"
    # The second starts once the first made the keys and the certificate.
    assert services["app2"]["depends_on"]["app"]["condition"] == "service_healthy"
    assert "/app/shared" in (ROOT / "Dockerfile").read_text(), "the image must create the shared folder"


def test_only_the_balancer_is_published_and_it_waits_for_the_replicas() -> None:
    services = compose()["services"]
    port = app_env()["COUNTER_PORT"]
    for name in APPS:
        assert not services[name].get("ports"), f"{name} is reached through the balancer only"
    balancer = services["balancer"]
    assert balancer["image"].startswith("haproxy:")
    assert f"{port}:{port}" in balancer["ports"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    for name in APPS:
        assert balancer["depends_on"][name]["condition"] == "service_healthy"


def test_haproxy_balances_round_robin_without_stickiness_over_both_replicas() -> None:
    lines = _haproxy_lines()
    port = app_env()["COUNTER_PORT"]
    assert f"bind :{port}" in lines
    assert "balance roundrobin" in lines
    servers = {line.split()[1]: line.split()[2] for line in lines if line.startswith("server ")}
    assert servers == {name: f"{name}:{port}" for name in APPS}
    assert not [line for line in lines if line.split()[0] in ("cookie", "stick", "stick-table", "hash-type")]
    timeouts = {line.split()[1]: line.split()[2] for line in lines if line.startswith("timeout ")}
    for kind in ("client", "server", "tunnel"):
        assert timeouts[kind] in ("1h", "3600s"), f"timeout {kind}: WebSockets of a long call must stay open"


def test_haproxy_accepts_its_configuration() -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (make test-deps installs it)")
    done = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_turn_on_udp_tcp_3478_and_tls_443() -> None:
    """Phones behind networks that let only HTTPS through reach TURN over TLS on 443: the app hands out
    UDP and TCP on 3478 and TLS on 443, and coturn listens there with a certificate it can read."""
    urls = app_env()["COUNTER_TURN_URLS"].split(",")
    kinds = {(u.split(":", 1)[0], urlsplit("x://" + u.split(":", 1)[1]).port, u.rsplit("=", 1)[-1]) for u in urls}
    assert kinds == {("turn", 3478, "udp"), ("turn", 3478, "tcp"), ("turns", 443, "tcp")}, kinds
    coturn = compose()["services"]["coturn"]
    args = [expand(a) for a in coturn["command"]]
    assert "--listening-port=3478" in args and "--tls-listening-port=443" in args
    mounts = {v.split(":")[1]: v.split(":")[0] for v in coturn["volumes"]}
    cert = next(a.split("=", 1)[1] for a in args if a.startswith("--cert="))
    key = next(a.split("=", 1)[1] for a in args if a.startswith("--pkey="))
    for path in (cert, key):
        assert any(path.startswith(m + "/") for m in mounts), f"{path} is not in a mounted volume"
    app_certs = {v.split(":")[1]: v.split(":")[0] for v in compose()["services"]["app"]["volumes"]}["/app/certs"]
    assert mounts["/certs"] == app_certs, "coturn reads the app's server certificate"
    assert coturn["depends_on"]["app"]["condition"] == "service_healthy", "the certificate exists first"
    assert "NET_BIND_SERVICE" in coturn["cap_add"], "binding 443 needs the capability"
