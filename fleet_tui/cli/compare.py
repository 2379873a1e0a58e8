"""`fleet-tui compare`, `fleet-tui capex` and `fleet-tui baseline`: the decision commands.

They read the store only (never create it), build a table model (analysis/) and print it as plain
text, or hand it to the export registry (`--format`). Exit codes: 0 ok; 1 `compare --against`
found a significant regression; 2 bad input (no store, no runs, unknown run or baseline, nothing
comparable).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_tui.cli.common import RUN_ID_MAX, CommandError, open_existing_store
from fleet_tui.model.exit_codes import ExitCode

if TYPE_CHECKING:
    from fleet_tui.analysis.evidence import RunEvidence
    from fleet_tui.analysis.tables import ComparisonTable
    from fleet_tui.store import Store


def _run_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a run id (see: fleet-tui runs)") from None
    if not 1 <= value <= RUN_ID_MAX:
        raise CommandError(f"{text!r} is not a run id (see: fleet-tui runs)")
    return value


def _latest_run(store: Store) -> int:
    runs = store.list_runs()
    if not runs:
        raise CommandError(f"no runs in {store.path}: run a sweep first (fleet-tui sweep SPEC)")
    return runs[0].id


def _load(store: Store, run_ids: list[int]) -> list[RunEvidence]:
    from fleet_tui.analysis.evidence import load_run
    from fleet_tui.store import StoreError

    if not store.list_runs():
        raise CommandError(f"no runs in {store.path}: run a sweep first (fleet-tui sweep SPEC)")
    loaded = []
    for run_id in run_ids:
        try:
            loaded.append(load_run(store, run_id))
        except StoreError as exc:
            raise CommandError(f"{exc} (see: fleet-tui runs)") from None
    return loaded


def _min_effect(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise CommandError(f"--min-effect must be a fraction in [0, 1), got {value:g} (2% is 0.02)")
    return value


def _emit(table: ComparisonTable, fmt: str | None, output: str | None, store: Store) -> None:
    """Print or write the table; the HTML report also gets its capex table and chart data."""
    from fleet_tui.export.text import render_text

    if fmt in (None, "text"):
        data = render_text(table).encode("utf-8")
    else:
        try:
            from fleet_tui import export
        except ImportError:
            raise CommandError(f"--format {fmt}: exports are not available in this build") from None
        formats = getattr(export, "FORMATS", ())
        if fmt not in formats:
            raise CommandError(f"--format {fmt!r}: unknown format (one of: text, {', '.join(formats)})")
        data = export.render_from_store(table, fmt, store)
    if output:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise CommandError(f"--output {output}: {exc.strerror or exc}") from None
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _fail(command: str, message: str) -> int:
    print(f"fleet-tui {command}: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def build_compare(store: Store, args: argparse.Namespace) -> tuple[ComparisonTable, bool]:
    """The table `compare` prints, and whether it is a comparison against a named baseline."""
    from fleet_tui.analysis.capex import add_costs, price_scale
    from fleet_tui.analysis.compare import run_vs_run_table, soc_table

    min_effect = _min_effect(args.min_effect)
    run_ids = [_run_id(r) for r in args.runs]
    if args.against:
        base_id = store.baseline(args.against)
        if base_id is None:
            known = ", ".join(b["name"] for b in store.list_baselines()) or "none"
            raise CommandError(f"no baseline named {args.against!r} (known: {known}; fleet-tui baseline set)")
        if len(run_ids) > 1:
            raise CommandError("--against compares one run with the baseline; give at most one RUN")
        this = run_ids[0] if run_ids else _latest_run(store)
        if this == base_id:
            raise CommandError(f"run {this} is the baseline {args.against!r} itself: nothing to compare")
        base, current = _load(store, [base_id, this])
        label = f"baseline {args.against} (run {base_id})"
        return run_vs_run_table(base, current, metric=args.metric, min_effect=min_effect, label_a=label), True
    if not run_ids:
        run_ids = [_latest_run(store)]
    if len(set(run_ids)) != len(run_ids):
        raise CommandError("a run is given twice")
    runs = _load(store, run_ids)
    if len(runs) == 2 and not args.baseline:
        nodes_a = {ev.cell.node for ev in runs[0].cells}
        nodes_b = {ev.cell.node for ev in runs[1].cells}
        if nodes_a & nodes_b:
            return run_vs_run_table(runs[0], runs[1], metric=args.metric, min_effect=min_effect), False
    table = soc_table(
        runs, baseline=args.baseline, metric=args.metric, min_effect=min_effect, price_scale=price_scale
    )
    if args.metric == "cost":
        table = add_costs(table, runs, args.utilisation)
    return table, False


def cmd_compare(args: argparse.Namespace) -> int:
    """`fleet-tui compare [RUN ...] [--baseline NODE|CHIP] [--metric M] [--min-effect F] [--against NAME]`."""
    from fleet_tui.analysis.compare import CompareError

    try:
        store = open_existing_store(args.db)
        with store:
            table, against = build_compare(store, args)
            from fleet_tui.export.report import with_capex

            report = with_capex(store, table, args.utilisation) if args.format in ("html", "htm") else table
            _emit(report, args.format, args.output, store)
    except (CommandError, CompareError) as exc:
        return _fail("compare", str(exc))
    if against and table.regressions:
        print(
            f"fleet-tui compare: {len(table.regressions)} significant regression(s) against {args.against}",
            file=sys.stderr,
        )
        return ExitCode.GATE_FAILED
    return ExitCode.OK


def cmd_capex(args: argparse.Namespace) -> int:
    """`fleet-tui capex [RUN ...] [--utilisation F]`: cost per million, payback, the cheapest tier."""
    from fleet_tui.analysis.capex import capex_table
    from fleet_tui.analysis.compare import CompareError

    try:
        store = open_existing_store(args.db)
        with store:
            run_ids = [_run_id(r) for r in args.runs] or [_latest_run(store)]
            runs = _load(store, run_ids)
            table = capex_table(runs, utilisation=args.utilisation, min_effect=_min_effect(args.min_effect))
            _emit(table, args.format, args.output, store)
    except (CommandError, CompareError) as exc:
        return _fail("capex", str(exc))
    return ExitCode.OK


def cmd_baseline(args: argparse.Namespace) -> int:
    """`fleet-tui baseline set NAME RUN` | `fleet-tui baseline list [--json]`."""
    from fleet_tui.store import StoreError

    try:
        store = open_existing_store(args.db)
        with store:
            if args.action == "set":
                run_id = _run_id(args.run)
                try:
                    store.set_baseline(args.name, run_id)
                except StoreError as exc:
                    raise CommandError(str(exc)) from None
                print(f"baseline {args.name!r} -> run {run_id}")
                return ExitCode.OK
            baselines = store.list_baselines()
    except CommandError as exc:
        return _fail("baseline", str(exc))
    if args.json:
        print(json.dumps(baselines, separators=(",", ":")))
    elif not baselines:
        print("no baselines (fleet-tui baseline set NAME RUN)")
    else:
        from fleet_tui.display import clean

        for b in baselines:
            print(f"{clean(b['name'])}  run {b['run_id']}  set {b['created_at'][:19].replace('T', ' ')}")
    return ExitCode.OK
