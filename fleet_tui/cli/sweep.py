"""`fleet-tui sweep SPEC` and `fleet-tui runs`: the headless sweep commands.

sweep: validate the spec and the inventory (bad input: one clear message, exit 2, nothing
written), plan (--dry-run prints it and exits 0), build the artifacts locally, then run the
scheduler (fleet_tui.sweep.scheduler) with live progress, print the gate verdicts, write JUnit.
SIGINT / SIGTERM stop it promptly: agents terminated, data kept, run `interrupted`, exit 130.

Exit codes: 0 all gates pass, 1 a gate failed, 2 bad input, 3 incomplete, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from fleet_tui.display import LINE_LIMIT, clean
from fleet_tui.model.exit_codes import ExitCode
from fleet_tui.sweep.scheduler import Interrupted, SweepResult

if TYPE_CHECKING:
    from fleet_tui.analysis.gates import GateReport
    from fleet_tui.config.inventory import Node
    from fleet_tui.config.spec import SweepSpec
    from fleet_tui.store import CellRow, RunSummary, Store


def _fail(message: str) -> int:
    print(f"fleet-tui sweep: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def _existing_store(db_arg: str | None) -> Store | None:
    """The store if its file exists (never creates one); None otherwise."""
    from fleet_tui.paths import resolve_db_path
    from fleet_tui.store import Store

    path = resolve_db_path(db_arg)
    # Anything there that is not a file (a directory, a FIFO) is refused by Store.open, by name.
    return Store.open(path) if path.exists() else None


def cmd_sweep(args: argparse.Namespace) -> int:
    """`fleet-tui sweep` (see the module doc)."""
    from fleet_tui.config.inventory import InventoryError
    from fleet_tui.config.settings import load_nodes, settings_from_args
    from fleet_tui.config.spec import SpecError, load_spec
    from fleet_tui.store import StoreError
    from fleet_tui.sweep.launch import ResumeError, read_resumable
    from fleet_tui.sweep.plan import build_plan

    resume: int | None = None
    store: Store | None = None
    try:
        if args.resume is not None:
            if args.spec:
                return _fail("--resume takes the spec stored with the run; do not give SPEC as well")
            resume = int(args.resume)  # the parser checked it (a run id in [1, 2**63 - 1])
            store = _existing_store(args.db)
            if store is None:
                return _fail(f"--resume {resume}: no store at {args.db or 'the default location'}")
            inventory = load_nodes(args)
            resumable = read_resumable(store, resume, inventory)
            record, spec = resumable.record, resumable.spec
        elif not args.spec:
            return _fail("give a SPEC file (or --resume RUN)")
        else:
            spec = load_spec(args.spec)
            inventory = load_nodes(args)
        plan = build_plan(spec, inventory)
    except (SpecError, InventoryError, StoreError, ResumeError) as exc:
        if store is not None:
            store.close()
        return _fail(str(exc))

    targets = [n for n in inventory if n.name in plan.nodes]
    if resume is not None:
        assert store is not None
        unfinished, targets = resumable.unfinished, resumable.targets
        if not unfinished and record.status == "complete" and not (args.junit or args.json):
            # Re-running the scheduler would only restamp the finished run (its duration grew).
            # --json / --junit still go through it: scripts expect its sweep_finished line / file.
            store.close()
            code = record.exit_code if record.exit_code is not None else 0
            verdict = {0: "its gates passed", 1: "a gate failed"}.get(code, "its stored outcome")
            print(
                f"run {resume} is already complete: nothing to resume; exit {code} is the run's stored "
                f"verdict ({verdict}; `fleet-tui runs` shows it)"
            )
            return code
        if args.dry_run:
            print(f"run {resume}: {len(unfinished)} unfinished cell(s) would run:")
            for cell in unfinished:
                print(f"  {cell.node}  {cell.key}  {cell.state}  attempts={cell.attempts}")
            store.close()
            return 0
    elif args.dry_run:
        try:
            existing = _existing_store(args.db)
        except StoreError as exc:
            return _fail(str(exc))
        facts: dict[str, dict[str, Any]] = {}
        if existing is not None:
            with existing:
                facts = existing.latest_facts(plan.nodes)
                plan = build_plan(spec, inventory, facts)
        print(plan.table())
        from fleet_tui.sweep.launch import artifact_estimate_text

        print(artifact_estimate_text(spec, plan))
        unknown = [node for node in plan.nodes if node not in facts]
        if unknown:
            print(
                f"facts unknown for {', '.join(unknown)}: cells they cannot run (e.g. Core ML off macOS) "
                "show as pending here; `fleet-tui probe` records them"
            )
        return 0

    if resume is not None:
        assert store is not None
        try:
            # Held until the store closes: a second resume of this run now refuses (exit 2)
            # instead of taking this one's running cells for a dead sweep's and marking them lost.
            lock = store.lock_run(resume)
        except StoreError as exc:
            store.close()
            return _fail(f"--resume {resume}: {exc}")
        if lock.previous is not None:
            print(
                f"fleet-tui sweep: took over the lock of run {resume} from {lock.previous.describe()}, "
                "which is no longer running",
                file=sys.stderr,
            )
    from fleet_tui.cli.common import known_hosts_error

    settings = settings_from_args(args)
    problem = known_hosts_error(settings, targets)
    if problem is not None:
        if store is not None:
            store.close()
        return _fail(problem)
    if store is None:
        # Open (create) the store before building artifacts: a bad --db fails at once, exit 2.
        from fleet_tui.store import Store

        try:
            store = Store.open(args.db)
        except StoreError as exc:
            return _fail(str(exc))
    try:
        return asyncio.run(_sweep(args, spec, targets, resume, store, settings))
    finally:
        if store is not None:
            store.close()


def _install_stop(stop: asyncio.Event, caught: list[str]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):

        def handler(sig: signal.Signals = sig) -> None:
            caught.append(sig.name)
            stop.set()

        loop.add_signal_handler(sig, handler)


async def _sweep(
    args: argparse.Namespace,
    spec: SweepSpec,
    targets: list[Node],
    resume: int | None,
    store: Store | None,
    settings: Any,
) -> int:
    from fleet_tui.cli.progress import make_progress
    from fleet_tui.fleet.session import FleetConnections
    from fleet_tui.store import Store, StoreError
    from fleet_tui.sweep.artifacts import ArtifactBuildError, coreml_precisions
    from fleet_tui.sweep.launch import build_artifacts, buildable_workloads, sweep_versions
    from fleet_tui.sweep.scheduler import run_sweep

    stop = asyncio.Event()
    caught: list[str] = []
    _install_stop(stop, caught)
    progress = make_progress([n.name for n in targets], as_json=args.json)
    out = sys.stdout
    # A workload whose artifact cannot be built here has only unsupported cells (build_plan).
    workloads = buildable_workloads(spec)
    try:
        artifacts = await build_artifacts(workloads, coreml_precisions(spec.engines), progress, stop)
    except ArtifactBuildError as exc:
        progress.close()
        return _fail(str(exc))
    except Interrupted:
        progress.close()
        print("interrupted while building artifacts; nothing was stored", file=sys.stderr)
        return ExitCode.INTERRUPTED
    try:
        owned = store is None
        db = store if store is not None else Store.open(args.db)
    except StoreError as exc:
        progress.close()
        return _fail(str(exc))
    try:
        async with FleetConnections(settings) as connections:
            versions = sweep_versions(connections, artifacts)
            try:
                result = await run_sweep(
                    db,
                    spec,
                    targets,
                    artifacts,
                    connections,
                    progress,
                    stop,
                    resume_run=resume,
                    versions=versions,
                    strict=bool(getattr(args, "strict", False)),
                )
            except Interrupted as exc:
                progress.close()
                print(f"interrupted while {exc.what}; nothing was stored", file=sys.stderr)
                return ExitCode.INTERRUPTED
            except StoreError as exc:
                # The controller's own failure (a locked or full database, ...): no node is blamed.
                progress.close()
                return _fail(f"the store failed during the sweep: {exc}")
        progress.close()
        result.interrupted_signal = caught[0] if caught else None
        if args.junit:
            from fleet_tui.export.junit import junit_for_run, write_junit

            assert result.run_id is not None
            write_junit(args.junit, junit_for_run(db, result.run_id))
        if args.json:
            print(json.dumps(result_json(result), separators=(",", ":")), file=out, flush=True)
        else:
            if result.run_id is not None:
                print_results_table(db, result.run_id, result.report, out)
            print_result(result, out)
        return result.exit_code
    finally:
        if owned:
            db.close()


def result_json(result: SweepResult) -> dict[str, Any]:
    """The final `--json` line: the run's outcome."""
    return {
        "type": "sweep_finished",
        "run_id": result.run_id,
        "status": result.status,
        "exit_code": result.exit_code,
        "signal": result.interrupted_signal,
        "cells": result.cells,
        "gates": result.report.counts(),
        "inconclusive": [
            {"gate": v.gate, "node": v.node, "cell": v.cell_key, "detail": v.detail}
            for v in result.report.inconclusive
        ],
        "failures": [
            {
                "gate": v.gate,
                "node": v.node,
                "workload": v.workload,
                "bucket": v.bucket,
                "cell": v.cell_key,
                "value": v.value,
                "threshold": v.threshold,
                "detail": v.detail,
            }
            for v in result.report.failures
        ],
        "problem_cells": [
            {"node": c.node, "cell": c.key, "state": c.state, "reason": c.reason}
            for c in result.problem_cells
        ],
        "nodes": {
            name: {
                "lost": r.lost,
                "skipped_busy": r.skipped_busy,
                "error": r.error,
                "wall_s": round(r.wall_s, 3),
                "agent_s": round(r.agent_s, 3),
                "launch_s": round(r.launch_s, 3),
                "measured_s": round(r.measured_s, 3),
                "jobs": r.jobs,
                "retries": r.retries,
                "busy_wait_s": round(r.busy_wait_s, 3),
            }
            for name, r in result.nodes.items()
        },
        "wall_s": round(result.wall_s, 3),
    }


def print_results_table(store: Store, run_id: int, report: GateReport, out: IO[str]) -> None:
    """Every cell's result (p50, p95 with its interval, n, flags, gates), then why gates were skipped."""
    from fleet_tui.display import format_ns_as_ms
    from fleet_tui.sweep.scheduler import result_figures

    gates_by_cell: dict[int, list[str]] = {}
    skipped: dict[tuple[str, str], int] = {}
    for v in report.verdicts:
        if v.verdict == "skipped":
            skipped[(v.gate, v.detail)] = skipped.get((v.gate, v.detail), 0) + 1
        elif v.cell_id is not None:
            gates_by_cell.setdefault(v.cell_id, []).append(f"{v.gate} {v.verdict}")
    header: tuple[str, ...] = ("NODE", "CELL", "STATE", "P50", "P95 (95% CI)", "N", "FLAGS", "GATES")
    rows: list[tuple[str, ...]] = [header]
    cells = store.cells_for(run_id)
    summaries = {cell.id: store.result(cell.id) or {} if cell.state == "done" else {} for cell in cells}
    with_energy = any(isinstance(s.get("energy"), Mapping) for s in summaries.values())
    if with_energy:
        rows[0] = header = (*header[:6], "SoC J/INF (95% CI)", "SoC W / SYS W", *header[6:])
    for cell in cells:
        summary = summaries[cell.id]
        figures = result_figures(summary) if summary else {}
        p95 = figures.get("p95")
        p95_text = "-"
        if p95:
            ci = p95["ci95"]
            p95_text = format_ns_as_ms(summary.get("p95")) + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        row: tuple[str, ...] = (
            cell.node,
            cell.key,
            cell.state,
            format_ns_as_ms(summary.get("p50")) if summary else "-",
            p95_text,
            str(summary.get("n", "-")) if summary else "-",
            ",".join(figures.get("flags") or []) or "-",
            ", ".join(gates_by_cell.get(cell.id, [])) or "-",
        )
        if with_energy:
            row = (*row[:6], *energy_texts(summary.get("energy")), *row[6:])
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print("", file=out)
    for row in rows:
        line = "  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True)).rstrip()
        print(clean(line, LINE_LIMIT), file=out)
    for (gate, why), count in sorted(skipped.items()):
        print(clean(f"  {gate} skipped on {count} cell(s): {why}", LINE_LIMIT), file=out)


def energy_texts(energy: object) -> tuple[str, str]:
    """A summary's energy as ("J/inference (interval)", "SoC W / system W"), or why there is none."""
    if not isinstance(energy, Mapping):
        return "-", "-"
    if energy.get("status") != "ok":
        return str(energy.get("status")), "-"

    def num(value: object) -> str:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return f"{value:.4g}" if ok else "-"

    per_inference = energy.get("j_per_inference")
    soc = per_inference.get("soc") if isinstance(per_inference, Mapping) else None
    joules = "-"
    if isinstance(soc, Mapping):
        joules = num(soc.get("estimate"))
        if soc.get("lo") is not None and soc.get("hi") is not None:
            joules += f" ({num(soc.get('lo'))}-{num(soc.get('hi'))})"
    watts = energy.get("avg_watts") if isinstance(energy.get("avg_watts"), Mapping) else {}
    assert isinstance(watts, Mapping)
    return joules, f"{num(watts.get('soc'))} / {num(watts.get('system'))}"


def print_result(result: SweepResult, out: IO[str]) -> None:
    """The human summary: cells, failing gates with their figures, what to do next."""
    cells = ", ".join(f"{n} {state}" for state, n in sorted(result.cells.items()))
    counts = result.report.counts()
    print(
        f"\nrun {result.run_id}: {result.status} in {result.wall_s:.1f} s; cells: {cells}; "
        f"gates: {counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} inconclusive, "
        f"{counts['skipped']} skipped",
        file=out,
    )
    for verdict in result.report.failures:
        print(clean(f"  GATE FAILED {verdict.gate}: {verdict.detail}", LINE_LIMIT), file=out)
    for verdict in result.report.inconclusive:
        print(clean(f"  GATE INCONCLUSIVE {verdict.gate}: {verdict.detail}", LINE_LIMIT), file=out)
    # One line per (state, node, reason): a node that is down loses every cell for one reason,
    # and repeating a long host-key message per cell buries it.
    groups: dict[tuple[str, str, str], list[str]] = {}
    for cell in result.problem_cells:
        reason = cell.reason or ("not started" if cell.state == "pending" else "no reason recorded")
        groups.setdefault((cell.state, cell.node, reason), []).append(cell.key)
    for (state, node, reason), keys in list(groups.items())[:50]:
        if len(keys) == 1:
            what = keys[0]
        else:
            shown = ", ".join(keys[:3]) + (", …" if len(keys) > 3 else "")
            what = f"{len(keys)} cells ({shown})"
        print(clean(f"  {state.upper()} {node} {what}: {reason}", LINE_LIMIT), file=out)
    if len(groups) > 50:
        print(f"  ... and {len(groups) - 50} more", file=out)
    if result.status == "interrupted":
        sig = result.interrupted_signal or "a signal"
        print(
            f"interrupted by {sig}: agents stopped, data kept, run {result.run_id} marked interrupted; "
            f"resume with: fleet-tui sweep --resume {result.run_id} (exit 130)",
            file=out,
        )
    elif result.status == "incomplete":
        # Exit 3 wins over a failed gate: the verdict is not final until every cell has run.
        gates = f" and {len(result.report.failures)} gate(s) failed" if result.report.failures else ""
        print(
            f"incomplete: {len(result.problem_cells)} cell(s) without a result{gates}; after fixing "
            f"the nodes, resume with: fleet-tui sweep --resume {result.run_id} (exit 3)",
            file=out,
        )
    elif result.report.failures:
        print(f"{len(result.report.failures)} gate(s) failed (exit 1)", file=out)
    elif result.report.inconclusive:
        n = len(result.report.inconclusive)
        if result.exit_code:
            print(f"{n} gate(s) inconclusive: too little data to decide (--strict: exit 1)", file=out)
        else:
            print(
                f"no gate failed; {n} inconclusive (too little data to decide; --strict fails them) (exit 0)",
                file=out,
            )
    else:
        print("all gates pass (exit 0)", file=out)
    out.flush()


# --- runs --------------------------------------------------------------------------------------------


def _duration(summary: RunSummary) -> float | None:
    from fleet_tui.store import elapsed_s

    return elapsed_s(summary.started_at, summary.finished_at)


def measured_s(cells: Sequence[CellRow]) -> float | None:
    """Seconds during which at least one cell of the run was being measured: the union of the
    cells' [started_at, finished_at] spans (their last attempts). Unlike the wall span, the idle
    gap between an interrupt and its resume is not in it. None before any cell finished."""
    from fleet_tui.store import elapsed_s

    spans = sorted(
        (cell.started_at, cell.finished_at)
        for cell in cells
        if cell.started_at and cell.finished_at and (elapsed_s(cell.started_at, cell.finished_at) or 0) >= 0
    )
    if not spans:
        return None
    total = 0.0
    start, end = spans[0]
    for begin, finish in spans[1:]:
        if begin > end:  # ISO-8601 UTC timestamps of one store order as text
            total += elapsed_s(start, end) or 0.0
            start, end = begin, finish
        else:
            end = max(end, finish)
    return total + (elapsed_s(start, end) or 0.0)


def cmd_runs(args: argparse.Namespace) -> int:
    """`fleet-tui runs [--json]`: every stored run, newest first."""
    from fleet_tui.paths import resolve_db_path
    from fleet_tui.store import StoreError
    from fleet_tui.store.db import not_a_store_file

    path = resolve_db_path(args.db)
    problem = not_a_store_file(path)
    if problem is not None:
        print(f"fleet-tui runs: {problem}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if not path.is_file():
        if args.json:
            print("[]")
        else:
            print(f"no runs (no store at {path})")
        return 0
    try:
        store = _existing_store(args.db)
    except StoreError as exc:
        print(f"fleet-tui runs: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    assert store is not None
    with store:
        runs = store.list_runs()
        measured = {run.id: measured_s(store.cells_for(run.id)) for run in runs}
    if args.json:
        rows: list[dict[str, Any]] = []
        for run in runs:
            row = run.to_json()
            duration = _duration(run)
            row["duration_s"] = None if duration is None else round(duration, 3)
            row["wall_s"] = row["duration_s"]  # first start to last finish, idle gaps included
            busy = measured[run.id]
            row["measured_s"] = None if busy is None else round(busy, 3)
            row["cells_done"] = run.cells.get("done", 0)
            row["cells_total"] = sum(run.cells.values())
            rows.append(row)
        print(json.dumps(rows, indent=None, separators=(",", ":")))
        return 0
    if not runs:
        print(f"no runs (store {path})")
        return 0
    header = ("ID", "NAME", "STATUS", "STARTED", "MEASURED", "WALL", "CELLS", "GATES")
    table: list[tuple[str, ...]] = [header]
    for run in runs:
        duration = _duration(run)
        total = sum(run.cells.values())
        table.append(
            (
                str(run.id),
                run.name,
                run.status,
                run.started_at[:19].replace("T", " "),
                "-" if measured[run.id] is None else _human(measured[run.id] or 0.0),
                "-" if duration is None else _human(duration),
                _cells_text(run.cells, total),
                f"{run.gates.get('pass', 0)} pass / {run.gates.get('fail', 0)} fail",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for line in table:
        print("  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _cells_text(cells: dict[str, int], total: int) -> str:
    """'4/6 done, 2 unsupported': unsupported cells are finished, not missing."""
    text = f"{cells.get('done', 0)}/{total} done"
    others = [f"{n} {state}" for state, n in sorted(cells.items()) if state != "done" and n]
    return ", ".join([text, *others])


def _human(seconds: float) -> str:
    from fleet_tui.sweep.plan import format_duration

    return format_duration(seconds)
