"""A node that sends terminal escapes: nothing it sends reaches the operator's terminal raw.

`FakeEscapingPython` is a deliberately misbehaving node: its `python` is a script that answers
probe and deploy with the real interpreter, but its `run` says hello as the deployed agent, then
sends a warning, an error and a cell result whose texts clear the screen (ESC[2J), set the
terminal title (OSC 0) and print a green "all gates pass" line, and exits. A healthy local node
runs beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sweep_harness import local_node, run_cli, spec_text, write_setup

from fleet_tui.config.inventory import Node
from node_agent.protocol import SCHEMA

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b[32mall gates pass (exit 0)\x1b[0m"


def _fake_escaping_python(tmp_path: Path) -> Path:
    hello = '{"schema": ' + str(SCHEMA) + ', "type": "hello", "agent_sha": "\'"$sha"\'"}'
    lines = [
        json.dumps({"schema": SCHEMA, "type": "warning", "code": "thermal", "message": HOSTILE}),
        json.dumps({"schema": SCHEMA, "type": "error", "code": "engine", "message": HOSTILE}),
    ]
    script = tmp_path / "escaping-python"
    body = "".join(f"  printf '%s\\n' '{line}'\n" for line in lines)
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$3" = run ]; then\n  read -r job\n'
        '  sha=$(basename "$2" .pyz | cut -d- -f2)\n'
        f"  echo '{hello}'\n{body}  exit 0\nfi\n"
        f'exec {sys.executable} "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_a_nodes_escape_codes_never_reach_the_terminal(sweep_env: dict[str, str], tmp_path: Path) -> None:
    hostile = Node(
        name="hostile",
        host="localhost",
        transport="local",
        python=str(_fake_escaping_python(tmp_path)),
        source="test",
    )
    inventory, spec_path, db = write_setup(tmp_path, [local_node(), hostile], spec_text())
    result = run_cli(["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], sweep_env)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output  # the hostile node's cells are lost: incomplete
    assert "\x1b" not in output and "\x07" not in output, output
    assert "\\x1b[2J" in output  # shown, escaped, so the operator sees what the node tried
    assert "(node says)" in output
    assert "Traceback" not in output
    assert "local: done mlp/b1/numpy:fp64" in output  # the healthy node finished its cell
