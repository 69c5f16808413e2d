"""The layering of the packages, read from the source: no module imports upward.  And the tests' own
layout: tests mirror modules, and no test module imports another (shared helpers live in helper modules).

The layers, bottom first: ``storage`` (the database, migrations and stored times: imports nothing of
ours) and ``identity`` (a leaf: imports nothing of ours), ``signaling`` (no ``counter``, never
``web``), ``counter`` (never ``web``), ``web`` (the HTTP side).
``counter.app`` is the composition root: it alone knows every package.

:data:`ALLOWED` lists today's exceptions, each with why.  Any import not listed fails, so a new upward import
is seen in review rather than found by a newcomer.  Imports inside functions count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
OURS = ("storage", "identity", "signaling", "counter", "web")

#: What each package may import of ours (besides itself).
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "storage": (),
    "identity": (),
    "signaling": ("storage", "identity"),
    "counter": ("storage", "identity", "signaling"),
    "web": ("storage", "identity", "signaling", "counter"),
}

#: (importing module, imported module or package): today's exceptions, to be removed, not added to.
ALLOWED: dict[tuple[str, str], str] = {
    ("counter.app", "web"): "the composition root wires the web layer",
}

#: (importing module, private name) of another module: today's exceptions.
ALLOWED_PRIVATE: dict[tuple[str, str], str] = {}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            yield name, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every absolute import, wherever it stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [alias.name for alias in node.names]


def _allowed(module: str, imported: str) -> bool:
    return any(module == m and (imported == i or imported.startswith(i + ".")) for m, i in ALLOWED)


def upward_imports() -> list[str]:
    """Every import of ours that breaks the layering and is not in :data:`ALLOWED`."""
    found = []
    for module, tree in _modules():
        package = module.split(".")[0]
        for imported, _ in _imports(tree):
            top = imported.split(".")[0]
            if top not in OURS or top == package or top in MAY_IMPORT[package]:
                continue
            if not _allowed(module, imported):
                found.append(f"{module} imports {imported}")
    return found


def private_imports() -> list[str]:
    """Every ``from x import _name`` of another module of ours not in :data:`ALLOWED_PRIVATE`."""
    found = []
    for module, tree in _modules():
        for imported, names in _imports(tree):
            if imported.split(".")[0] not in OURS or imported == module:
                continue
            for name in names:
                if name.startswith("_") and (module, f"{imported}.{name}") not in ALLOWED_PRIVATE:
                    found.append(f"{module} imports {imported}.{name}")
    return found


def test_no_module_imports_upward() -> None:
    assert upward_imports() == []


def test_identity_imports_nothing_of_ours() -> None:
    for module, tree in _modules():
        if module.startswith("identity"):
            ours = [i for i, _ in _imports(tree) if i.split(".")[0] in OURS]
            assert [i for i in ours if not i.startswith("identity")] == [], module


def test_no_module_takes_another_modules_private_names() -> None:
    assert private_imports() == []


def test_the_allowed_lists_hold_only_what_still_exists() -> None:
    """An exception removed from the code is removed from the list, so the lists only shrink."""
    seen = {(m, i) for m, tree in _modules() for i, _ in _imports(tree)}
    for module, imported in ALLOWED:
        assert any(m == module and (i == imported or i.startswith(imported + ".")) for m, i in seen), \
            (module, imported)
    taken = {(m, f"{i}.{n}") for m, tree in _modules() for i, names in _imports(tree) for n in names}
    assert set(ALLOWED_PRIVATE) <= taken


def _test_modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(TESTS.rglob("*.py")):
        if "vendor" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _is_test_module(name: str) -> bool:
    return name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")


def imports_between_test_modules() -> list[str]:
    """Every import of one test module from another: shared helpers belong in a helper module or conftest."""
    found = []
    for module, tree in _test_modules():
        imported_names = [i for i, _ in _imports(tree)] + [
            ".".join(module.split(".")[:-node.level] + ([node.module] if node.module else []))
            for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
        for imported in imported_names:
            if _is_test_module(imported) and imported != module:
                found.append(f"{module} imports {imported}")
    return found


def test_no_test_module_imports_another() -> None:
    assert imports_between_test_modules() == []


def unmirrored_test_files() -> list[str]:
    """Test files under ``tests/<package>/`` not named ``test_<module>.py`` (or ``test_<module>_<aspect>.py``)
    after a module of the mirrored folder of that package; a subpackage is tested in its own folder."""
    found = []
    for package in OURS:
        for path in sorted((TESTS / package).rglob("test_*.py")):
            folder = ROOT / path.parent.relative_to(TESTS)
            name = path.stem.removeprefix("test_")
            modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} if folder.is_dir() else set()
            packages = {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()} if folder.is_dir() else set()
            if name in packages or any(name == m or name.startswith(m + "_") for m in modules):
                continue
            found.append(str(path.relative_to(ROOT)))
    return found


def test_tests_mirror_modules() -> None:
    """``tests/<package>/**/test_<module>.py`` mirrors ``<package>/**/<module>.py``; tests of a scenario across
    modules live in ``tests/scenarios/`` (or the browser and hardening suites)."""
    assert unmirrored_test_files() == []
