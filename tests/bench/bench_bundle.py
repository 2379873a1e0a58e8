"""Export and bundle benchmark: the HTML report of a 3-node run, and bundle / verify / import of
a run with about 1 M samples.

Run:  .venv/bin/python tests/bench/bench_bundle.py [--samples 1000000] [--repeat 3]

Targets (issue 9): HTML report for a 3-node run under 5 s; bundle and verify of a run with
1 M samples under 10 s each; import of that bundle under 10 s. Each figure is the median of
--repeat rounds, measured in this process (the CLI adds its start-up, printed separately for
the report: `fleet-tui export RUN --format html` as a subprocess).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import export_fixture  # noqa: E402

from fleet_tui.cli.exports import bundle_exports, report_table  # noqa: E402
from fleet_tui.export import bundle, render  # noqa: E402
from fleet_tui.export.chart_data import chart_data  # noqa: E402
from fleet_tui.store import Store  # noqa: E402

TARGETS = {"html report (3 nodes)": 5.0, "bundle": 10.0, "verify": 10.0, "import": 10.0}


def timed(repeat: int, work: Callable[[int], object]) -> float:
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        work(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1_000_000, help="samples in the bundled run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    try:
        figures: dict[str, float] = {}
        # The report: the fixture's 3-node run as the tests use it (3 runs per cell).
        small = export_fixture.build(tmp / "small.db")
        with small.store:

            def report(_: int) -> None:
                table = report_table(small.store, small.run_id)
                render(table, "html", chart_data(small.store, table))

            report(0)  # import matplotlib once, as a long-lived process would have
            figures["html report (3 nodes)"] = timed(args.repeat, report)
        started = time.perf_counter()
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet_tui",
                "export",
                "1",
                "--db",
                str(tmp / "small.db"),
                "--output",
                str(tmp / "r.html"),
            ],
            capture_output=True,
            text=True,
        )
        cli_s = time.perf_counter() - started
        assert cli.returncode == 0, cli.stderr
        # The big run: 3 nodes x 6 cells x 5 runs, a sustained phase in the last run.
        runs, cells = 5, 18
        per_cell = args.samples // cells
        sustained = per_cell // 10
        per_run = (per_cell - sustained) // runs - 10
        started = time.perf_counter()
        big = export_fixture.build(
            tmp / "big.db", runs=runs, samples_per_run=per_run, sustained_samples=sustained
        )
        build_s = time.perf_counter() - started
        with big.store:

            def make(i: int) -> None:
                files = bundle.collect(big.store, big.run_id, bundle_exports(big.store, big.run_id))
                bundle.write(files, tmp / f"b{i}" / "big.tar.gz")

            figures["bundle"] = timed(args.repeat, make)
        path = tmp / "b0" / "big.tar.gz"
        figures["verify"] = timed(args.repeat, lambda _: bundle.verify(path))

        def imp(i: int) -> None:
            with Store.open(tmp / f"imported{i}.db") as store:
                bundle.import_bundle(path, store)

        figures["import"] = timed(args.repeat, imp)
        print(
            f"run with {big.samples:,} samples (fixture built in {build_s:.1f} s), "
            f"bundle {path.stat().st_size / 1e6:.1f} MB"
        )
        for name, value in figures.items():
            target = TARGETS[name]
            print(
                f"{name:24s} {value:6.2f} s   target < {target:g} s   {'ok' if value < target else 'MISSED'}"
            )
        print(
            f"{'fleet-tui export --format html':24s} {cli_s:6.2f} s   "
            "(subprocess, with interpreter and imports)"
        )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
