"""JUnit XML of a sweep, so CI systems show cells and gates as tests.

One <testsuite> per node. In it, one <testcase> per cell (classname ``<run>.<node>.cells``,
name = the cell key): a failed or lost cell is a <failure>, an unsupported cell is <skipped>
with its reason, a cell that never finished (pending/running) is an <error>. Then one
<testcase> per gate verdict (classname ``<run>.<node>.gates``, name ``<gate> <cell key>``): a
failing gate is a <failure> whose message is the verdict's detail, a skipped gate is <skipped>,
a passing gate carries its detail in <system-out>.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_tui.model.gates import GateVerdict
from fleet_tui.store import elapsed_s

if TYPE_CHECKING:
    from fleet_tui.store import CellRow, Store

# XML 1.0 forbids most control characters, even escaped; agent reasons may carry them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def build_junit(
    run_name: str,
    cells: Sequence[CellRow],
    verdicts: Sequence[GateVerdict],
    *,
    properties: dict[str, str] | None = None,
) -> str:
    """The JUnit XML document (text, with declaration) for a run's cells and gate verdicts."""
    suite_name = _clean(run_name)
    root = ET.Element("testsuites", name=suite_name)
    nodes = list(dict.fromkeys([c.node for c in cells] + [v.node for v in verdicts]))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for node in nodes:
        suite = ET.SubElement(root, "testsuite", name=_clean(node))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        if properties:
            props = ET.SubElement(suite, "properties")
            for key, value in properties.items():
                ET.SubElement(props, "property", name=_clean(key), value=_clean(value))
        for cell in (c for c in cells if c.node == node):
            seconds = max(0.0, elapsed_s(cell.started_at, cell.finished_at) or 0.0)
            suite_time += seconds
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{suite_name}.{_clean(node)}.cells",
                name=_clean(cell.key),
                time=f"{seconds:.3f}",
            )
            counts["tests"] += 1
            reason = _clean(cell.reason or "")
            if cell.state in ("failed", "lost"):
                counts["failures"] += 1
                message = f"cell {cell.state} after {cell.attempts} attempt(s)" + (
                    f": {reason}" if reason else ""
                )
                failure = ET.SubElement(case, "failure", message=message, type=cell.state)
                failure.text = reason or message
            elif cell.state == "unsupported":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=reason or "unsupported on this node")
            elif cell.state in ("pending", "running"):
                counts["errors"] += 1
                message = f"cell never finished (state {cell.state})" + (f": {reason}" if reason else "")
                ET.SubElement(case, "error", message=message, type="incomplete")
        for verdict in (v for v in verdicts if v.node == node):
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{suite_name}.{_clean(node)}.gates",
                name=_clean(f"{verdict.gate} {verdict.cell_key or f'{verdict.workload}/{verdict.bucket}'}"),
                time="0.000",
            )
            counts["tests"] += 1
            detail = _clean(verdict.detail)
            if verdict.verdict == "fail":
                counts["failures"] += 1
                failure = ET.SubElement(case, "failure", message=detail, type=verdict.gate)
                failure.text = detail
            elif verdict.verdict == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=detail)
            elif verdict.verdict == "inconclusive":
                # Not a pass: CI dashboards show a skipped case, with why it could not be decided.
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"inconclusive: {detail}", type="inconclusive")
            else:
                ET.SubElement(case, "system-out").text = detail
        for key, count in counts.items():
            suite.set(key, str(count))
            totals[key] += count
        suite.set("time", f"{suite_time:.3f}")
    for key, total in totals.items():
        root.set(key, str(total))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def junit_for_run(store: Store, run_id: int) -> str:
    """JUnit XML for a stored run (its cells and stored gate verdicts)."""
    run = store.run(run_id)
    return build_junit(
        f"{run.name}#{run.id}",
        store.cells_for(run_id),
        store.gate_verdicts(run_id),
        properties={"run_id": str(run.id), "contract_hash": run.contract_hash, "status": run.status},
    )


def write_junit(path: str | Path, xml_text: str) -> None:
    Path(path).write_text(xml_text, encoding="utf-8")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("?", text)
