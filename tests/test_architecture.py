"""The layering rules of docs/architecture.md, checked by walking every import in core/ (lazy ones included)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
# Modules that must not depend on anything that manages runs, jobs or evaluation.
RUN_MANAGERS = ("core.runs", "core.jobs", "core.lab", "core.training", "core.evaluation", "core.strategy")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import statement in a file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def _graph() -> dict[str, set[str]]:
    """core module -> the core modules it imports (``from core.x import y`` counts y when y is a module)."""
    modules = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for mod, names in _imports(path):
            if not mod.startswith("core"):
                continue
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in modules]
            deps.update(subs or ([mod] if mod in modules else []))
        deps.discard(name)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_core_modules():
    assert _cycles(_graph()) == []


def test_core_never_imports_the_ui_bench_or_streamlit():
    bad = [(str(p.relative_to(ROOT)), mod) for p in CORE.rglob("*.py") for mod, _ in _imports(p)
           if mod.split(".")[0] in ("ui", "bench", "pages", "streamlit")]
    assert bad == []


def test_no_private_name_imported_across_modules():
    bad = [(str(p.relative_to(ROOT)), mod, n) for p in list(CORE.rglob("*.py")) + list((ROOT / "ui").rglob("*.py"))
           + list((ROOT / "pages").rglob("*.py")) for mod, names in _imports(p)
           if mod.startswith(("core", "ui")) for n in names if n.startswith("_") and not n.startswith("__")]
    assert bad == []


def test_peft_and_models_import_nothing_that_manages_runs():
    graph = _graph()
    leaves = [m for m in graph if m.startswith("core.peft") or m == "core.models"]
    bad = [(m, d) for m in leaves for d in graph[m] if d.startswith(RUN_MANAGERS)]
    assert bad == []


def test_chat_imports_nothing_from_evaluation():
    graph = _graph()
    assert [d for d in graph.get("core.chat", ()) if d.startswith("core.evaluation")] == []


def test_fileio_defaults_and_errors_are_leaves():
    graph = _graph()
    assert graph["core.errors"] == set() and graph["core.defaults"] == set()
    assert graph["core.fileio"] <= {"core.errors"}  # it raises CorruptFileError, itself from a leaf


def test_every_core_package_and_module_is_named_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    names = sorted({p.relative_to(ROOT).as_posix().removesuffix("/__init__.py").removesuffix(".py")
                    for p in CORE.glob("*.py") if p.name != "__init__.py"}
                   | {p.relative_to(ROOT).as_posix() for p in CORE.iterdir() if (p / "__init__.py").exists()})
    missing = [n for n in names if f"{n}" not in doc and f"{n}/" not in doc and n.replace("/", ".") not in doc]
    assert missing == []
