"""The house flows one way: every import of ``arc_exp/`` (top-level, under ``TYPE_CHECKING`` and inside functions)
follows the order written in ``arc_exp/__init__.py`` (:data:`arc_exp.LAYERS`), no modules import each other in a
circle, an import inside a function is a heavy or optional dependency with a comment saying so, and no module is
longer than :data:`MAX_LINES`. Each failure names the file and line.

Read with ``ast``, never by importing: a violation in a function that no test calls is found all the same.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import arc_exp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "arc_exp"
MAX_LINES = 400

# third-party modules an import inside a function may name (the first part of the dotted name), each because it is
# optional (an extra, or CUDA only) or takes seconds to import: schemas, `--cfg job` and report.py answer at once
DEFERRED = {
    "bitsandbytes": "optional: CUDA 4-bit quantization",
    "playwright": "optional: the ui-test extra",
    "submitit": "optional: the slurm extra",
    "optuna": "optional: the optuna extra",
    "torch": "heavy (~2 s)",
    "transformers": "heavy",
    "peft": "heavy (~7 s with its imports)",
    "pytorch_lightning": "heavy (~6 s)",
    "lightning_fabric": "heavy",
    "huggingface_hub": "heavy, only when a model loads",
    "safetensors": "heavy, only when an adapter is read",
    "mlflow": "heavy (~2.5 s)",
    "matplotlib": "heavy, only where a figure is drawn",
    "scipy": "heavy, only where grids are labelled or tested",
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported arc_exp module (or a third-party module's dotted name)
    file: str  # relative to the project root
    line: int
    in_function: bool

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    """Every import statement of one file, the names of ``from arc_exp.x import y`` resolved to module ``x.y`` when
    ``y`` is a module, else to ``x``."""
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(source, alias.name, rel(path), child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module
                for alias in child.names:
                    name = f"{module}.{alias.name}"
                    target = name if module.startswith("arc_exp") and is_module(name) else module
                    found.append(Import(source, target, rel(path), child.lineno, in_function))
            visit(child, inside)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def all_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(module: str) -> int:
    """The position of ``module`` in :data:`arc_exp.LAYERS`: its longest listed prefix's."""
    best, best_length = None, -1
    for index, prefixes in enumerate(arc_exp.LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "arc_exp" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer of arc_exp.LAYERS: write where it belongs")
    return best


def layer_name(module: str) -> str:
    return " ".join(arc_exp.LAYERS[layer_of(module)])


def internal_imports() -> list[Import]:
    return [i for f in all_files() for i in imports_of(f) if i.target.split(".")[0] == "arc_exp"]


def unique(lines) -> list[str]:
    return list(dict.fromkeys(lines))


def test_every_module_has_a_layer():
    for path in all_files():
        layer_of(module_name(path))


def test_imports_run_downward():
    upward = unique(f"{i.where}: {i.source} ({layer_name(i.source)}) imports {i.target} ({layer_name(i.target)})"
                    for i in internal_imports() if layer_of(i.target) > layer_of(i.source))
    assert not upward, "imports against the order of arc_exp.LAYERS:\n" + "\n".join(upward)


def test_the_library_imports_no_entry_point():
    """train.py, evaluate.py, ... sit above all of arc_exp: the library never imports one (stats.py was one inside it)."""
    entry_points = {p.stem for p in ROOT.glob("*.py")}
    found = unique(f"{i.where}: {i.source} imports the entry point {i.target}.py" for f in all_files()
                   for i in imports_of(f) if i.target.split(".")[0] in entry_points)
    assert not found, "\n".join(found)


def test_no_import_circle():
    edges: dict[str, list[Import]] = {}
    for i in internal_imports():
        if i.target != i.source:
            edges.setdefault(i.source, []).append(i)
    circles = []
    for cycle in find_cycles({m: [i.target for i in out] for m, out in edges.items()}):
        lines = []
        for a, b in zip(cycle, cycle[1:] + cycle[:1]):
            where = next(i.where for i in edges[a] if i.target == b)
            lines.append(f"  {where}: {a} imports {b}")
        circles.append("\n".join(lines))
    assert not circles, "import circles:\n" + "\n".join(circles)


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan, then a path back to the start)."""
    index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        start = min(component)
        path, seen = [start], {start}
        while True:  # walk inside the component until the start is reachable again
            nxt = [n for n in graph[path[-1]] if n in component]
            if start in nxt:
                break
            step = next((n for n in nxt if n not in seen), nxt[0])
            if step in seen:
                path = path[path.index(step):]
                break
            path.append(step)
            seen.add(step)
        cycles.append(path)
    return cycles


def comment_before(lines: list[str], line: int) -> bool:
    """Whether the import at ``line`` (1-based) has a comment on its line, or heads a run of import lines that a
    comment line opens."""
    if "#" in lines[line - 1]:
        return True
    above = line - 2
    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
        if "#" in lines[above]:
            return True
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def test_imports_inside_functions_are_heavy_or_optional_dependencies():
    wrong = []
    for path in all_files():
        lines = path.read_text().splitlines()
        for i in imports_of(path):
            if not i.in_function:
                continue
            top = i.target.split(".")[0]
            if top not in DEFERRED:
                wrong.append(f"{i.where}: {i.target} imported inside a function: import it at the top of the module")
            elif not comment_before(lines, i.line):
                wrong.append(f"{i.where}: {i.target} imported inside a function without a comment saying why "
                             f"({DEFERRED[top]})")
    assert not wrong, f"only {', '.join(sorted(DEFERRED))} wait for a function:\n" + "\n".join(unique(wrong))


def test_no_module_over_max_lines():
    long = [f"{rel(p)}: {n} lines" for p in all_files() if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines (split them along their concepts):\n" + "\n".join(long)


# The Hydra config stops at the entry points and the modules below: a DictConfig, or Hydra's instantiate, anywhere
# else in arc_exp/ is the config leaking into the library (build the object once above it and pass it down).
CONFIG_READERS = {
    "DictConfig": {
        "arc_exp/training/recipe.py": "train.py's steps, each reading its part of the composed config",
        "arc_exp/cli.py": "the entry points' wrapper",
        "arc_exp/schemas.py": "the config's types",
    },
    "instantiate": {
        "arc_exp/training/recipe.py": "train.py's steps build the inference settings from the config",
        "arc_exp/training/trainer.py": "conf/trainer is Lightning's Trainer arguments as they are, a nested _target_ "
                                       "(a strategy class a user may name); the builder gets a plain dict",
    },
}


def test_the_hydra_config_stops_above_the_library():
    wrong = []
    for path in all_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                    else node.name.rpartition(".")[2] if isinstance(node, ast.alias) else None)
            if name in CONFIG_READERS and rel(path) not in CONFIG_READERS[name]:
                wrong.append(f"{rel(path)}:{getattr(node, 'lineno', '?')}: {name}")
    assert not wrong, ("only " + "; ".join(f"{name}: {', '.join(files)}" for name, files in CONFIG_READERS.items())
                       + " see the Hydra config:\n" + "\n".join(unique(wrong)))
