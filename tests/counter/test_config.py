"""Settings: defaults < counter.toml < environment, with one-line errors naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from counter.config import ConfigError, load_settings
from signaling.hold import HoldOptions


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "absent.toml", environ={})
    assert s.port == 8443 and s.host == "0.0.0.0" and s.tls
    assert s.effective_database_url == "sqlite:///data/counter.db"


def test_env_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "counter.toml"
    cfg.write_text('port = 9000\nstun_urls = ["stun:a:3478"]\n', encoding="utf-8")
    assert load_settings(cfg, environ={}).port == 9000
    s = load_settings(cfg, environ={"COUNTER_PORT": "9100", "COUNTER_TURN_URLS": "turn:x:3478, turn:y:3478"})
    assert s.port == 9100
    assert s.stun_urls == ["stun:a:3478"]
    assert s.turn_urls == ["turn:x:3478", "turn:y:3478"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"COUNTER_DATABASE_URL": "mysql://h/db"},
         "COUNTER_DATABASE_URL: unsupported scheme 'mysql'; use sqlite:/// or postgresql://"),
        ({"COUNTER_PORT": "eighty"}, "COUNTER_PORT: Input should be a valid integer"),
        ({"COUNTER_PORT": "70000"}, "COUNTER_PORT: Input should be less than or equal to 65535"),
        ({"COUNTER_REDIS_URL": "http://x"}, "COUNTER_REDIS_URL: use redis://"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "absent.toml", environ=env)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    cfg = tmp_path / "counter.toml"
    cfg.write_text("prot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"counter.toml: prot: unknown setting"):
        load_settings(cfg, environ={})


def test_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "counter.cli", "serve"],
        env={"COUNTER_DATABASE_URL": "mysql://h/db", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "COUNTER_DATABASE_URL" in lines[0] and "postgresql://" in lines[0]


def test_shared_folders_and_keys_for_several_nodes(tmp_path: Path) -> None:
    """What every node of an installation must share can be named; by default it is in the data dir."""
    from counter.audit import pseudonym_key_file

    alone = load_settings(tmp_path / "none.toml", environ={"COUNTER_DATA_DIR": str(tmp_path / "d")})
    assert alone.effective_recordings_dir == tmp_path / "d" / "recordings"
    assert alone.effective_evidence_dir == tmp_path / "d" / "evidence"
    assert pseudonym_key_file(alone) == tmp_path / "d" / "audit_pseudonym.key"
    shared = load_settings(tmp_path / "none.toml", environ={
        "COUNTER_RECORDINGS_DIR": "/mnt/rec", "COUNTER_EVIDENCE_DIR": "/mnt/ev",
        "COUNTER_PSEUDONYM_KEY_FILE": "/etc/counter/pseudonym.key", "COUNTER_INTERNAL_URL": "http://10.0.0.5:8443"})
    assert (shared.effective_recordings_dir, shared.effective_evidence_dir) == (Path("/mnt/rec"), Path("/mnt/ev"))
    assert pseudonym_key_file(shared) == Path("/etc/counter/pseudonym.key")
    assert shared.internal_url == "http://10.0.0.5:8443"


def test_tuning_groups_and_models_folder_are_settings(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "none.toml", environ={
        "COUNTER_SIGNALING_OFFER_TIMEOUT_S": "5", "COUNTER_RATELIMIT_LOGIN": "off",
        "COUNTER_AUDIT_SECURITY_EVENTS": "true", "COUNTER_WITNESS_SEGMENT_S": "2", "COUNTER_WRAP_UP_S": "7",
    })
    assert s.signaling_options.offer_timeout_s == 5.0 and s.signaling_options.wrap_up_s == 7.0
    assert s.ratelimit == {"login": "off"} and s.audit_security_events and s.witness_segment_s == 2.0
    with pytest.raises(ConfigError, match="COUNTER_SIGNALING_OFFER_TIMEOUT_S='soon': expected a float"):
        load_settings(tmp_path / "none.toml", environ={"COUNTER_SIGNALING_OFFER_TIMEOUT_S": "soon"})
    with pytest.raises(ConfigError, match="COUNTER_SIGNALING_OFER_TIMEOUT_S: unknown"):
        load_settings(tmp_path / "none.toml", environ={"COUNTER_SIGNALING_OFER_TIMEOUT_S": "1"})
    held = load_settings(tmp_path / "none.toml", environ={"COUNTER_HOLD_RETURN_S": "3"})
    assert HoldOptions.from_values(held.hold).return_s == 3.0
    with pytest.raises(ConfigError, match="COUNTER_HOLD_RETRUN_S: unknown"):
        load_settings(tmp_path / "none.toml", environ={"COUNTER_HOLD_RETRUN_S": "3"})
    with pytest.raises(ConfigError, match="COUNTER_HOLD_RETURN_S='soon': expected a number"):
        load_settings(tmp_path / "none.toml", environ={"COUNTER_HOLD_RETURN_S": "soon"})
    absent = load_settings(tmp_path / "none.toml", environ={"COUNTER_MODELS_DIR": str(tmp_path / "absent")})
    with pytest.raises(ConfigError, match=r"models_dir: .* is not a folder"):
        absent.check_paths()  # at start (counter.app.build_app), on the machine that serves
