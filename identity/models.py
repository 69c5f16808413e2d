"""Model registry: pinned ONNX files, their look-up, download with hash check, and session creation.

Look-up order for a model file: an explicit ``models_dir``, then ``$COUNTER_MODELS_DIR``, then the
user cache (``$XDG_CACHE_HOME/remote-counter/models``, default ``~/.cache/remote-counter/models``).
A file that is missing everywhere is downloaded into the user cache from its public source and
accepted only if its sha256 matches the manifest.  The OCR models come inside the PyPI wheel of
``rapidocr-onnxruntime``: after the folders above, they are looked up in that installed package,
and pinned like the others.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime as ort

ort.set_default_logger_severity(3)

log = logging.getLogger("identity.models")

MODELS_DIR_ENV = "COUNTER_MODELS_DIR"


@dataclass(frozen=True)
class ModelSpec:
    """One pinned model file."""

    name: str
    filename: str
    sha256: str
    size: int
    licence: str
    url: str | None
    source: str
    what: str
    #: Input axes freed at load time as (input, axis, name): the file declares them fixed although
    #: its graph works at other sizes (see :func:`free_input_dims`).
    free_dims: tuple[tuple[str, int, str], ...] = ()
    #: The installed Python package whose ``models/`` folder carries the file (looked up last).
    package: str | None = None
    #: What to install when that package is missing.
    requirement: str | None = None


_ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models"
_SILENT_FACE = "https://github.com/minivision-ai/Silent-Face-Anti-Spoofing/raw/master/resources/anti_spoof_models"
_RAPIDOCR = "rapidocr_onnxruntime"
_RAPIDOCR_WHEEL = "rapidocr-onnxruntime==1.4.4"


def _carried(name: str, filename: str, what: str, size: int, sha256: str) -> ModelSpec:
    """An OCR model (PaddleOCR, Apache-2.0) carried in the rapidocr-onnxruntime wheel."""
    return ModelSpec(
        name=name,
        filename=filename,
        sha256=sha256,
        size=size,
        licence="Apache-2.0",
        url=None,
        source=f"PyPI wheel {_RAPIDOCR_WHEEL}, {_RAPIDOCR}/models/ (PaddleOCR)",
        what=f"{what} (ID document OCR)",
        package=_RAPIDOCR,
        requirement=_RAPIDOCR_WHEEL,
    )


#: The models the identity pipeline runs, pinned by sha256.
MANIFEST: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="yunet",
            filename="face_detection_yunet_2023mar.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            size=232589,
            licence="MIT",
            url=f"{_ZOO}/face_detection_yunet/face_detection_yunet_2023mar.onnx",
            source="opencv/opencv_zoo models/face_detection_yunet (Git LFS)",
            what="YuNet face detector: box + 5 landmarks",
            free_dims=(("input", 2, "height"), ("input", 3, "width")),
        ),
        ModelSpec(
            name="sface",
            filename="face_recognition_sface_2021dec.onnx",
            sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
            size=38696353,
            licence="Apache-2.0",
            url=f"{_ZOO}/face_recognition_sface/face_recognition_sface_2021dec.onnx",
            source="opencv/opencv_zoo models/face_recognition_sface (Git LFS)",
            what="SFace 128-d face embedding",
        ),
        ModelSpec(
            name="minifasnet_v2",
            filename="2.7_80x80_MiniFASNetV2.onnx",
            sha256="effba232e47c96ed75ecda9a01f5b9574aef07bdbb2e875f5ac963b9a74ca04b",
            size=1744201,
            licence="Apache-2.0",
            url=None,
            source=f"ONNX export (opset 13, dynamic batch) of {_SILENT_FACE}/2.7_80x80_MiniFASNetV2.pth",
            what="MiniFASNetV2 passive anti-spoofing, 2.7x crop",
        ),
        ModelSpec(
            name="minifasnet_v1se",
            filename="4_0_0_80x80_MiniFASNetV1SE.onnx",
            sha256="cf1fd9a44986d0260b3c719df443d52dbbef56a427c2668035eda5fafb8ec89e",
            size=1743369,
            licence="Apache-2.0",
            url=None,
            source=f"ONNX export (opset 13, dynamic batch) of {_SILENT_FACE}/4_0_0_80x80_MiniFASNetV1SE.pth",
            what="MiniFASNetV1SE passive anti-spoofing, 4.0x crop",
        ),
        _carried("ocr_det", "ch_PP-OCRv4_det_infer.onnx", "PP-OCRv4 text detector", 4745517,
                 "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
        _carried("ocr_cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", "text line orientation classifier", 585532,
                 "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
        _carried("ocr_rec", "ch_PP-OCRv4_rec_infer.onnx", "PP-OCRv4 Chinese and Latin text recogniser", 10857958,
                 "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
    )
}


class ModelError(Exception):
    """A model file cannot be used; the message says which file and what to do."""


class ModelMissingError(ModelError):
    """A model file is nowhere to be found and could not be downloaded."""


class ModelCorruptError(ModelError):
    """A model file exists but its sha256 is not the pinned one."""


def user_cache_dir() -> Path:
    """The per-user model cache (downloads land here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "remote-counter" / "models"


def package_models_dir(package: str) -> Path | None:
    """The ``models/`` folder of an installed package (found without importing it), or None."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / "models"


def search_dirs(models_dir: Path | None = None, spec: ModelSpec | None = None) -> list[Path]:
    """Folders searched for model files, in order (``spec``'s package folder last, when it has one)."""
    dirs: list[Path] = []
    if models_dir is not None:
        dirs.append(Path(models_dir))
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        dirs.append(Path(env))
    dirs.append(user_cache_dir())
    if spec is not None and spec.package and (carried := package_models_dir(spec.package)) is not None:
        dirs.append(carried)
    return dirs


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """The sha256 of a file, remembered per (path, size, mtime) so big models are hashed once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        known = _hash_cache.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    with _hash_lock:
        _hash_cache[key] = value
    return value


def _where_to_put(spec: ModelSpec, models_dir: Path | None) -> str:
    places = " or ".join(str(d / spec.filename) for d in search_dirs(models_dir))
    if spec.requirement:
        return (
            f"install the package that carries it: pip install --no-deps {spec.requirement} "
            f"(or put the file at {places}, or set {MODELS_DIR_ENV} to its folder)"
        )
    fetch = f"download it from {spec.url}" if spec.url else f"obtain it as: {spec.source}"
    return f"{fetch} and put it at {places} (or set {MODELS_DIR_ENV} to its folder)"


def _check(spec: ModelSpec, path: Path, models_dir: Path | None) -> Path:
    actual = file_sha256(path)
    if actual != spec.sha256:
        raise ModelCorruptError(
            f"model file {path} has sha256 {actual}, expected {spec.sha256} ({spec.filename}, "
            f"{spec.size} bytes): the file is corrupt or a different version; delete it and "
            + _where_to_put(spec, models_dir)
        )
    return path


def locate(name: str, models_dir: Path | None = None) -> Path | None:
    """The first existing file for model ``name`` in the search folders (not hash-checked), or None."""
    spec = MANIFEST[name]
    for folder in search_dirs(models_dir, spec):
        candidate = folder / spec.filename
        if candidate.is_file():
            return candidate
    return None


def download(url: str, dest: Path, sha256: str, *, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``dest`` atomically, keeping it only if its sha256 is ``sha256``.

    Raises :class:`ModelMissingError` on a network failure and :class:`ModelCorruptError` on a
    hash mismatch; ``dest`` is never left half-written.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise ModelMissingError(f"could not download {dest.name} from {url}: {exc}") from exc
        actual = digest.hexdigest()
        if actual != sha256:
            raise ModelCorruptError(
                f"downloaded {dest.name} from {url} has sha256 {actual}, expected {sha256}: refused"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def ensure_model(name: str, models_dir: Path | None = None, *, allow_download: bool = True) -> Path:
    """The verified path of model ``name``, downloading it into the user cache when missing."""
    try:
        spec = MANIFEST[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(MANIFEST)}") from None
    found = locate(name, models_dir)
    if found is not None:
        return _check(spec, found, models_dir)
    if allow_download and spec.url:
        dest = user_cache_dir() / spec.filename
        try:
            log.info("downloading %s from %s", spec.filename, spec.url)
            return download(spec.url, dest, spec.sha256)
        except ModelMissingError as exc:
            raise ModelMissingError(
                f"model {spec.filename} (sha256 {spec.sha256}) is missing and the download failed "
                f"({exc}); " + _where_to_put(spec, models_dir)
            ) from exc
    raise ModelMissingError(
        f"model {spec.filename} (sha256 {spec.sha256}) is missing; " + _where_to_put(spec, models_dir)
    )


Status = Literal["ok", "missing", "corrupt"]


@dataclass(frozen=True)
class ModelStatus:
    """What ``counter models check`` reports for one model."""

    name: str
    filename: str
    status: Status
    path: str | None
    expected_sha256: str
    actual_sha256: str | None
    hint: str


def check_models(models_dir: Path | None = None) -> list[ModelStatus]:
    """The status of every model in the manifest (nothing is downloaded)."""
    out: list[ModelStatus] = []
    for spec in MANIFEST.values():
        path = locate(spec.name, models_dir)
        if path is None:
            hint = _where_to_put(spec, models_dir)
            out.append(ModelStatus(spec.name, spec.filename, "missing", None, spec.sha256, None, hint))
            continue
        actual = file_sha256(path)
        status: Status = "ok" if actual == spec.sha256 else "corrupt"
        hint = "" if status == "ok" else "delete it, then " + _where_to_put(spec, models_dir)
        out.append(ModelStatus(spec.name, spec.filename, status, str(path), spec.sha256, actual, hint))
    return out


def default_threads() -> int:
    """Intra-op threads per session: the cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def resolve_providers(wanted: Sequence[str] | None) -> list[str]:
    """The requested execution providers that this onnxruntime build has, CPU last as a fallback."""
    available = set(ort.get_available_providers())
    chosen = [p for p in (wanted or ["CPUExecutionProvider"]) if p in available]
    missing = [p for p in (wanted or []) if p not in available]
    if missing:
        log.warning("onnxruntime providers not available here, skipped: %s", ", ".join(missing))
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def free_input_dims(path: Path, dims: Sequence[tuple[str, int, str]]) -> bytes:
    """The model at ``path`` with the given ``(input, axis, name)`` axes made symbolic, serialised.

    YuNet's file declares a 640x640 input, yet its graph (reshapes to ``[1, -1, n]``, resizes by
    scale) runs at any multiple of 32: freeing height and width lets a 640x480 frame be detected
    as it is instead of padded square (a quarter less work).  Output shapes and the recorded
    intermediate shapes are dropped, since they were derived from the fixed input.
    """
    import onnx

    model = onnx.load(str(path))
    inputs = {i.name: i for i in model.graph.input}
    for name, axis, param in dims:
        try:
            dim = inputs[name].type.tensor_type.shape.dim[axis]
        except (KeyError, IndexError):
            raise ModelError(f"model {path.name} has no input axis {name}[{axis}] to free") from None
        dim.dim_param = param  # a oneof with dim_value: setting the name clears the fixed size
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return bytes(model.SerializeToString())


def create_session(
    path: Path,
    providers: Sequence[str] | None = None,
    threads: int = 0,
    free_dims: Sequence[tuple[str, int, str]] = (),
) -> ort.InferenceSession:
    """An inference session with spinning off and a bounded thread count (see docs/PERFORMANCE.md)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    model: str | bytes = free_input_dims(path, free_dims) if free_dims else str(path)
    return ort.InferenceSession(model, sess_options=options, providers=resolve_providers(providers))


class ModelRegistry:
    """Creates each model's session once, on first use, and hands the same one out afterwards."""

    def __init__(
        self,
        models_dir: Path | None = None,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        *,
        allow_download: bool = True,
    ) -> None:
        self.models_dir = models_dir
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.threads = threads or default_threads()
        self.allow_download = allow_download
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The verified file of model ``name``."""
        return ensure_model(name, self.models_dir, allow_download=self.allow_download)

    def session(self, name: str) -> ort.InferenceSession:
        """The shared session of model ``name`` (created on first call; thread-safe)."""
        with self._lock:
            sess = self._sessions.get(name)
            if sess is None:
                sess = create_session(self.path(name), self.providers, self.threads, MANIFEST[name].free_dims)
                self._sessions[name] = sess
            return sess
