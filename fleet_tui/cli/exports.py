"""`fleet-tui export`, `fleet-tui bundle`, `fleet-tui bundle verify` and `fleet-tui import`.

export writes the table `compare RUN` prints (same builder, same options) in one of the export
formats; bundle writes the acceptance bundle of a run (fleet_tui.export.bundle); bundle verify
checks one; import merges one into a store.

Exit codes: 0 ok; 1 a bundle does not verify (a changed, missing or extra file, or figures that
disagree with their raw samples); 2 bad input (no store, unknown run or format, unreadable
bundle, unwritable output).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_tui.cli.common import RUN_ID_MAX, CommandError, open_existing_store
from fleet_tui.display import LINE_LIMIT, clean
from fleet_tui.model.exit_codes import ExitCode

if TYPE_CHECKING:
    from fleet_tui.analysis.tables import ComparisonTable
    from fleet_tui.store import Store


def _fail(command: str, message: str) -> int:
    print(f"fleet-tui {command}: {_printable(message)}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def _printable(text: str) -> str:
    """Never print control characters that came from a file or a node (line by line)."""
    return "\n".join(clean(line, LINE_LIMIT) for line in text.split("\n"))


def _run_id(store: Store, text: str) -> int:
    from fleet_tui.store import StoreError

    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a run id (see: fleet-tui runs)") from None
    if not 1 <= value <= RUN_ID_MAX:
        raise CommandError(f"{text!r} is not a run id (see: fleet-tui runs)")
    try:
        store.run(value)
    except StoreError as exc:
        raise CommandError(f"{exc} (see: fleet-tui runs)") from None
    return value


def table_for_run(
    store: Store,
    run_id: int,
    *,
    baseline: str | None = None,
    metric: str = "p95",
    min_effect: float = 0.02,
    utilisation: float = 1.0,
) -> ComparisonTable:
    """The table `fleet-tui compare RUN` shows for these options (its own builder)."""
    from fleet_tui.cli.compare import build_compare

    options = argparse.Namespace(
        runs=[str(run_id)],
        baseline=baseline,
        metric=metric,
        min_effect=min_effect,
        against=None,
        utilisation=utilisation,
    )
    table, _ = build_compare(store, options)
    return table


def report_table(store: Store, run_id: int, **options: Any) -> ComparisonTable:
    """The run's comparison table with its capex table appended (for the cost chart), when the
    capex view can be built (nodes with prices)."""
    from fleet_tui.export.report import with_capex

    table = table_for_run(store, run_id, **options)
    return with_capex(store, table, float(options.get("utilisation", 1.0)))


def _format_of(fmt: str | None, output: str | None) -> str:
    from fleet_tui.export import ExportError, format_for_path, format_named

    if fmt:
        try:
            return format_named(fmt).name
        except ExportError as exc:
            raise CommandError(f"--format: {exc}") from None
    if output:
        chosen = format_for_path(output)
        if chosen is None:
            raise CommandError(f"--output {output}: cannot tell the format from its suffix; give --format")
        return chosen.name
    raise CommandError("give --format csv|md|json|html (or an --output FILE with one of those suffixes)")


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise CommandError(f"--output {path}: {exc.strerror or exc}") from None


def cmd_export(args: argparse.Namespace) -> int:
    """`fleet-tui export RUN --format FMT [--output FILE]`: the compare table of RUN as a file."""
    from fleet_tui.analysis.compare import CompareError
    from fleet_tui.export import render_from_store

    try:
        fmt = _format_of(args.format, args.output)
        with open_existing_store(args.db) as store:
            run_id = _run_id(store, args.run)
            options = {
                "baseline": args.baseline,
                "metric": args.metric,
                "min_effect": args.min_effect,
                "utilisation": args.utilisation,
            }
            table = (
                report_table(store, run_id, **options)
                if fmt == "html"
                else table_for_run(store, run_id, **options)
            )
            data = render_from_store(table, fmt, store)
        if args.output:
            _write(args.output, data)
            print(f"wrote {args.output} ({fmt}, {len(data)} bytes)", file=sys.stderr)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    except (CommandError, CompareError) as exc:
        return _fail("export", str(exc))
    return ExitCode.OK


def bundle_exports(store: Store, run_id: int) -> dict[str, bytes]:
    """exports/ and charts/ of a run's bundle; empty (and said) when the run has nothing to compare."""
    from fleet_tui.analysis.compare import CompareError
    from fleet_tui.export.report import report_files

    try:
        return report_files(store, run_id)
    except CompareError as exc:
        print(f"fleet-tui bundle: no exports: {_printable(str(exc))}", file=sys.stderr)
        return {}


def cmd_bundle(args: argparse.Namespace) -> int:
    """`fleet-tui bundle RUN --output PATH` | `fleet-tui bundle verify PATH [--json]`."""
    if args.target == "verify":
        return _verify(args)
    from fleet_tui.analysis.compare import CompareError
    from fleet_tui.export import bundle

    try:
        if not args.output:
            raise CommandError("give --output PATH (a folder, or a file ending .tar.gz)")
        if args.path is not None:
            raise CommandError(
                f"unexpected argument {args.path!r} (verify a bundle with: fleet-tui bundle verify PATH)"
            )
        with open_existing_store(args.db) as store:
            run_id = _run_id(store, args.target)
            files = bundle.collect(store, run_id, bundle_exports(store, run_id))
        try:
            written = bundle.write(files, Path(args.output))
        except OSError as exc:
            raise CommandError(f"--output {args.output}: {exc.strerror or exc}") from None
    except (CommandError, CompareError, bundle.BundleError) as exc:
        return _fail("bundle", str(exc))
    manifest = json.loads(files[bundle.MANIFEST])
    counts = manifest["counts"]
    print(
        f"wrote {written}: run {run_id} ({manifest['run']['name']}), {len(files)} files, "
        f"{counts['cells']} cells, {counts['samples']} samples, {counts['gate_verdicts']} gate verdicts"
    )
    return ExitCode.OK


def _verify(args: argparse.Namespace) -> int:
    from fleet_tui.export import bundle

    if args.path is None:
        return _fail("bundle verify", "give the bundle PATH (a folder or .tar.gz)")
    try:
        report = bundle.verify(args.path)
    except bundle.BundleError as exc:
        return _fail("bundle verify", str(exc))
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for problem in report.problems:
            print(_printable(str(problem)))
        verdict = "OK" if report.ok else f"FAILED ({len(report.problems)} problem(s))"
        print(
            f"{verdict}: {report.files} files hashed, {report.cells_checked} summaries and "
            f"{report.verdicts_checked} gate verdicts recomputed from the raw samples"
        )
    return ExitCode.OK if report.ok else ExitCode.GATE_FAILED


def cmd_import(args: argparse.Namespace) -> int:
    """`fleet-tui import BUNDLE [--db PATH]`: merge a verified bundle's run into the store."""
    from fleet_tui.export import bundle
    from fleet_tui.store import Store, StoreError

    if not Path(args.bundle).exists():
        return _fail("import", f"{args.bundle}: no such file or folder")
    try:
        with Store.open(args.db) as store:
            result = bundle.import_bundle(args.bundle, store)
    except bundle.BundleTampered as exc:
        for problem in exc.report.problems:
            print(_printable(str(problem)), file=sys.stderr)
        print(f"fleet-tui import: {args.bundle} does not verify; nothing imported", file=sys.stderr)
        return ExitCode.GATE_FAILED
    except (StoreError, bundle.BundleError) as exc:
        return _fail("import", str(exc))
    if result.created:
        print(
            f"imported run {result.name!r} as run {result.run_id}: {result.cells} cells, "
            f"{result.samples} samples"
        )
    else:
        print(f"run {result.name!r} is already in the store as run {result.run_id}: nothing changed")
    return ExitCode.OK
