"""Sweep builder: pick targets, buckets (with budgets) and engine configs from lists, see the plan,
load and save spec TOML, launch.

The screen computes nothing of its own: the form becomes spec TOML (tomli-w), which goes through
the spec loader's own validation (`parse_spec`) and planner (`build_plan`), with the store's
latest facts, exactly as `fleet-tui sweep --dry-run` plans it. A problem is the loader's
`SpecError`, shown as the operator types, naming the table and field.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import tomli_w
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Input, SelectionList, Static, TextArea
from textual.widgets.selection_list import Selection

from fleet_tui.app.screens.base import FleetAppScreen
from fleet_tui.config.spec import ENGINE_OPTIONS, SpecError, SweepSpec, load_spec, parse_spec
from fleet_tui.display import clean

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.sweep.plan import Plan

BUILDER_SOURCE = "sweep builder"
"""How a spec that has no file yet is named in messages."""
SETTINGS_KEYS = ("description", "measure", "gates", "scheduler")
"""What the settings box may hold; the lists and the name field set the rest."""
SETTINGS_HINT = "# [measure], [gates], [scheduler] as in a spec file; empty = the defaults\n"


def engine_keys() -> list[tuple[str, dict[str, str]]]:
    """Every engine configuration the spec accepts, as (key, config), in ENGINE_OPTIONS order."""
    found: list[tuple[str, dict[str, str]]] = []
    for engine, options in ENGINE_OPTIONS.items():
        for values in itertools.product(*options.values()):
            found.append((":".join([engine, *values]), dict(zip(options, values, strict=True))))
    return found


def bucket_choices() -> list[tuple[str, str, float]]:
    """Every built-in (workload, bucket) with the workload's suggested budget."""
    from node_agent.workloads import WORKLOAD_NAMES, workload_definition

    return [
        (workload, bucket.name, float(bucket.budget_ms))
        for workload in WORKLOAD_NAMES
        for bucket in workload_definition(workload).buckets
    ]


@dataclass
class BuilderForm:
    """What the builder's widgets hold, as plain data (so the spec text is testable alone)."""

    name: str = "sweep"
    targets: list[str] = field(default_factory=list)
    """"node:NAME" and "tag:TAG" values; none picked = every node (the spec's own rule)."""
    buckets: list[str] = field(default_factory=list)
    """"workload/bucket" values, in list order."""
    budgets: dict[str, str] = field(default_factory=dict)
    """"workload/bucket" -> budget_ms as typed (a non-number is the loader's error to report)."""
    engines: list[str] = field(default_factory=list)
    settings: str = ""
    """TOML text of the [measure], [gates] and [scheduler] tables (and a description)."""

    def document(self, source: str) -> dict[str, Any]:
        """The spec as a TOML document. SpecError for settings that are not TOML or hold more."""
        try:
            settings = tomllib.loads(self.settings)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(source, "settings (TOML syntax)", str(exc)) from None
        extra = sorted(set(settings) - set(SETTINGS_KEYS))
        if extra:
            raise SpecError(
                source,
                "settings",
                f"{', '.join(extra)} cannot be set here (only {', '.join(SETTINGS_KEYS)}); "
                "the lists set targets, workloads and engines",
            )
        doc: dict[str, Any] = {"name": self.name}
        if "description" in settings:
            doc["description"] = settings.pop("description")
        nodes = [t.removeprefix("node:") for t in self.targets if t.startswith("node:")]
        tags = [t.removeprefix("tag:") for t in self.targets if t.startswith("tag:")]
        if nodes or tags:
            doc["targets"] = {"nodes": nodes, "tags": tags}
        workloads: dict[str, list[dict[str, Any]]] = {}
        for value in self.buckets:
            workload, bucket = value.split("/", 1)
            workloads.setdefault(workload, []).append(
                {"name": bucket, "budget_ms": _number(self.budgets.get(value, ""))}
            )
        if workloads:
            doc["workload"] = [{"name": w, "bucket": b} for w, b in workloads.items()]
        configs = dict(engine_keys())
        engines: dict[str, list[dict[str, str]]] = {}
        for key in self.engines:
            engines.setdefault(key.split(":", 1)[0], []).append(configs[key])
        if engines:
            doc["engines"] = engines
        doc.update(settings)
        return doc

    def spec(self, source: str) -> tuple[str, SweepSpec]:
        """The spec's TOML text and the spec, validated by the loader (SpecError if not valid)."""
        text = tomli_w.dumps(self.document(source))
        return text, parse_spec(text, source=source)

    @classmethod
    def from_spec(cls, spec: SweepSpec) -> BuilderForm:
        """The form of a loaded spec: its lists picked, its settings tables as TOML text."""
        data = tomllib.loads(spec.text)
        settings = {key: data[key] for key in SETTINGS_KEYS if key in data}
        return cls(
            name=spec.name,
            targets=[f"node:{n}" for n in spec.targets.nodes] + [f"tag:{t}" for t in spec.targets.tags],
            buckets=[f"{w.name}/{b.name}" for w in spec.workloads for b in w.buckets],
            budgets={f"{w.name}/{b.name}": f"{b.budget_ms:g}" for w in spec.workloads for b in w.buckets},
            engines=[e.key for e in spec.engines],
            settings=tomli_w.dumps(settings) if settings else "",
        )


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # the loader says "budget_ms must be a number", naming the bucket


def error_text(exc: SpecError) -> str:
    """The loader's message without the generated text's file and line (the form has neither)."""
    prefix = f"{exc.source}:{exc.line}: " if exc.line is not None else f"{exc.source}: "
    return str(exc).removeprefix(prefix)


def plan_text(plan: Plan, artifacts: str) -> str:
    """What the dry-run prints, headed by the counts that decide a launch."""
    unsupported = plan.unsupported
    lines = [
        f"{len(plan.cells)} cell(s): {len(plan.runnable)} to run, {len(unsupported)} unsupported",
        *(f"  unsupported {c.node} {c.key}: {c.reason}" for c in unsupported[:20]),
        *([f"  … and {len(unsupported) - 20} more"] if len(unsupported) > 20 else []),
        artifacts,
        "",
        plan.table(),
    ]
    return "\n".join(lines)


class SweepBuilderScreen(FleetAppScreen[None]):
    """Build a sweep spec from lists, with its plan and validation as you type."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "launch", "Launch"),
        Binding("ctrl+s", "save", "Save spec"),
        Binding("ctrl+o", "load", "Load spec"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.facts: dict[str, dict[str, Any]] = {}
        self.budgets: dict[str, str] = {}
        self.plan: Plan | None = None
        self.spec: SweepSpec | None = None
        self.spec_text = ""
        self.error: str | None = None
        self._loading = False

    @property
    def nodes(self) -> Sequence[Node]:
        return list(getattr(self.app, "nodes", []))

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="builder-lists"):
            yield SelectionList[str](*self._target_options(), id="builder-targets")
            yield SelectionList[str](*self._bucket_options(), id="builder-buckets")
            yield SelectionList[str](*[Selection(k, k) for k, _ in engine_keys()], id="builder-engines")
        with Horizontal(id="builder-fields"):
            yield Input("sweep", placeholder="name", id="builder-name")
            yield Input(placeholder="budget ms of the highlighted bucket", id="builder-budget")
            yield Input(placeholder="spec file (ctrl+o loads, ctrl+s saves)", id="builder-path")
        with Horizontal(id="builder-bottom"):
            yield TextArea(SETTINGS_HINT, language=None, id="builder-settings")
            with VerticalScroll(id="builder-plan-pane"):
                yield Static(id="builder-error")
                yield Static(id="builder-plan")
        yield Footer()

    def _target_options(self) -> list[Selection[str]]:
        nodes = self.nodes
        tags = sorted({t for n in nodes for t in n.tags})
        return [Selection(f"node {clean(n.name, 30)}", f"node:{n.name}") for n in nodes] + [
            Selection(f"tag {clean(t, 30)}", f"tag:{t}") for t in tags
        ]

    def _bucket_options(self) -> list[Selection[str]]:
        options = []
        for workload, bucket, budget in bucket_choices():
            value = f"{workload}/{bucket}"
            self.budgets[value] = f"{budget:g}"
            options.append(Selection(self._bucket_label(value), value, id=value))
        return options

    def _bucket_label(self, value: str) -> str:
        return f"{value} · {self.budgets.get(value, '?')} ms"

    def on_mount(self) -> None:
        titles = {
            "#builder-targets": "targets (none = every node)",
            "#builder-buckets": "buckets · budget",
            "#builder-engines": "engine configs",
            "#builder-settings": "settings (TOML)",
            "#builder-plan-pane": "plan",
        }
        for selector, title in titles.items():
            self.query_one(selector).border_title = title
        self.sub_title = "sweep builder"
        self._sync_budget()
        self._read_facts()
        self.validate()

    @work(thread=True, exclusive=True, exit_on_error=False, group="builder", description="Reading node facts")
    def _read_facts(self) -> None:
        """The store's latest probe facts, as the dry-run uses them to mark unsupported cells."""
        from fleet_tui.store import Store

        db_path = getattr(self.app, "db_path", None)
        if db_path is None or not db_path.is_file():
            return
        with Store.open(db_path) as store:
            facts = store.latest_facts([n.name for n in self.nodes])
        self.app.call_from_thread(self._got_facts, facts)

    def _got_facts(self, facts: dict[str, dict[str, Any]]) -> None:
        self.facts = facts
        self.validate()

    # -- the form --

    def form(self) -> BuilderForm:
        return BuilderForm(
            name=self.query_one("#builder-name", Input).value,
            targets=list(self.query_one("#builder-targets", SelectionList).selected),
            buckets=list(self.query_one("#builder-buckets", SelectionList).selected),
            budgets=dict(self.budgets),
            engines=list(self.query_one("#builder-engines", SelectionList).selected),
            settings=self.query_one("#builder-settings", TextArea).text,
        )

    def _source(self) -> str:
        return self.query_one("#builder-path", Input).value.strip() or BUILDER_SOURCE

    def validate(self) -> SweepSpec | None:
        """Rebuild the spec and its plan from the form; show the plan or the loader's error."""
        from fleet_tui.sweep.launch import artifact_estimate_text
        from fleet_tui.sweep.plan import build_plan

        if self._loading:
            return None
        try:
            self.spec_text, spec = self.form().spec(self._source())
            plan = build_plan(spec, self.nodes, self.facts)
        except SpecError as exc:
            self.spec, self.plan, self.error = None, None, error_text(exc)
            self.query_one("#builder-error", Static).update(Text(self.error, style="bold"))
            self.query_one("#builder-plan", Static).update("")
            self.query_one("#builder-plan-pane").add_class("-invalid")
            return None
        self.spec, self.plan, self.error = spec, plan, None
        self.query_one("#builder-error", Static).update("")
        self.query_one("#builder-plan", Static).update(
            Text(plan_text(plan, artifact_estimate_text(spec, plan)))
        )
        self.query_one("#builder-plan-pane").remove_class("-invalid")
        return spec

    @on(SelectionList.SelectedChanged)
    @on(TextArea.Changed)
    @on(Input.Changed, "#builder-name")
    def _form_changed(self) -> None:
        self.validate()

    @on(SelectionList.SelectionHighlighted, "#builder-buckets")
    def _bucket_highlighted(self) -> None:
        self._sync_budget()

    def _highlighted_bucket(self) -> str | None:
        buckets = self.query_one("#builder-buckets", SelectionList)
        if buckets.highlighted is None:
            return None
        return str(buckets.get_option_at_index(buckets.highlighted).value)

    def _sync_budget(self) -> None:
        bucket = self._highlighted_bucket()
        budget = self.query_one("#builder-budget", Input)
        budget.border_title = f"budget ms: {bucket}" if bucket else "budget ms"
        if bucket is not None and budget.value != self.budgets.get(bucket, ""):
            budget.value = self.budgets.get(bucket, "")

    @on(Input.Changed, "#builder-budget")
    def _budget_changed(self, event: Input.Changed) -> None:
        bucket = self._highlighted_bucket()
        if bucket is None or self.budgets.get(bucket) == event.value:
            return
        self.set_budget(bucket, event.value)

    def set_budget(self, bucket: str, text: str) -> None:
        """Give `bucket` ("workload/bucket") the budget `text` (ms) and re-validate."""
        self.budgets[bucket] = text.strip()
        buckets = self.query_one("#builder-buckets", SelectionList)
        buckets.replace_option_prompt(bucket, self._bucket_label(bucket))
        self.validate()

    def show_form(self, form: BuilderForm) -> None:
        """Fill the widgets from `form` (a loaded spec), validating once at the end."""
        self._loading = True
        try:
            self.query_one("#builder-name", Input).value = form.name
            for selector, picked in (
                ("#builder-targets", form.targets),
                ("#builder-buckets", form.buckets),
                ("#builder-engines", form.engines),
            ):
                selection = self.query_one(selector, SelectionList)
                selection.deselect_all()
                for value in picked:
                    selection.select(value)
            for bucket, budget in form.budgets.items():
                self.budgets[bucket] = budget
                self.query_one("#builder-buckets", SelectionList).replace_option_prompt(
                    bucket, self._bucket_label(bucket)
                )
            self.query_one("#builder-settings", TextArea).text = form.settings or SETTINGS_HINT
        finally:
            self._loading = False
        self._sync_budget()
        self.validate()

    # -- actions --

    def _path(self, verb: str) -> Path | None:
        text = self.query_one("#builder-path", Input).value.strip()
        if not text:
            self.notify(
                f"type the spec file's path first, then {verb}", title="Spec file", severity="warning"
            )
            self.query_one("#builder-path", Input).focus()
            return None
        return Path(text).expanduser()

    def action_load(self) -> None:
        """Load the spec file named in the path field into the form."""
        path = self._path("load")
        if path is None:
            return
        try:
            spec = load_spec(path)
        except SpecError as exc:
            self.error = str(exc)
            self.query_one("#builder-error", Static).update(Text(self.error, style="bold"))
            self.notify(str(exc), title="Spec not loaded", severity="error", markup=False)
            return
        unknown = [n for n in spec.targets.nodes if n not in {node.name for node in self.nodes}]
        self.show_form(BuilderForm.from_spec(spec))
        if unknown:
            self.notify(f"not in the inventory: {', '.join(unknown)}", title="Targets", severity="warning")
        self.notify(f"loaded {path}", title="Spec file", markup=False)

    def action_save(self) -> None:
        """Save the form as spec TOML to the path field's file (only a valid spec)."""
        path = self._path("save")
        if path is None:
            return
        if self.validate() is None:
            self.notify(
                self.error or "the spec is not valid", title="Not saved", severity="error", markup=False
            )
            return
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(self.spec_text, encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            self.notify(f"{path}: {exc.strerror or exc}", title="Not saved", severity="error", markup=False)
            return
        self.notify(f"saved {path}", title="Spec file", markup=False)

    def action_launch(self) -> None:
        """Start the planned sweep (an app worker) and open Live sweep."""
        from fleet_tui.app.app import FleetApp
        from fleet_tui.app.sweep_session import start_sweep

        spec = self.validate()
        if spec is None or self.plan is None:
            self.notify(
                self.error or "the spec is not valid", title="Not launched", severity="error", markup=False
            )
            return
        if not self.plan.runnable:
            self.notify("no cell of this plan can run", title="Not launched", severity="warning")
            return
        app = self.app
        if not isinstance(app, FleetApp):
            return
        targets = [n for n in app.nodes if n.name in self.plan.nodes]
        if start_sweep(app, spec, targets) is not None:
            app.action_open_screen("live")
