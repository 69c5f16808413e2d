"""One typed settings object: defaults < ``counter.toml`` < environment (``COUNTER_*``).

Every key can be set in ``counter.toml`` (``database_url = "..."``) or in the environment
(``COUNTER_DATABASE_URL=...``); lists in the environment are comma-separated.  Values are validated
at start; :class:`ConfigError` names the key and the fix in one line.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from signaling.hold import HoldOptions
from signaling.options import SignalingOptions

ENV_PREFIX = "COUNTER_"


class ConfigError(Exception):
    """A configuration value is wrong.  ``str(err)`` is one line: the key, the problem, the fix."""


class Settings(BaseModel):
    """Everything the service can be configured with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("0.0.0.0", description="address to listen on; 0.0.0.0 lets phones on the LAN in")
    port: int = Field(8443, ge=1, le=65535, description="HTTPS port")
    tls: bool = Field(True, description="serve HTTPS (browsers give camera access only to secure pages)")
    cert_dir: Path = Field(Path("certs"), description="where the local CA and server certificate live")
    cert_names: list[str] = Field(default_factory=list, description="extra DNS names for the certificate")
    data_dir: Path = Field(Path("data"), description="SQLite database, keys and encrypted evidence")
    recordings_dir: Path | None = Field(
        None, description="call recordings (default: DATA_DIR/recordings); mount one folder on every node to share them"
    )
    evidence_dir: Path | None = Field(
        None, description="encrypted face/ID evidence (default: DATA_DIR/evidence); one folder on every node shares it"
    )
    pseudonym_key_file: Path | None = Field(
        None, description="HMAC key pseudonymising account numbers in the audit log"
        " (default: DATA_DIR/audit_pseudonym.key); every node of an installation needs the same one"
    )
    database_url: str = Field("", description="sqlite:///path.db (default: DATA_DIR/counter.db) or postgresql://")
    redis_url: str = Field("", description="redis://host:6379/0 to share queue and routing between nodes")
    redis_max_connections: int = Field(
        64, ge=2, le=10000,
        description="most Redis connections one node opens; beyond, a command waits for a free one",
    )
    redis_pool_timeout_s: float = Field(
        5.0, gt=0, le=120,
        description="how long a Redis command waits for a free connection before the node counts Redis as down",
    )
    node_id: str = Field("", description="this process's name on the bus (default: host-pid)")
    internal_url: str = Field(
        "", description="where other nodes reach this one, e.g. http://10.0.0.5:8443 (default: scheme://host:port)"
    )
    models_dir: Path | None = Field(None, description="folder holding the ONNX model files")
    onnx_providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime execution providers, in order of preference",
    )
    onnx_threads: int = Field(0, ge=0, le=256, description="intra-op threads per model (0: cores, max 4)")
    master_key_file: Path | None = Field(
        None, description="AES key wrapping evidence keys (default: DATA_DIR/master.key)"
    )
    audit_key_file: Path | None = Field(
        None, description="Ed25519 key signing audit checkpoints (default: DATA_DIR/audit_ed25519.key)"
    )
    audit_origin: str = Field(
        "remote-counter/audit", pattern=r"^[^\s+]{1,200}$",
        description="the audit log's name in its checkpoints (C2SP origin: a schema-less URL, same on every node)",
    )
    audit_witnesses: list[str] = Field(
        default_factory=list,
        description="witnesses asked to cosign audit checkpoints: URL=<witness verifier key>, comma-separated",
    )
    audit_witness_quorum: int = Field(0, ge=0, le=32, description="cosignatures a checkpoint needs to be served")
    audit_purge_interval_s: float = Field(
        3600.0, ge=0, description="how often personal data past evidence_retention_days is purged (0: never)"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="load balancers (addresses or networks, comma-separated) whose X-Forwarded-For is believed",
    )
    stun_urls: list[str] = Field(default_factory=list, description="STUN servers handed to browsers")
    turn_urls: list[str] = Field(default_factory=list, description="TURN servers handed to browsers")
    turn_secret: str = Field("", description="coturn static-auth-secret for short-lived TURN credentials")
    turn_ttl_s: int = Field(600, ge=60, le=86400, description="lifetime of TURN credentials")
    wrap_up_s: int = Field(
        60, ge=0, le=3600,
        description="after-call work: seconds an agent stays in wrap-up before being available by itself (0: none)",
    )
    care_age: int = Field(
        65, ge=50, le=120,
        description="holders this old or older who come by a care link (see docs/API.md) join the care lane",
    )
    care_link_ttl_s: int = Field(7 * 86400, ge=60, le=30 * 86400, description="how long a care link stays valid")
    allowed_origins: list[str] = Field(default_factory=list, description="extra Origins allowed on WebSocket upgrade")
    evidence_retention_days: int = Field(180, ge=1, description="how long face/ID images are kept")
    recording_retention_days: int = Field(180, ge=1, description="how long call recordings are kept")
    require_recording: bool = Field(
        True, description="refuse state changes in a call the witness has not recorded for recording_grace_s"
    )
    recording_grace_s: float = Field(
        20.0, ge=0, le=3600, description="how long a connected call may go unrecorded before changes are refused"
    )
    witness_decode: Literal["on_demand", "always"] = Field(
        "on_demand",
        description="witness video decoded only for identity checks (on_demand), or every frame (always: "
        "the former witness, for comparison; costs several times the CPU per recorded call)",
    )
    witness_drain_ms: int = Field(
        100, ge=0, le=200,
        description="the witness reads its media sockets in batches this often (ms; 0: each datagram as it "
        "lands, the former witness): fewer wake-ups of the event loop per recorded call",
    )
    event_loop: Literal["asyncio", "auto", "uvloop"] = Field(
        "asyncio",
        description="counter serve's event loop: asyncio's own; auto: uvloop when installed (pip install "
        "'.[fast]'), else asyncio's; uvloop: required (docs/PERFORMANCE.md, Witness)",
    )
    demo_data: bool = Field(True, description="load demo staff and accounts on first start")
    demo_faces_dir: Path | None = Field(None, description="real-name photos for the demo accounts")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest HTTP body accepted")
    audit_security_events: bool = Field(
        False, description="also append staff logins, logouts and refused authorization to the audit log"
    )
    witness_segment_s: float = Field(10.0, ge=0.5, le=600, description="length of one recording segment")
    signaling: dict[str, Any] = Field(
        default_factory=dict,
        description="signaling timings and limits by name, e.g. offer_timeout_s (see signaling/options.py);"
        " in the environment COUNTER_SIGNALING_<NAME>",
    )
    hold: dict[str, Any] = Field(
        default_factory=dict,
        description="kept places in the queue by name, e.g. return_s (see signaling/hold.py HoldOptions);"
        " in the environment COUNTER_HOLD_<NAME>",
    )
    ratelimit: dict[str, str] = Field(
        default_factory=dict,
        description="per-route rate limits: rule = 'ip_rate/ip_burst[,session_rate/session_burst]' or 'off'"
        " (see web/ratelimit.py); in the environment COUNTER_RATELIMIT_<RULE>",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgres:")):
            scheme = value.split(":", 1)[0] if ":" in value else value
            raise ValueError(f"unsupported scheme {scheme!r}; use sqlite:/// or postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:6379/0 (or leave empty for the in-process bus)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not an address or network (10.0.0.5, 10.0.0.0/24)") from None
        return value

    @field_validator("signaling")
    @classmethod
    def _signaling_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        SignalingOptions.from_values(value)  # a bad name or value fails at start, naming it
        return value

    @field_validator("hold")
    @classmethod
    def _hold_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        HoldOptions.from_values(value)  # a bad name or value fails at start, naming it
        return value

    @field_validator("turn_urls", "stun_urls")
    @classmethod
    def _ice_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"{url!r} is not a stun:/turn: URL")
        return value

    # Derived values -------------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'counter.db'}"

    @property
    def effective_node_id(self) -> str:
        """This process's name on the signaling bus."""
        return self.node_id or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    def check_paths(self) -> None:
        """At start, on the machine that serves: folders that must exist do (:class:`ConfigError` if not)."""
        if self.models_dir is not None and not self.models_dir.is_dir():
            raise ConfigError(f"models_dir: {self.models_dir} is not a folder; point it (COUNTER_MODELS_DIR) at"
                              " the folder holding the ONNX model files")

    @property
    def signaling_options(self) -> SignalingOptions:
        """The signaling service's timings and limits (``wrap_up_s`` from :attr:`wrap_up_s`)."""
        return SignalingOptions.from_values({**self.signaling, "wrap_up_s": float(self.wrap_up_s)})

    @property
    def effective_recordings_dir(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def effective_evidence_dir(self) -> Path:
        return self.evidence_dir or self.data_dir / "evidence"

    @property
    def effective_audit_key_file(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit_ed25519.key"

    @property
    def effective_demo_faces_dir(self) -> Path | None:
        """Demo real-name photos: the configured folder (none: the demo accounts have no photo)."""
        return self.demo_faces_dir


def _env_key(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        annotation = str(field.annotation)
        if annotation.startswith("dict"):  # a group: COUNTER_<NAME>_<KEY>=value
            prefix = _env_key(name) + "_"
            group = {k.removeprefix(prefix).lower(): v for k, v in environ.items() if k.startswith(prefix)}
            if group:
                values[name] = group
            continue
        raw = environ.get(_env_key(name))
        if raw is None:
            continue
        if "list" in annotation:
            values[name] = [item.strip() for item in raw.split(",") if item.strip()]
        else:
            values[name] = raw
    return values


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings: defaults < ``counter.toml`` (or ``COUNTER_CONFIG``) < environment < overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or Path(environ.get("COUNTER_CONFIG", "counter.toml"))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file or remove it") from exc
        values.update(data)
        sources.update({k: f"{path}: {k}" for k in data})
    env_values = _from_env(environ)
    values.update(env_values)
    sources.update({k: _env_key(k) for k in env_values})
    values.update(overrides)
    sources.update({k: k for k in overrides})
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        where = sources.get(key, key)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting; see `counter config` for the known keys"
        else:
            field = Settings.model_fields.get(key)
            if err["type"] != "value_error" and field is not None and field.description:
                message = f"{message} ({field.description})"
        raise ConfigError(f"{where}: {message}") from exc
