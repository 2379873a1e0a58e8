"""Exports: the one table model (`fleet_tui.analysis.tables.ComparisonTable`) to files, and JUnit XML.

One registry of formats, one small module per format, each with
``render(table, charts) -> bytes``. Renderers read only the table (and, for the HTML report,
the chart data drawn from the store for the same cells), so a terminal table and every export
show the same numbers.

    from fleet_tui.export import render, FORMATS
    data = render(table, "csv")

Modules are imported when their format is first rendered: the HTML report pulls in matplotlib,
which the other formats (and the CLI's start-up) never pay for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from fleet_tui.analysis.tables import ComparisonTable
    from fleet_tui.export.chart_data import ChartData
    from fleet_tui.store import Store


class Renderer(Protocol):
    def __call__(self, table: ComparisonTable, charts: ChartData | None) -> bytes: ...


@dataclass(frozen=True)
class Format:
    """One export format of the registry."""

    name: str
    """The name `--format` takes."""
    module: str
    """The module whose `render(table, charts) -> bytes` writes it."""
    suffix: str
    """The file suffix (with the dot), also how `--output FILE` picks a format."""
    media_type: str
    description: str
    aliases: tuple[str, ...] = ()


class ExportError(ValueError):
    """An unknown format or a table a format cannot write; the message says which."""


FORMATS: Final[dict[str, Format]] = {}
"""name -> Format, in the order `--help` lists them."""


def register(fmt: Format) -> None:
    """Add a format to the registry (its name and aliases must be new)."""
    for name in (fmt.name, *fmt.aliases):
        if name in FORMATS or name in _ALIASES:
            raise ValueError(f"export format {name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    for alias in fmt.aliases:
        _ALIASES[alias] = fmt.name


_ALIASES: dict[str, str] = {}

register(
    Format(
        "csv",
        "fleet_tui.export.csv",
        ".csv",
        "text/csv",
        "tidy CSV: one row per cell and metric, units in the header and the unit column",
    )
)
register(
    Format(
        "md",
        "fleet_tui.export.markdown",
        ".md",
        "text/markdown",
        "Markdown with GitHub tables, to paste into a decision document",
        aliases=("markdown",),
    )
)
register(
    Format(
        "json",
        "fleet_tui.export.json",
        ".json",
        "application/json",
        "the table model as versioned JSON (a `schema` field names the version)",
    )
)
register(
    Format(
        "html",
        "fleet_tui.export.html",
        ".html",
        "text/html",
        "one self-contained offline HTML report with charts",
        aliases=("htm",),
    )
)


def format_named(name: str) -> Format:
    """The format called `name` (or one of its aliases); ExportError naming the choices."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in FORMATS:
        raise ExportError(f"unknown export format {name!r} (one of: {', '.join(FORMATS)})")
    return FORMATS[key]


def format_for_path(path: str | PurePath) -> Format | None:
    """The format a file name asks for by its suffix, None when no format has it."""
    suffix = PurePath(path).suffix.lower()
    for fmt in FORMATS.values():
        if suffix == fmt.suffix or suffix.lstrip(".") in fmt.aliases:
            return fmt
    return None


def render(table: ComparisonTable, fmt: str, charts: ChartData | None = None) -> bytes:
    """The table as `fmt` (a registered name or alias). `charts` feeds the HTML report's
    distribution and sustained-latency charts; the other formats ignore it."""
    chosen = format_named(fmt)
    renderer: Renderer = importlib.import_module(chosen.module).render
    return renderer(table, charts)


def render_from_store(table: ComparisonTable, fmt: str, store: Store) -> bytes:
    """`render` with the chart data the HTML report draws from `store` for the table's cells
    (other formats need none): what `compare --format html` and `export --format html` write."""
    charts = None
    if format_named(fmt).name == "html":
        from fleet_tui.export.chart_data import chart_data

        charts = chart_data(store, table)
    return render(table, fmt, charts)
