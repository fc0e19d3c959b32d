"""The package's layers point one way, and the Raft core stays pure.

Every import of a respkv module (at the top of a file, inside a function or under
TYPE_CHECKING alike) must go to the module's own package or to a lower layer; no
two modules import each other, directly or around a circle; the Raft core imports
nothing that touches the clock, the network, the disk or an event loop; and the
product imports none of the test tools beside it, which are not in the wheel.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "respkv"

# Bottom to top. A module may import its own package and anything of a lower rank.
LAYERS: dict[str, int] = {
    "": 0,  # respkv/__init__.py: the version
    "faults": 0,
    "clock": 0,
    "logs": 0,
    "gcpolicy": 0,
    "memtrim": 0,
    "background": 0,
    "tlsconfig": 0,
    "sizes": 0,
    "histogram": 0,
    "protocol": 0,
    "config": 1,
    "raft": 1,
    "storage": 2,
    "state": 3,
    "replication": 4,
    "commands": 5,
    "server": 6,
    "cli": 7,
}

# Top-level packages of the repository that are test code, not shipped in the wheel.
TEST_TOOLS = ("raftsim", "testsupport", "jepsen", "tests", "benchmarks")

RAFT_CORE = ("core", "log", "messages", "progress", "confchange", "codec", "types", "refusal")
IMPURE = {"asyncio", "socket", "time", "os", "threading", "selectors", "ssl", "sqlite3",
          "subprocess", "io", "pathlib", "logging", "datetime"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {}


def imported(path: Path) -> set[str]:
    """Every module name ``path`` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from respkv.state import machine" imports the module respkv.state.machine
            names = {f"{module}.{alias.name}" for alias in node.names}
            submodules = {name for name in names if name in MODULES}
            found.update(submodules or {module})
    return found


MODULES.update({module_name(path): path for path in PACKAGE.rglob("*.py")})


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def internal_imports(module: str) -> set[str]:
    """The respkv modules ``module`` imports, leaving out its own parent packages (a
    submodule's import always initialises them first: that is not a cycle)."""
    return {name for name in imported(MODULES[module])
            if name in MODULES and not module.startswith(name)}


def test_every_package_has_a_layer():
    assert {layer_of(module) for module in MODULES} <= LAYERS.keys()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str):
    own = layer_of(module)
    upward = sorted(name for name in internal_imports(module)
                    if layer_of(name) != own and LAYERS[layer_of(name)] >= LAYERS[own])
    assert not upward, f"{module} imports from its own layer or above: {upward}"


def test_no_import_cycles():
    graph = {module: internal_imports(module) for module in MODULES}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = [*visiting[visiting.index(module):], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


@pytest.mark.parametrize("name", RAFT_CORE)
def test_raft_core_is_pure(name: str):
    module = f"respkv.raft.{name}"
    outside = {top.split(".")[0] for top in imported(MODULES[module])} & IMPURE
    assert not outside, f"{module} imports {sorted(outside)}: the core must not touch I/O"
    respkv_imports = {n for n in imported(MODULES[module]) if n.startswith("respkv")}
    assert all(n.startswith(("respkv.raft", "respkv.faults")) for n in respkv_imports), \
        respkv_imports


@pytest.mark.parametrize("module", sorted(MODULES))
def test_product_imports_no_test_tools(module: str):
    tools = sorted(name for name in imported(MODULES[module])
                   if name.split(".")[0] in TEST_TOOLS)
    assert not tools, f"{module} imports test code that is not in the wheel: {tools}"


def test_test_tools_are_outside_the_package():
    root = PACKAGE.parent
    assert all((root / tool).is_dir() for tool in ("raftsim", "testsupport", "jepsen"))
    assert not [m for m in MODULES if m.split(".")[-1] in ("simulate", "testing")], \
        "the Raft simulator and the hand-driven cluster live in raftsim/"
