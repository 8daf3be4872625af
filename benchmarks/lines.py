"""Size of a generated project's package: lines per folder and per layer, long functions, and
import cycles (issue 8's budget).

uv run python benchmarks/lines.py [--project DIR] [--json]

Without ``--project`` it renders a default project (every feature on) without running its
tasks. Lines are physical lines of ``.py`` files (what ``wc -l`` counts). The engine layer is
the ``engine/`` subpackage (what the template maintains); everything else in the package is
the team's layer.
"""

from __future__ import annotations

import argparse
import ast
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import render

MAX_FUNCTION_LINES = 60
ENGINE = "engine"


def package_root(project: Path) -> Path:
    found = [path.parent for path in (project / "src").glob("*/__init__.py")]
    if len(found) != 1:
        raise SystemExit(f"{project}/src must hold exactly one package, found {found}")
    return found[0]


def module_name(package: Path, path: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    """Modules ``module`` imports (anywhere in the file), absolute names."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def measure(project: Path) -> dict[str, Any]:
    package = package_root(project)
    folders: dict[str, int] = defaultdict(int)
    layers = {"team": 0, "engine": 0}
    long_functions: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        relative = path.relative_to(package)
        folder = str(relative.parent) if relative.parent != Path() else "(package)"
        folders[folder] += lines
        layers["engine" if relative.parts[0] == ENGINE else "team"] += lines
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{relative}:{node.lineno} {node.name} ({length})")
        name = module_name(package, path)
        graph[name] = imported(name, path.name == "__init__.py", tree)
    known = set(graph)
    for name, targets in graph.items():
        # Importing a package's attribute counts as importing the module when one exists.
        graph[name] = {target for target in targets if target in known and target != name}
    return {
        "package": package.name,
        "total": sum(folders.values()),
        "layers": layers,
        "folders": dict(sorted(folders.items())),
        "long_functions": long_functions,
        "import_cycles": cycles(graph),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, help="a generated project (default: render one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.project:
        result = measure(args.project)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(render(Path(tmp) / "project", skip_tasks=True))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"src/{result['package']}: {result['total']} lines")
    for layer, lines in result["layers"].items():
        print(f"  layer {layer:8} {lines:6}")
    for folder, lines in result["folders"].items():
        print(f"  {folder:24} {lines:6}")
    print(f"functions over {MAX_FUNCTION_LINES} lines: {len(result['long_functions'])}")
    for item in result["long_functions"]:
        print(f"  {item}")
    print(f"import cycles: {len(result['import_cycles'])}")
    for component in result["import_cycles"]:
        print(f"  {' <-> '.join(component)}")


if __name__ == "__main__":
    main()
