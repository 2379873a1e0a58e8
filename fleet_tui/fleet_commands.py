"""Headless fleet commands: `fleet-tui probe`, `fleet-tui deploy`, `fleet-tui selftest`.

Exit codes (DESIGN "Controller surface"): 0 ok, 1 a selftest check failed, 2 bad inventory or
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

from fleet_tui.transport.base import NodeError, SshSettings, as_node_error

if TYPE_CHECKING:
    from fleet_tui.inventory import Node
    from fleet_tui.probe import FleetConnections, ProbeResult

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3


def settings_from_args(args: argparse.Namespace) -> SshSettings:
    """SshSettings from the shared `--known-hosts`, `--accept-new-host-keys`, `--connect-timeout`."""
    known_hosts = getattr(args, "known_hosts", None)
    return SshSettings(
        known_hosts=Path(known_hosts).expanduser() if known_hosts else None,
        connect_timeout=float(getattr(args, "connect_timeout", None) or 10.0),
        accept_new_host_keys=bool(getattr(args, "accept_new_host_keys", False)),
    )


def load_nodes(args: argparse.Namespace) -> list[Node]:
    """The inventory named by --inventory (or the default chain). Raises InventoryError."""
    from fleet_tui.inventory import InventoryError, load_inventory, resolve_inventory_path

    path = resolve_inventory_path(getattr(args, "inventory", None))
    nodes = load_inventory(path)
    if not nodes:
        raise InventoryError(f"{path}: no [[node]] tables; nothing to do")
    return nodes


def _inventory_or_exit(args: argparse.Namespace) -> list[Node] | int:
    from fleet_tui.inventory import InventoryError

    try:
        return load_nodes(args)
    except InventoryError as exc:
        print(f"fleet-tui: bad inventory: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


# -- probe -------------------------------------------------------------------------------------


def _gib(value: object) -> str:
    return f"{value / 2**30:.0f} GiB" if isinstance(value, int | float) else "-"


def _cores(facts: dict[str, Any]) -> str:
    total, p, e = facts.get("cores_total"), facts.get("cores_p"), facts.get("cores_e")
    if p is not None and e is not None:
        return f"{p}P/{e}E"
    return f"{total}c" if total is not None else "-"


def _load(facts: dict[str, Any]) -> str:
    load = facts.get("load_avg")
    return f"{load[0]:.2f}" if isinstance(load, list) and load and isinstance(load[0], int | float) else "-"


def _clip(text: object, width: int) -> str:
    value = "-" if text is None or text == "" else str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


_OS_NAMES = {"macos": "macOS", "linux": "Linux"}


def _os_short(facts: dict[str, Any]) -> str:
    """ "macOS 14.5", or "Linux 6.1.0" (the kernel: a distribution name does not fit), as the TUI."""
    os_name = facts.get("os")
    if not os_name:
        return ""
    kernel = facts.get("kernel")
    if os_name != "macos" and kernel:
        version: object = str(kernel).split("-")[0]
    else:
        version = facts.get("os_version")
    pretty = _OS_NAMES.get(str(os_name), str(os_name))
    return f"{pretty} {version}" if version else pretty


def format_probe_line(result: ProbeResult, name_width: int) -> str:
    """One aligned human line: name, chip, cores, memory, OS, thermal, load, RTT, status."""
    facts = result.facts or {}
    os_text = _os_short(facts)
    rtt = f"{result.rtt_ms:.1f}ms" if result.rtt_ms is not None else "-"
    if result.ok:
        status = "ok"
        if result.deploy is not None and result.deploy.status != "present":
            status += f" (agent {result.deploy.status.replace('_', ' ')})"
    else:
        assert result.error is not None
        status = f"{result.error.kind}: {result.error.message}"
    line = (
        f"{result.node.name:<{name_width}}  {_clip(facts.get('chip'), 28):<28}  {_cores(facts):>7}  "
        f"{_gib(facts.get('memory_bytes')):>8}  {_clip(os_text, 16):<16}  "
        f"{_clip(facts.get('thermal_pressure'), 9):<9}  {_load(facts):>6}  {rtt:>8}  {status}"
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
    from fleet_tui.probe import probe_fleet

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
                print(format_probe_line(result, name_width), file=out, flush=True)
            for note in _notes(result):
                print(note, file=err if as_json else out, flush=True)
    summary = summarize(results, time.perf_counter() - started)
    print(json.dumps(summary) if as_json else format_summary(summary), file=out, flush=True)
    return EXIT_OK if all(r.ok for r in results) else EXIT_INCOMPLETE


def cmd_probe(args: argparse.Namespace) -> int:
    nodes = _inventory_or_exit(args)
    if isinstance(nodes, int):
        return nodes
    results: list[ProbeResult] = []
    code = asyncio.run(
        probe_and_print(
            nodes,
            settings_from_args(args),
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
    from fleet_tui.paths import resolve_db_path
    from fleet_tui.store import Store, StoreError

    probed = [r for r in results if r.ok and r.facts]
    if not probed:
        return
    path = resolve_db_path(db_arg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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
    from fleet_tui.deploy import DeployResult, deploy_agent
    from fleet_tui.probe import FleetConnections

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
            print(json.dumps(record) if as_json else text, file=out, flush=True)
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
    return EXIT_INCOMPLETE if failures else EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    nodes = _inventory_or_exit(args)
    if isinstance(nodes, int):
        return nodes
    return asyncio.run(
        deploy_and_print(nodes, settings_from_args(args), as_json=bool(args.json), out=sys.stdout)
    )


# -- selftest ----------------------------------------------------------------------------------


def _checks_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    facts = event.get("facts")
    checks = event.get("checks") if "checks" in event else (facts or {}).get("checks")
    return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []


async def selftest_node(node: Node, pool: FleetConnections) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the agent's selftest on a node: (checks, agent error messages). Raises NodeError."""
    from fleet_tui.agent_client import agent_events

    transport = await pool.transport(node)
    remote, _ = await pool.agent_path(node, transport)
    checks: list[dict[str, Any]] = []
    errors: list[str] = []
    async with contextlib.aclosing(agent_events(transport, remote, "selftest")) as stream:
        async for event in stream:
            if event["type"] == "facts":
                checks.extend(_checks_of(event))
            elif event["type"] in ("error", "warning"):
                errors.append(f"{event['type']} {event.get('code')}: {event.get('message')}")
    return checks, errors


async def selftest_and_print(
    nodes: Sequence[Node], settings: SshSettings, *, as_json: bool, out: IO[str]
) -> int:
    from fleet_tui.probe import FleetConnections

    any_failed_check = False
    failures = 0
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
            print(f"== {node.name}", file=out)
            if error is not None:
                print(f"  {error.kind}: {error.message}", file=out)
            width = max((len(str(c.get("name", ""))) for c in checks), default=0)
            for check in checks:
                status = str(check.get("status", "?"))
                print(
                    f"  {status.upper():<7} {str(check.get('name')):<{width}}  {check.get('detail') or ''}",
                    file=out,
                )
            for message in errors:
                print(f"  {message}", file=out)
            if error is None and not checks:
                print("  (the agent reported no checks)", file=out)
            out.flush()
    if failures:
        return EXIT_INCOMPLETE
    return EXIT_CHECK_FAILED if any_failed_check else EXIT_OK


def cmd_selftest(args: argparse.Namespace) -> int:
    nodes = _inventory_or_exit(args)
    if isinstance(nodes, int):
        return nodes
    return asyncio.run(
        selftest_and_print(nodes, settings_from_args(args), as_json=bool(args.json), out=sys.stdout)
    )


__all__ = [
    "cmd_deploy",
    "cmd_probe",
    "cmd_selftest",
    "deploy_and_print",
    "probe_and_print",
    "selftest_and_print",
    "settings_from_args",
]
