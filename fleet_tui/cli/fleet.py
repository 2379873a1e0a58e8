"""Headless fleet commands: `fleet-tui probe`, `fleet-tui deploy`, `fleet-tui selftest`.

Exit codes (docs/DESIGN.md, "Controller surface"): 0 ok, 1 a selftest check failed, 2 bad inventory or
settings, 3 incomplete (at least one node failed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fleet_tui.config.settings import SshSettings, load_nodes, settings_from_args
from fleet_tui.display import (
    LINE_LIMIT,
    clean,
    clip,
    format_cores,
    format_load,
    format_memory,
    format_os,
    format_rtt_ms,
    show,
)
from fleet_tui.fleet.transport.base import NodeError, as_node_error
from fleet_tui.model.exit_codes import ExitCode

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.fleet.probe import ProbeResult
    from fleet_tui.fleet.session import FleetConnections


def _inventory_or_exit(args: argparse.Namespace) -> list[Node] | int:
    from fleet_tui.config.inventory import InventoryError

    try:
        return load_nodes(args)
    except InventoryError as exc:
        print(f"fleet-tui: bad inventory: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT


def _settings_or_exit(args: argparse.Namespace, nodes: Sequence[Node]) -> SshSettings | int:
    from fleet_tui.cli.common import known_hosts_error

    settings = settings_from_args(args)
    problem = known_hosts_error(settings, nodes)
    if problem is not None:
        print(f"fleet-tui: {problem}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    return settings


# -- probe -------------------------------------------------------------------------------------


def _clip(text: object, width: int) -> str:
    return clip(show(text, "-"), width)


def format_probe_line(result: ProbeResult, name_width: int) -> str:
    """One aligned human line: name, chip, cores, memory, OS, thermal, load, RTT, status."""
    facts = result.facts or {}
    os_text = format_os(facts, "-")
    rtt = format_rtt_ms(result.rtt_ms, "-")
    cores, memory, load = (
        format_cores(facts, "-"),
        format_memory(facts.get("memory_bytes"), "-"),
        format_load(facts, "-"),
    )
    if result.ok:
        status = "ok"
        if result.deploy is not None and result.deploy.status != "present":
            status += f" (agent {result.deploy.status.replace('_', ' ')})"
    else:
        assert result.error is not None
        status = f"{result.error.kind}: {result.error.message}"
    line = (
        f"{result.node.name:<{name_width}}  {_clip(facts.get('chip'), 28):<28}  {cores:>7}  "
        f"{memory:>8}  {_clip(os_text, 16):<16}  "
        f"{_clip(facts.get('thermal_pressure'), 9):<9}  {load:>6}  {rtt:>8}  {status}"
    )
    return line


def format_probe_header(name_width: int) -> str:
    return (
        f"{'NODE':<{name_width}}  {'CHIP':<28}  {'CORES':>7}  {'MEMORY':>8}  {'OS':<16}  "
        f"{'THERMAL':<9}  {'LOAD':>6}  {'RTT':>8}  STATUS"
    )


def _notes(result: ProbeResult) -> list[str]:
    notes: list[str] = []
    name = result.node.name
    if result.host_key_accepted is not None:
        info = result.host_key_accepted
        notes.append(
            f"{name}: trusted new host key {info.key_type} {info.fingerprint} ({info.line.split()[0]})"
        )
    if result.deploy is not None and result.deploy.status == "replaced_tampered":
        notes.append(
            f"WARNING {name}: {result.deploy.remote_path} did not match its hash (modified on the node); "
            "replaced it"
        )
    if result.tier_note:
        notes.append(f"note {name}: {result.tier_note}")
    return notes


def summarize(results: Sequence[ProbeResult], wall_s: float) -> dict[str, Any]:
    failed = Counter(str(r.error.kind) for r in results if r.error is not None)
    return {
        "type": "summary",
        "ok": sum(1 for r in results if r.ok),
        "failed": dict(sorted(failed.items())),
        "nodes": len(results),
        "wall_s": round(wall_s, 3),
    }


def format_summary(summary: dict[str, Any]) -> str:
    failed: dict[str, int] = summary["failed"]
    total_failed = sum(failed.values())
    detail = ", ".join(f"{kind} {count}" for kind, count in failed.items())
    text = f"ok {summary['ok']}, failed {total_failed}"
    if detail:
        text += f" ({detail})"
    return text + f" in {summary['wall_s']:.2f} s"


async def probe_and_print(
    nodes: Sequence[Node],
    settings: SshSettings,
    *,
    as_json: bool,
    out: IO[str],
    err: IO[str],
    connections: FleetConnections | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
) -> int:
    """Probe, print each result as it arrives, then the summary. Returns the exit code."""
    from fleet_tui.fleet.probe import probe_fleet

    started = time.perf_counter()
    name_width = max(len(n.name) for n in nodes)
    if not as_json:
        print(format_probe_header(name_width), file=out, flush=True)
    results: list[ProbeResult] = []
    async with contextlib.aclosing(probe_fleet(nodes, settings, connections)) as stream:
        async for result in stream:
            results.append(result)
            if on_result is not None:
                on_result(result)
            if as_json:
                print(json.dumps({"type": "result", **result.to_dict()}, default=str), file=out, flush=True)
            else:
                print(clean(format_probe_line(result, name_width), LINE_LIMIT), file=out, flush=True)
            for note in _notes(result):
                print(clean(note, LINE_LIMIT), file=err if as_json else out, flush=True)
    summary = summarize(results, time.perf_counter() - started)
    print(json.dumps(summary) if as_json else format_summary(summary), file=out, flush=True)
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.INCOMPLETE


def cmd_probe(args: argparse.Namespace) -> int:
    nodes = _inventory_or_exit(args)
    if isinstance(nodes, int):
        return nodes
    settings = _settings_or_exit(args, nodes)
    if isinstance(settings, int):
        return settings
    results: list[ProbeResult] = []
    code = asyncio.run(
        probe_and_print(
            nodes,
            settings,
            as_json=bool(args.json),
            out=sys.stdout,
            err=sys.stderr,
            on_result=results.append,
        )
    )
    record_facts(args.db, results, err=sys.stderr)
    return code


def record_facts(db_arg: str | None, results: Sequence[ProbeResult], *, err: IO[str]) -> None:
    """Keep every probed node's facts in the store: `sweep --dry-run` plans unsupported cells
    from them. A store that cannot be written costs the operator a warning, never the probe."""
    from fleet_tui.paths import make_private_dir, resolve_db_path
    from fleet_tui.store import Store, StoreError

    probed = [r for r in results if r.ok and r.facts]
    if not probed:
        return
    path = resolve_db_path(db_arg)
    try:
        make_private_dir(path.parent)
        with Store.open(path) as store:
            for result in probed:
                assert result.facts is not None
                store.add_probe(result.node.name, result.facts)
    except (OSError, StoreError) as exc:
        print(f"warning: facts not recorded in {path}: {exc}", file=err)


# -- deploy ------------------------------------------------------------------------------------


async def deploy_and_print(
    nodes: Sequence[Node],
    settings: SshSettings,
    *,
    as_json: bool,
    out: IO[str],
    agent_cache_dir: Path | None = None,
) -> int:
    """Deploy the agent to every node concurrently; one line per node as each finishes."""
    from fleet_tui.fleet.deploy import DeployResult, deploy_agent
    from fleet_tui.fleet.session import FleetConnections

    started = time.perf_counter()
    name_width = max(len(n.name) for n in nodes)
    failures: Counter[str] = Counter()
    async with FleetConnections(settings, agent_cache_dir=agent_cache_dir) as pool:
        bundle = pool.bundle()

        async def one(node: Node) -> DeployResult | NodeError:
            try:
                return await deploy_agent(await pool.transport(node), bundle)
            except Exception as exc:  # one node's failure stays on its own line
                return as_node_error(exc, node.name, "deploy")

        if not as_json:
            print(f"agent {bundle.name} ({bundle.path.stat().st_size} bytes)", file=out, flush=True)
        for next_done in asyncio.as_completed([one(n) for n in nodes]):
            outcome = await next_done
            if isinstance(outcome, NodeError):
                failures[str(outcome.kind)] += 1
                record: dict[str, Any] = {"type": "result", "node": outcome.node, "error": outcome.to_dict()}
                text = f"{outcome.node:<{name_width}}  {outcome.kind}: {outcome.message}"
            else:
                record = {"type": "result", **outcome.to_dict()}
                label = {
                    "uploaded": "uploaded",
                    "present": "already present",
                    "replaced_tampered": "REPLACED (was modified on the node)",
                }[outcome.status]
                text = (
                    f"{outcome.node:<{name_width}}  {label:<16}  {outcome.bytes:>9} bytes  "
                    f"{outcome.seconds:6.2f} s  {outcome.remote_path}"
                )
            print(json.dumps(record) if as_json else clean(text, LINE_LIMIT), file=out, flush=True)
    wall = time.perf_counter() - started
    ok = len(nodes) - sum(failures.values())
    summary = {
        "type": "summary",
        "ok": ok,
        "failed": dict(failures),
        "nodes": len(nodes),
        "wall_s": round(wall, 3),
    }
    print(json.dumps(summary) if as_json else format_summary(summary), file=out, flush=True)
    return ExitCode.INCOMPLETE if failures else ExitCode.OK


def cmd_deploy(args: argparse.Namespace) -> int:
    nodes = _inventory_or_exit(args)
    if isinstance(nodes, int):
        return nodes
    settings = _settings_or_exit(args, nodes)
    if isinstance(settings, int):
        return settings
    return asyncio.run(deploy_and_print(nodes, settings, as_json=bool(args.json), out=sys.stdout))


# -- selftest ----------------------------------------------------------------------------------


async def selftest_and_print(
    nodes: Sequence[Node], settings: SshSettings, *, as_json: bool, out: IO[str]
) -> int:
    from fleet_tui.fleet.selftest import check_counts, selftest_node
    from fleet_tui.fleet.session import FleetConnections

    any_failed_check = False
    failures = 0
    totals: Counter[str] = Counter()
    async with FleetConnections(settings) as pool:

        async def one(node: Node) -> tuple[Node, list[dict[str, Any]], list[str], NodeError | None]:
            try:
                checks, errors = await selftest_node(node, pool)
                return node, checks, errors, None
            except Exception as exc:  # one node's failure stays in its own section
                return node, [], [], as_node_error(exc, node.name, "selftest")

        for next_done in asyncio.as_completed([one(n) for n in nodes]):
            node, checks, errors, error = await next_done
            if error is not None:
                failures += 1
            any_failed_check |= any(c.get("status") == "fail" for c in checks)
            totals.update(check_counts(checks))
            if as_json:
                record = {
                    "type": "result",
                    "node": node.name,
                    "checks": checks,
                    "messages": errors,
                    "error": error.to_dict() if error else None,
                }
                print(json.dumps(record, default=str), file=out, flush=True)
                continue
            print(f"== {clean(node.name)}", file=out)
            if error is not None:
                print(clean(f"  {error.kind}: {error.message}", LINE_LIMIT), file=out)
            width = max((len(str(c.get("name", ""))) for c in checks), default=0)
            for check in checks:
                status = str(check.get("status", "?"))
                line = f"  {status.upper():<7} {str(check.get('name')):<{width}}  {check.get('detail') or ''}"
                print(clean(line, LINE_LIMIT), file=out)
            for message in errors:
                print(clean(f"  {message} (node says)", LINE_LIMIT), file=out)
            if error is None and not checks:
                print("  (the agent reported no checks)", file=out)
            out.flush()
    if not as_json:
        unreached = f", {failures} node(s) not checked" if failures else ""
        print(
            f"selftest: {totals['pass']} pass, {totals['fail']} fail, {totals['skipped']} "
            f"skipped on {len(nodes)} node(s){unreached}",
            file=out,
            flush=True,
        )
    if failures:
        return ExitCode.INCOMPLETE
    return ExitCode.GATE_FAILED if any_failed_check else ExitCode.OK


def cmd_selftest(args: argparse.Namespace) -> int:
    nodes = _inventory_or_exit(args)
    if isinstance(nodes, int):
        return nodes
    settings = _settings_or_exit(args, nodes)
    if isinstance(settings, int):
        return settings
    return asyncio.run(selftest_and_print(nodes, settings, as_json=bool(args.json), out=sys.stdout))


__all__ = [
    "cmd_deploy",
    "cmd_probe",
    "cmd_selftest",
    "deploy_and_print",
    "probe_and_print",
    "selftest_and_print",
]
