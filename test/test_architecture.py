"""The layering of docs/architecture.md, checked on the source: which package may import which,
no import cycle between modules (function-local imports included), and no rclpy below nodes/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "drex_ros"

# unit -> the units it may import. A unit is a package of core/ (core.robot, ...), a leaf module
# of core/ (core.bag, ...) or a top-level package of drex_ros (nodes, training, ...).
CORE_LEAVES = {"core.paths": set(), "core.identify_reply": set()}
CORE = {
    **CORE_LEAVES,
    "core.robot": {"core.paths"},
    "core.bag": {"core.robot"},
    "core.sim": {"core.robot", "core.bag", "core.paths"},
    "core.perception": {"core.robot", "core.sim", "core.paths"},
    "core.control": {"core.robot", "core.identify_reply"},
    "core.policy": {"core.robot", "core.bag", "core.sim", "core.control", "core.paths"},
    "core.reconstruction": {"core.robot", "core.bag", "core.paths"},
}
CORE["core.massid"] = set(CORE) | {"core.massid"}
ALL_CORE = set(CORE)
ALLOWED = {
    **CORE,
    "node_process": set(),
    "nodes": ALL_CORE,
    "training": ALL_CORE,
    "evaluation": ALL_CORE | {"nodes", "node_process", "training"},
    "commands": ALL_CORE | {"nodes", "node_process", "training", "evaluation"},
    "bench": ALL_CORE | {"nodes", "node_process", "training", "evaluation", "commands"},  # benches run what commands do
    "cli": set(),  # it imports commands by name, at run time
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("drex_ros",) + parts).removesuffix(".__init__")
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _unit(module: str) -> str:
    parts = module.split(".")[1:]
    if parts and parts[0] == "core" and len(parts) > 1:
        return f"core.{parts[1]}"
    return parts[0] if parts else "drex_ros"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}


def test_packages_import_only_what_lies_below_them():
    wrong = []
    for module, imported in _graph().items():
        unit = _unit(module)
        if unit in ("drex_ros", "core"):  # the package docstrings
            continue
        assert unit in ALLOWED, f"{module}: package {unit} is not in the layering (docs/architecture.md)"
        for other in imported:
            other_unit = _unit(other)
            if other_unit not in (unit, "drex_ros") and other_unit not in ALLOWED[unit]:
                wrong.append(f"{module} imports {other}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules():
    graph = _graph()
    for package in [m for m in graph if _modules()[m].name == "__init__.py"]:
        for edges in graph.values():
            edges.discard(package)  # `from pkg import module` names the module, counted above
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_core_never_imports_rclpy():
    for module, path in _modules().items():
        if _unit(module).startswith("core"):
            ros = {i for i in _imports(path) if i.split(".")[0] in ("rclpy", "rosidl_runtime_py")}
            assert not ros, f"{module} imports {sorted(ros)}: core/ is tested without ROS"
