"""core/ is layered: no module imports one that imports it back, at the top of a file or inside a
function, and every module imports on its own."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"


def modules() -> dict[str, Path]:
    """``suite.x.y`` -> its file, for every module of core/."""
    out = {}
    for path in sorted(CORE.rglob("*.py")):
        if "plugin_template" in path.parts:
            continue
        parts = path.relative_to(CORE).with_suffix("").parts
        out[".".join(("suite", *parts)).removesuffix(".__init__")] = path
    return out


def imports_of(name: str, path: Path, known: dict) -> set[str]:
    """The modules of core/ that ``name`` imports anywhere in its file (the package ``suite``
    itself aside: its names are imported lazily)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = ".".join(base[: len(base) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            while t not in known and "." in t:
                t = t.rpartition(".")[0]
            if t in known and t not in (name, "suite"):
                found.add(t)
    return found


def test_the_import_graph_of_core_has_no_cycle():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph["suite.train"] >= {"suite.runs", "suite.joint"}  # the graph is read, not empty
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_every_module_of_core_imports_on_its_own():
    names = [n for n in modules() if n != "suite"]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'suite' or m.startswith('suite.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        f"print('imported', {len(names)})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"imported {len(names)}"
