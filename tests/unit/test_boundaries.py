"""The architecture's boundaries, enforced (docs/DESIGN.md, "Architecture"):

- the node agent's core imports only the standard library, so `probe` runs on a bare Python;
  numpy / mlx / coremltools are imported lazily, inside engine and workload code;
- `fleet_tui` outside `fleet_tui/app/` never imports textual (the core stays headless);
- the controller process never imports coremltools or mlx (heavy work runs in agent
  subprocesses);
- `fleet-tui --help` pays for argparse only.

Each rule is checked twice: statically over every import statement (so a lazy import in a
rarely-run function cannot sneak through) and at run time over `sys.modules` in a fresh
interpreter (so an indirect import through a third module is caught too).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
HEAVY = {"numpy", "mlx", "coremltools", "scipy", "torch"}

# Modules of node_agent that must be importable on a bare Python (no third-party packages,
# even lazily at import time). Engines and workload implementations are not core.
AGENT_CORE_EXCLUDED_DIRS = {"engines"}
AGENT_CORE_EXCLUDED_FILES = {
    # workload implementations and the op backends import numpy at module level by design;
    # they are only imported by engines and by `build`.
    "node_agent/workloads/ops_numpy.py",
    "node_agent/workloads/ops_mlx.py",
    "node_agent/workloads/ops_mil.py",
    "node_agent/workloads/mlp.py",
    "node_agent/workloads/convnet.py",
    "node_agent/workloads/decoder_step.py",
    "node_agent/workloads/minilm.py",
}


def _py_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, *, module_level_only: bool) -> list[tuple[int, str]]:
    """(line, top-level package) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes: list[ast.AST] = list(ast.walk(tree))
    if module_level_only:
        # Include imports nested in module-level if/try blocks, not those inside functions.
        stack: list[ast.AST] = list(tree.body)
        nodes = []
        while stack:
            node = stack.pop()
            nodes.append(node)
            if isinstance(node, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    stack.extend(getattr(node, field, []))
            elif isinstance(node, ast.ExceptHandler):
                stack.extend(node.body)
    found: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _agent_core_files() -> list[Path]:
    return [
        p
        for p in _py_files("node_agent")
        if not (set(p.relative_to(ROOT / "node_agent").parts[:-1]) & AGENT_CORE_EXCLUDED_DIRS)
        and _rel(p) not in AGENT_CORE_EXCLUDED_FILES
    ]


def test_agent_core_imports_only_stdlib_at_module_level() -> None:
    offenders = [
        f"{_rel(p)}:{line} imports {name}"
        for p in _agent_core_files()
        for line, name in _imports(p, module_level_only=True)
        if name not in STDLIB and name != "node_agent"
    ]
    assert not offenders, "node_agent core must be stdlib only:\n" + "\n".join(offenders)


def test_agent_never_imports_controller_side_libraries() -> None:
    forbidden = {"fleet_tui", "textual", "rich", "asyncssh"}
    offenders = [
        f"{_rel(p)}:{line} imports {name}"
        for p in _py_files("node_agent")
        for line, name in _imports(p, module_level_only=False)
        if name in forbidden
    ]
    assert not offenders, "\n".join(offenders)


def test_controller_core_never_imports_textual() -> None:
    offenders = [
        f"{_rel(p)}:{line} imports {name}"
        for p in _py_files("fleet_tui")
        if "app" not in p.relative_to(ROOT / "fleet_tui").parts[:-1]
        for line, name in _imports(p, module_level_only=False)
        if name in {"textual", "rich"}
    ]
    assert not offenders, "only fleet_tui/app may import textual:\n" + "\n".join(offenders)


def test_controller_never_imports_coremltools_or_mlx() -> None:
    offenders = [
        f"{_rel(p)}:{line} imports {name}"
        for p in _py_files("fleet_tui")
        for line, name in _imports(p, module_level_only=False)
        if name in {"coremltools", "mlx"}
    ]
    assert not offenders, "run heavy work in an agent subprocess:\n" + "\n".join(offenders)


def _loaded_after_importing(modules: list[str]) -> set[str]:
    """Top-level packages in sys.modules after importing `modules` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    baseline = "import json, sys; print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))"
    loaded: list[set[str]] = []
    for source in (baseline, code):
        proc = subprocess.run(
            [sys.executable, "-c", source], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        loaded.append(set(json.loads(proc.stdout)))
    # What a bare interpreter loads anyway (site hooks such as _distutils_hack) is not ours.
    return loaded[1] - loaded[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_agent_core_loads_no_third_party_module_at_run_time() -> None:
    modules = [_module_name(p) for p in _agent_core_files() if p.name != "__main__.py"]
    modules.append("node_agent.__main__")
    loaded = _loaded_after_importing(modules)
    third_party = sorted(m for m in loaded if m not in STDLIB and m not in {"node_agent"})
    assert not third_party, f"importing the agent core loaded {third_party}"


def test_controller_process_loads_neither_textual_outside_app_nor_heavy_libraries() -> None:
    core = [
        _module_name(p)
        for p in _py_files("fleet_tui")
        if "app" not in p.relative_to(ROOT / "fleet_tui").parts[:-1] and p.name != "__main__.py"
    ]
    loaded = _loaded_after_importing(core)
    assert "textual" not in loaded
    assert not loaded & HEAVY, f"controller core loaded {sorted(loaded & HEAVY)}"

    app = [_module_name(p) for p in _py_files("fleet_tui/app")]
    assert app, "fleet_tui/app has no modules"
    loaded_with_app = _loaded_after_importing(core + app)
    assert not loaded_with_app & HEAVY, f"the TUI loaded {sorted(loaded_with_app & HEAVY)}"


def test_cli_start_up_imports_only_argparse_level_modules() -> None:
    loaded = _loaded_after_importing(["fleet_tui.cli"])
    expensive = {"textual", "asyncssh", "numpy", "sqlite3", "cryptography"} & loaded
    assert not expensive, f"`fleet-tui --help` would pay for {sorted(expensive)}"


def test_layers_contract_holds() -> None:
    """`lint-imports` (import-linter, contract in pyproject) passes: no layer imports one above it.

    What import-linter cannot say (stdlib-only agent core, no heavy libraries in the controller,
    textual only under app/) is checked by the tests above."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), "import-linter is a dev dependency: pip install -e '.[dev]'"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fleet_tui layers KEPT" in done.stdout, done.stdout
