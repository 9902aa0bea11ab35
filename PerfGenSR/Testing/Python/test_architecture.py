"""The layering of Docs/architecture.md, checked on the source: imports go down the layers, never in
a cycle (module names written as strings count), the engine touches no Slicer, VTK or Qt, and no file
grows past 500 lines without saying why at its top."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # PerfGenSR/
ENGINE, SLICER_SIDE = "PerfGenSRLib", "PerfGenSRSlicer"
# Docs/architecture.md's layers: a module may import its own layer or any below it.
LAYERS = {
    **dict.fromkeys(["study", "defaults", "errors", "kspace", "scaling", "signals"], 0),
    **dict.fromkeys(
        ["io", "acquisition", "dicom", "outputs", "augment", "phantom", "metrics", "curves", "figures"], 1
    ),
    **dict.fromkeys(["schedule", "unet", "gan", "models", "data", "distributed"], 2),
    **dict.fromkeys(["sample", "objectives", "train"], 3),
    **dict.fromkeys(["evaluate", "report", "uncertainty", "demo", "cohort", "cli"], 4),
    SLICER_SIDE: 5,
}
LONG_FILE_LINES = 500
FOREIGN = ("slicer", "vtk", "qt", "ctk", "PythonQt", "mrml")


def module_name(path: Path) -> str:
    """``PerfGenSRLib.phantom.body`` for ``PerfGenSR/PerfGenSRLib/phantom/body.py``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {
        module_name(p): p for package in (ENGINE, SLICER_SIDE) for p in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(name: str, path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth, plus package names it spells as strings."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)  # `from . import io`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(re.findall(rf"\b(?:{ENGINE}|{SLICER_SIDE})(?:\.\w+)+", node.value))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (names that are not modules are dropped)."""
    modules = sources()
    return {
        name: {target for target in imports_of(name, path) if target in modules and target != name}
        for name, path in modules.items()
    }


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS[SLICER_SIDE] if parts[0] == SLICER_SIDE else LAYERS[parts[1]] if len(parts) > 1 else 0


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    edges = graph()
    edges = {  # a package's __init__ re-exporting its own modules is not a cycle between layers
        name: {t for t in targets if not t.startswith(name + ".")} for name, targets in edges.items()
    }
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_the_cycle_finder_finds_a_cycle_through_a_string(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    path = tmp_path / "provider.py"
    path.write_text('from .io import Study\nPROVIDERS = {"x": "PerfGenSRLib.gan"}\n')
    assert {"PerfGenSRLib.gan", "PerfGenSRLib.io", "PerfGenSRLib.io.Study"} <= imports_of(
        "PerfGenSRLib.provider", path
    )


def test_imports_go_down_the_layers():
    upward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for name, targets in graph().items()
        for target in targets
        if not target.startswith(name + ".") and layer(target) > layer(name)
    ]
    assert not upward, upward


def test_every_engine_module_has_a_layer():
    unplaced = {name.split(".")[1] for name in sources() if name.startswith(ENGINE + ".")} - LAYERS.keys()
    assert not unplaced, f"add {sorted(unplaced)} to LAYERS and Docs/architecture.md"


def test_the_engine_imports_no_slicer_vtk_or_qt():
    offenders = [
        f"{name} imports {target}"
        for name, path in sources().items()
        if name.startswith(ENGINE)
        for target in imports_of(name, path)
        if target.split(".")[0] in FOREIGN
    ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    "path",
    [p for folder in (ENGINE, SLICER_SIDE) for p in sorted((ROOT / folder).rglob("*.py"))]
    + [ROOT / "PerfGenSR.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_long_files_say_why_at_their_top(path):
    lines = path.read_text().splitlines()
    if len(lines) > LONG_FILE_LINES:
        head = "\n".join(lines[:30])
        assert f"longer than {LONG_FILE_LINES} lines" in head.lower(), (
            f"{path.name} has {len(lines)} lines: split it, or say at its top why it is longer than "
            f"{LONG_FILE_LINES} lines"
        )
