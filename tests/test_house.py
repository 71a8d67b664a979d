"""The codebase's own rules: cheap imports, small functions, notebooks in sync with their sources, one set of defaults."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from artlib.train.config import TrainConfig, defaults

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
TRAINING_NOTEBOOKS = [p for p in NOTEBOOK_SOURCES if re.search(r"^epochs\b", p.read_text(), re.M)]
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("module", ["artlib", "artlib.data", "artlib.data.prepare", "artlib.stages", "artlib.metrics",
                                    "artlib.rundir", "artlib.results", "artlib.train.config", "artlib.cli"])
def test_light_modules_do_not_import_torch(module: str) -> None:
    """The data layer, the study's definitions and the CLI's parser start without torch (prepare starts fast)."""
    code = f"import sys, {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0, f"importing {module} imports torch"


def test_no_library_function_is_longer_than_a_reader_can_hold() -> None:
    """Every function and method in artlib/ spans at most 60 lines (docstring included)."""
    long = []
    for path in sorted((ROOT / "artlib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def _import_cycles(package: str) -> list[list[str]]:
    """Every import cycle among the package's modules (imports inside functions count too), as module lists."""
    import grimp

    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        """Depth-first walk; an edge back into the current path closes a cycle."""
        state[module] = 1
        stack.append(module)
        for target in edges[module]:
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return cycles


def test_artlib_has_no_import_cycle() -> None:
    """No module of artlib imports, directly or through others, one that imports it back (function-level imports too)."""
    assert str(ROOT) == str(Path(__import__("artlib").__file__).resolve().parent.parent), "testing another checkout"
    assert _import_cycles("artlib") == []


def test_only_rundir_spells_the_run_directory_layout() -> None:
    """'seed_' (as in stages/<stage>/seed_<n>/) appears in no library module but artlib/rundir.py."""
    spelled = [f"{path.relative_to(ROOT)}:{i}" for path in sorted((ROOT / "artlib").rglob("*.py"))
               if path.name != "rundir.py" or path.parent.name != "artlib"
               for i, line in enumerate(path.read_text().splitlines(), 1) if "seed_" in line]
    assert spelled == []


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a module."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_only_rundir_spells_the_file_names_of_a_run() -> None:
    """Every file name of a run directory (manifest.csv, metrics.json, …) is a string in artlib/rundir.py only."""
    layout = ROOT / "artlib" / "rundir.py"
    names = {text for _, text in _string_constants(layout) if re.fullmatch(r"\.?\w+\.(csv|json|pt|lock)", text)}
    assert {"manifest.csv", "results.csv", "metrics.json", "model.pt", "predictions.csv"} <= names
    spelled = [f"{path.relative_to(ROOT)}:{line} {text}" for path in sorted((ROOT / "artlib").rglob("*.py"))
               if path != layout for line, text in _string_constants(path) if text in names]
    assert spelled == []


def test_only_the_tasks_module_tells_tasks_apart() -> None:
    """No `task == …` / `task != …` / `task in SOME_TASKS` branch outside artlib/tasks.py: code asks the Task."""
    branch = re.compile(r"""task\b["']?\]?\)?\s*(==|!=)|(==|!=)\s*\S*\btask\b|(?<!for )\btask\s+(not\s+)?in\s+[A-Z_]*TASKS""")
    found = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}" for path in sorted((ROOT / "artlib").rglob("*.py"))
             if path.name != "tasks.py" or path.parent.name != "artlib"
             for i, line in enumerate(path.read_text().splitlines(), 1) if branch.search(line)]
    assert found == []
    from artlib.stages import STAGES
    from artlib.tasks import TASKS

    assert {stage.task for stage in STAGES.values()} == set(TASKS)  # every stage resolves through the one registry


def test_one_function_sizes_the_caches() -> None:
    """Cache bytes come from artlib.train.cachefile.cache_bytes alone: no other module multiplies out an itemsize."""
    sizing = [f"{path.relative_to(ROOT)}:{i}" for path in sorted((ROOT / "artlib").rglob("*.py"))
              if path.name != "cachefile.py"
              for i, line in enumerate(path.read_text().splitlines(), 1) if "itemsize" in line]
    assert sizing == []
    users = {p.name for p in (ROOT / "artlib").rglob("*.py") if "cache_bytes(" in p.read_text()}
    assert {"features.py", "imagecache.py", "plan.py"} <= users


def test_every_library_function_has_a_docstring_and_type_hints() -> None:
    """Public and private functions alike say what they do and what they take and return (classes document __init__)."""
    missing = []
    for path in sorted((ROOT / "artlib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
                if node.name != "__init__" and (ast.get_docstring(node) is None or node.returns is None) \
                        or any(a.annotation is None for a in args):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert missing == []


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.stem)
def test_notebook_pairs_are_in_sync(source: Path) -> None:
    """Each .ipynb holds exactly the cells of its percent-format .py source (run `make notebooks` after editing)."""
    paired = jupytext.read(source)
    stored = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    cells = [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in paired.cells]
    stored_cells = [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in stored.cells]
    assert stored_cells == cells, f"{source.name} and its .ipynb differ: run `make notebooks` (or jupytext --sync)"


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.stem)
def test_notebook_cells_follow_the_conventions(source: Path) -> None:
    """One parameters cell of typed literals (data_root, run_dir); every code cell is checked or ignored by nbval."""
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assigned = {}
    for node in ast.parse(params[0].source).body:
        # typed assignments only, so `papermill --help-notebook` shows each parameter's type
        assert isinstance(node, ast.AnnAssign) and node.value is not None, "the parameters cell holds `name: type = …`"
        assigned[node.target.id] = ast.literal_eval(node.value)  # literals only
    assert {"data_root", "run_dir"} <= set(assigned)
    for cell in code:
        if cell is not params[0]:
            assert "# NBVAL_CHECK_OUTPUT" in cell.source or "# NBVAL_IGNORE_OUTPUT" in cell.source, cell.source[:80]
    assert all(not c.get("outputs") for c in params)
    # nbval compares only executed cells and fails a cell stored with outputs but no execution count
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run `make notebooks`"
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata


def _parameters(source: Path) -> dict:
    """The literal values of a notebook's parameters cell."""
    nb = jupytext.read(source)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {n.target.id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body}


@pytest.mark.parametrize("source", TRAINING_NOTEBOOKS, ids=lambda p: p.stem)
def test_training_notebook_defaults_are_trainconfigs(source: Path) -> None:
    """A training notebook's parameters that are TrainConfig fields carry TrainConfig's defaults (one source)."""
    params = _parameters(source)
    shared = {k: v for k, v in params.items() if k in defaults()}
    assert {"image_size", "epochs", "batch_size", "lr", "weights", "device"} <= set(shared)
    assert shared == {k: defaults()[k] for k in shared}


def test_parameter_profiles_only_name_known_parameters() -> None:
    """params/*.yaml override notebook parameters that exist, with values TrainConfig accepts."""
    known = set().union(*(_parameters(p) for p in NOTEBOOK_SOURCES))
    for profile in sorted((ROOT / "params").glob("*.yaml")):
        values = yaml.safe_load(profile.read_text())
        assert set(values) <= known, f"{profile.name}: unknown parameters {set(values) - known}"
        TrainConfig(**{k: v for k, v in values.items() if k in defaults()})  # valid settings


def test_command_line_defaults_are_trainconfigs() -> None:
    """`python -m artlib train` without options trains with TrainConfig()."""
    from artlib.cli import build_parser, train_config

    args = build_parser().parse_args(["train", "--run-dir", "x", "emotion_conv5"])
    assert train_config(args) == TrainConfig()


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.stem)
def test_the_series_passes_each_notebook_its_own_typed_parameters(source: Path) -> None:
    """`python -m artlib demo` hands a notebook exactly the parameters its (typed) parameters cell defines."""
    from artlib.series import _accepted

    assert _accepted(source.with_suffix(".ipynb"), {"run_dir": "x", "data_root": "demo", "no_such": 1}) == {
        "run_dir": "x", "data_root": "demo"}
