"""The imports run one way: core ``iapo_gym/`` < ``envs/`` < ``agents/`` < ``benchmarks/``, and no two files
import each other, directly or round a longer loop.

Every import statement counts, at module level and inside functions (a function-level import hides a
dependency from readers and linters, not from the layering). Files are read with :mod:`ast`; nothing is
imported. ``setup.cfg``'s ``package_dir`` installs the top-level ``envs/``, ``agents/`` and ``benchmarks/``
folders as ``iapo_gym.envs``, ``iapo_gym.agents`` and ``iapo_gym.benchmarks``; that mapping is read from
setup.cfg, so the test follows it if it changes.

Resolving a registered entry-point string (``"iapo_gym.agents.model_teacher:load_model_teacher"``) with
importlib at call time is how a lower layer finds an implementation that lives higher up, the way
Gymnasium's registry finds env classes: that is not an import statement and is not counted.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
LAYERS: tuple[str, ...] = ("iapo_gym", "iapo_gym.envs", "iapo_gym.agents", "iapo_gym.benchmarks")
"""Packages from the lowest layer to the highest; a module belongs to the longest one its name starts with."""

ALLOWED: frozenset[tuple[str, str]] = frozenset()
"""(importer, imported) edges the test ignores, for the layer check and for the cycle check alike."""


def package_dirs() -> dict[str, Path]:
    """``package name -> folder`` from setup.cfg's ``[options] package_dir``."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    dirs: dict[str, Path] = {}
    for line in cfg["options"]["package_dir"].strip().splitlines():
        name, _, folder = line.partition("=")
        dirs[name.strip()] = ROOT / folder.strip()
    return dirs


def module_files() -> dict[str, Path]:
    """``dotted module name -> file`` for every ``.py`` file of the installed packages, and every C
    extension's source (``iapo_gym/_area.c`` is the module ``iapo_gym._area``; it imports nothing)."""
    modules: dict[str, Path] = {}
    for package, folder in package_dirs().items():
        for path in sorted([*folder.rglob("*.py"), *folder.glob("*.c")]):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    return modules


def layer(module: str) -> int:
    """0 for core, 1 for envs, 2 for agents, 3 for benchmarks."""
    return max(i for i, p in enumerate(LAYERS) if module == p or module.startswith(p + "."))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of this project that ``path`` imports anywhere in its body (relative imports resolved;
    ``from pkg import sub`` counts as an import of the submodule ``pkg.sub`` when that is a file)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import iapo_gym.x.y` names a module; strip attributes
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """``module -> modules it imports`` over the whole project, less the allow-listed edges."""
    files = module_files()
    known = set(files)
    return {
        m: {t for t in imports_of(m, p, known) if (m, t) not in ALLOWED} if p.suffix == ".py" else set() for m, p in files.items()
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one file (iterative, so depth is no limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            if children:
                child = children.pop()
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_walker_sees_every_layer_and_function_level_imports() -> None:
    graph = import_graph()
    assert {layer(m) for m in graph} == {0, 1, 2, 3}
    assert {"iapo_gym.envs.base", "iapo_gym.agents.base", "iapo_gym.benchmarks.runner"} <= set(graph)
    trainer = graph["iapo_gym.agents.trainer"]
    assert "iapo_gym.agents.compact" in trainer  # `from .compact import ...`: a relative import, resolved
    assert "iapo_gym.agents.imitation" in trainer  # imported inside GroupTrainer.warm_start only
    assert "iapo_gym.wrappers" in trainer  # `from iapo_gym.wrappers import ...`: the package itself
    assert "iapo_gym.benchmarks.suites" in graph["iapo_gym.benchmarks.leaderboard"]  # inside a function


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    """An upward import hidden in a function, and a two-file loop, are found (on a made-up package)."""
    src = tmp_path / "base.py"  # stands for iapo_gym/teachers/base.py
    src.write_text("def f():\n    from ..agents import trainer\n    import iapo_gym.benchmarks.runner as r\n")
    known = {"iapo_gym.teachers.base", "iapo_gym.agents", "iapo_gym.agents.trainer", "iapo_gym.benchmarks.runner"}
    found = imports_of("iapo_gym.teachers.base", src, known)
    assert found == {"iapo_gym.agents.trainer", "iapo_gym.benchmarks.runner"}
    assert all(layer(t) > layer("iapo_gym.teachers.base") for t in found)
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_of_a_higher_layer() -> None:
    graph = import_graph()
    upward = sorted(
        f"{m} ({LAYERS[layer(m)]}) imports {t} ({LAYERS[layer(t)]})"
        for m, targets in graph.items()
        for t in targets
        if layer(t) > layer(m)
    )
    assert not upward, "imports of a higher layer:\n  " + "\n  ".join(upward)


def test_no_import_cycle_between_files() -> None:
    cycles = strongly_connected(import_graph())
    assert not cycles, "files importing each other:\n  " + "\n  ".join(" <-> ".join(c) for c in cycles)


def test_allow_list_entries_are_still_needed() -> None:
    """An allow-listed edge that no longer exists must leave the list, so it only ever shrinks (it is empty
    now: the last entries, the VLM track's, went when it moved onto TRL)."""
    files = module_files()
    for importer, imported in sorted(ALLOWED):
        assert importer in files, f"{importer} is gone; remove {(importer, imported)} from ALLOWED"
        assert imported in imports_of(importer, files[importer], set(files)), (
            f"{(importer, imported)} no longer imports; remove it from ALLOWED"
        )


def test_the_core_names_no_module_of_a_higher_layer_even_in_strings() -> None:
    """The model and VLM teachers register themselves as entry points (setup.cfg), so no core file names a
    module of agents/ or benchmarks/, not even in a string."""
    core = Path(__file__).resolve().parents[1] / "iapo_gym"
    for path in core.rglob("*.py"):
        text = path.read_text()
        assert "iapo_gym.agents." not in text and "iapo_gym.benchmarks." not in text, path


def test_the_agents_layers_teachers_are_found_by_entry_point() -> None:
    from iapo_gym.teachers.base import _known

    from iapo_gym.agents.model_teacher import load_model_teacher
    from iapo_gym.agents.vlm.teacher import make_vlm_teacher
    from iapo_gym.specs import load_class

    known = _known()
    assert load_class(known["model"]) is load_model_teacher and load_class(known["vlm"]) is make_vlm_teacher
