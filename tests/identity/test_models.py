from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from counter.cli import main
from identity import models
from identity.models import (
    MANIFEST,
    ModelCorruptError,
    ModelError,
    ModelMissingError,
    ModelRegistry,
    check_models,
    download,
    ensure_model,
    free_input_dims,
)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No model lookup may touch the real environment or user cache."""
    monkeypatch.delenv(models.MODELS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "remote-counter" / "models"


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server publishing a folder."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_manifest_pins_the_shared_files(models_dir: Path) -> None:
    for spec in MANIFEST.values():
        path = ensure_model(spec.name, models_dir, allow_download=False)
        assert path.stat().st_size == spec.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256


def test_environment_then_cache_lookup(models_dir: Path, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path) -> None:
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(models_dir))
    assert ensure_model("yunet", allow_download=False).parent == models_dir
    monkeypatch.delenv(models.MODELS_DIR_ENV)
    isolated_cache.mkdir(parents=True)
    (isolated_cache / MANIFEST["yunet"].filename).write_bytes((models_dir / MANIFEST["yunet"].filename).read_bytes())
    assert ensure_model("yunet", allow_download=False).parent == isolated_cache


def test_missing_model_names_file_hash_and_place(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError) as err:
        ensure_model("minifasnet_v2", tmp_path / "empty")
    text = str(err.value)
    spec = MANIFEST["minifasnet_v2"]
    assert spec.filename in text and spec.sha256 in text
    assert str(tmp_path / "empty" / spec.filename) in text and "COUNTER_MODELS_DIR" in text


def test_corrupt_model_is_refused(tmp_path: Path) -> None:
    spec = MANIFEST["yunet"]
    (tmp_path / spec.filename).write_bytes(b"not an onnx file")
    with pytest.raises(ModelCorruptError) as err:
        ensure_model("yunet", tmp_path)
    assert spec.sha256 in str(err.value) and hashlib.sha256(b"not an onnx file").hexdigest() in str(err.value)


def test_download_checks_hash(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    payload = b"model bytes" * 1000
    (root / "m.onnx").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = download(f"{base}/m.onnx", tmp_path / "dl" / "m.onnx", good)
    assert dest.read_bytes() == payload
    with pytest.raises(ModelCorruptError):
        download(f"{base}/m.onnx", tmp_path / "dl" / "bad.onnx", "0" * 64)
    assert not (tmp_path / "dl" / "bad.onnx").exists()
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["m.onnx"]
    with pytest.raises(ModelMissingError):
        download(f"{base}/absent.onnx", tmp_path / "dl" / "absent.onnx", good)


def test_ensure_model_downloads_into_cache(
    http_dir: tuple[str, Path], models_dir: Path, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path, tmp_path: Path
) -> None:
    base, root = http_dir
    spec = MANIFEST["yunet"]
    (root / spec.filename).write_bytes((models_dir / spec.filename).read_bytes())
    monkeypatch.setitem(MANIFEST, "yunet", replace(spec, url=f"{base}/{spec.filename}"))
    path = ensure_model("yunet", tmp_path / "empty")
    assert path == isolated_cache / spec.filename
    assert models.file_sha256(path) == spec.sha256


def test_unreachable_source_fails_fast_with_guidance(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = MANIFEST["yunet"]
    monkeypatch.setitem(MANIFEST, "yunet", replace(spec, url="http://127.0.0.1:9/nothing.onnx"))
    with pytest.raises(ModelMissingError) as err:
        ensure_model("yunet", tmp_path)
    assert spec.sha256 in str(err.value) and "download failed" in str(err.value)


def test_registry_creates_each_session_once(models_dir: Path) -> None:
    registry = ModelRegistry(models_dir, threads=1)
    first = registry.session("minifasnet_v2")
    assert registry.session("minifasnet_v2") is first
    assert first.get_session_options().intra_op_num_threads == 1
    assert first.get_providers() == ["CPUExecutionProvider"]


def test_check_models_and_cli(models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert {s.status for s in check_models(models_dir)} == {"ok"}
    assert main(["models", "check", "--models-dir", str(models_dir), "--json"]) == 0
    assert {row["status"] for row in json.loads(capsys.readouterr().out)} == {"ok"}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MANIFEST["sface"].filename).write_bytes(b"x")
    assert main(["models", "check", "--models-dir", str(broken), "--json"]) == 1
    rows = {row["name"]: row["status"] for row in json.loads(capsys.readouterr().out)}
    assert rows == {"yunet": "missing", "sface": "corrupt", "minifasnet_v2": "missing", "minifasnet_v1se": "missing",
                    # carried by the installed rapidocr-onnxruntime wheel, found after the folders
                    "ocr_det": "ok", "ocr_cls": "ok", "ocr_rec": "ok"}
    assert main(["models", "check", "--models-dir", str(broken)]) == 1
    assert "corrupt" in capsys.readouterr().out


def test_detector_input_is_freed_to_the_frame_shape(models_dir: Path) -> None:
    """The YuNet file declares 640x640; the registry's session takes any multiple of 32."""
    yunet = ModelRegistry(models_dir).session("yunet")
    assert yunet.get_inputs()[0].shape == [1, 3, "height", "width"]
    for h, w in ((480, 640), (640, 352)):
        (cls_8,) = yunet.run(["cls_8"], {"input": np.zeros((1, 3, h, w), np.float32)})
        assert cls_8.shape == (1, (h // 8) * (w // 8), 1)
    sface = ModelRegistry(models_dir).session("sface")
    assert sface.get_inputs()[0].shape == [1, 3, 112, 112]  # nothing freed where the manifest says nothing


def test_freeing_an_axis_the_model_lacks_names_it(models_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"face_detection_yunet_2023mar.onnx has no input axis input\[7\]"):
        free_input_dims(models_dir / "face_detection_yunet_2023mar.onnx", [("input", 7, "depth")])


def test_ocr_models_are_pinned_and_found_in_their_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    carried = models.package_models_dir("rapidocr_onnxruntime")
    if carried is None:
        pytest.skip("rapidocr-onnxruntime is not installed")
    for name in ("ocr_det", "ocr_cls", "ocr_rec"):
        assert ensure_model(name, tmp_path / "empty", allow_download=False) == carried / MANIFEST[name].filename
    monkeypatch.setattr(models, "package_models_dir", lambda package: None)
    with pytest.raises(ModelMissingError, match=r"pip install --no-deps rapidocr-onnxruntime==1\.4\.4") as err:
        ensure_model("ocr_rec", tmp_path / "empty", allow_download=False)
    assert MANIFEST["ocr_rec"].sha256 in str(err.value)
