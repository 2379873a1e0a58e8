"""The first screen: a live table of the fleet, probed in the background."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from fleet_tui.app.messages import HostKeyTrusted, NodeActionDone, NodeProbed, ProbeAborted
from fleet_tui.app.screens.base import FleetAppScreen
from fleet_tui.app.screens.hostkey import review_and_trust
from fleet_tui.app.state import NodeState, fleet_totals, matches
from fleet_tui.app.widgets.node_detail import NodeDetail
from fleet_tui.app.widgets.node_table import NodeTable
from fleet_tui.display import clean
from fleet_tui.fleet.transport.base import NodeErrorKind

if TYPE_CHECKING:
    from fleet_tui.app.app import FleetApp
    from fleet_tui.config.inventory import Node

SORT_KEYS = ("name", "status", "chip", "tier", "rtt")
"""What `s` cycles the table's order through (column keys)."""
AUTO_REFRESH_S = (0, 30, 60, 300)
"""What `a` cycles the auto-refresh interval through, in seconds (0 = off)."""

PROBE_ALL_GROUP = "probe:all"
"""Worker group of a whole-fleet probe; exclusive, so r twice restarts rather than doubles up."""


class FleetScreen(FleetAppScreen[None]):
    """One row per inventory node, filled in as each node's probe answers."""

    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("p", "probe_selected", "Probe node"),
        Binding("t", "trust", "Trust host key"),
        Binding("d", "deploy_selected", "Deploy agent"),
        Binding("x", "selftest_selected", "Selftest"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort"),
        Binding("a", "auto_refresh", "Auto-refresh"),
    ]

    def __init__(self, nodes: Sequence[Node] | None = None) -> None:
        """`nodes` defaults to the app's inventory (the screen is built by name, see navigation)."""
        super().__init__()
        self._inventory = None if nodes is None else list(nodes)
        self.states: dict[str, NodeState] = {}
        """Per-node state, keyed (like the table rows) by node name, in inventory order."""
        self.filter_text = ""
        self.sort_key = "name"
        self.refresh_every_s = 0
        self._refresh_timer: Timer | None = None

    @property
    def fleet_app(self) -> FleetApp:
        from fleet_tui.app.app import FleetApp

        assert isinstance(self.app, FleetApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(id="fleet-filter", placeholder="filter: name, tier, chip, status or tag")
        yield NodeTable(id="nodes")
        yield NodeDetail(id="detail")
        yield Static(id="fleet-totals")
        yield Footer()

    def on_mount(self) -> None:
        nodes = self._inventory if self._inventory is not None else self.fleet_app.nodes
        self.states = {node.name: NodeState(node) for node in nodes}
        table = self.query_one(NodeTable)
        table.border_title = "fleet"
        self.query_one(NodeDetail).border_title = "selected node"
        for state in self.states.values():
            table.add_node(state)
        table.focus()
        self._show_detail()
        self.probe(tuple(self.states))
        self._load_recent_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="recent-runs", description="Reading runs")
    def _load_recent_runs(self) -> None:
        """Each node's three latest stored runs with their verdicts, for the detail pane."""
        from fleet_tui.store import Store

        db_path = self.fleet_app.db_path
        if db_path is None or not db_path.is_file():
            return
        with Store.open(db_path) as store:
            runs = store.list_runs()
        lines: dict[str, list[str]] = {}
        for run in runs:
            verdicts = " ".join(f"{v} {n}" for v, n in sorted(run.gates.items()) if n) or "no gates"
            done, total = run.cells.get("done", 0), sum(run.cells.values())
            for name in run.nodes:
                lines.setdefault(name, []).append(f"{run.id} {run.status} {done}/{total} cells · {verdicts}")
        self.app.call_from_thread(self._show_recent_runs, {k: tuple(v[:3]) for k, v in lines.items()})

    def _show_recent_runs(self, lines: dict[str, tuple[str, ...]]) -> None:
        for name, state in self.states.items():
            state.recent_runs = lines.get(name, ())
        self._show_detail()

    # -- probing -----------------------------------------------------------------------------

    def probe(self, names: Sequence[str], *, group: str = PROBE_ALL_GROUP) -> None:
        """Mark these nodes "probing…" and probe them in a background worker."""
        table = self.query_one(NodeTable)
        for name in names:
            state = self.states[name]
            state.probing = True
            state.aborted = None
            if name in table.rows:
                table.show_state(state)
        self._summarise()
        self._show_detail()
        self.run_worker(
            self._probe_nodes(tuple(names)),
            name=f"probe {', '.join(names)}",
            group=group,
            exclusive=True,
            exit_on_error=False,
            description=f"Probing {len(names)} node(s)",
        )

    async def _probe_nodes(self, names: tuple[str, ...]) -> None:
        # Imported here: probe pulls in asyncssh, which the screen does not need to draw.
        from fleet_tui.fleet.probe import probe_fleet

        app = self.fleet_app
        remaining = set(names)
        try:
            async for result in probe_fleet(
                [self.states[n].node for n in names], app.settings, app.connections
            ):
                remaining.discard(result.node.name)
                self.post_message(NodeProbed(result))
        except Exception as exc:  # a bug in the probe path, not a node fault: say so per row
            self.log.error(f"probe worker failed: {exc!r}")
            self.post_message(ProbeAborted(tuple(sorted(remaining)), f"{type(exc).__name__}: {exc}"))

    def action_refresh(self) -> None:
        """Re-probe every node (connections stay warm between refreshes) and reread the runs."""
        self.probe(tuple(self.states))
        self._load_recent_runs()

    @on(NodeProbed)
    def _node_probed(self, message: NodeProbed) -> None:
        state = self.states.get(message.result.node.name)
        if state is None:
            return
        from datetime import UTC, datetime

        state.result = message.result
        state.probing = False
        state.probed_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._redraw(state)

    @on(ProbeAborted)
    def _probe_aborted(self, message: ProbeAborted) -> None:
        for name in message.names:
            state = self.states[name]
            state.probing = False
            state.aborted = message.message
            self._redraw(state)

    # -- host keys ---------------------------------------------------------------------------

    def _why_not_trust(self, state: NodeState | None) -> str | None:
        """Why `t` cannot apply to this row, in words; None when it can."""
        if state is None:
            return "no node is selected"
        name = state.node.name
        if state.node.transport == "local":
            return f"{name} is the local node: it has no SSH host key"
        if state.probing:
            return f"{name} is being probed; try again when it answers"
        if state.error_kind == NodeErrorKind.HOST_KEY_UNKNOWN:
            return None
        if state.error_kind is None:
            return f"{name}'s host key is already trusted (or not yet seen: refresh with r)"
        return f"{name} did not offer an unknown host key ({state.status}); nothing to trust"

    def action_trust(self) -> None:
        """Review the selected node's unknown host key and, if the operator agrees, trust it."""
        state = self._selected()
        reason = self._why_not_trust(state)
        if reason is not None or state is None:
            # Never silent: the key is always live and says why it does nothing here.
            self.notify(reason or "no node is selected", title="Trust host key", severity="warning")
            return
        self.run_worker(
            self._review_host_key(state.node),
            name=f"host key {state.node.name}",
            group=f"hostkey:{state.node.name}",
            exclusive=True,
            exit_on_error=False,
            description=f"Reviewing the host key of {state.node.name}",
        )

    async def _review_host_key(self, node: Node) -> None:
        fingerprint, said = await review_and_trust(self.app, node, self.fleet_app.settings)
        if fingerprint is None:
            self.notify(f"{node.name}: {said}", title="Host key", severity="warning")
            return
        self.post_message(HostKeyTrusted(node.name, fingerprint))

    @on(HostKeyTrusted)
    def _host_key_trusted(self, message: HostKeyTrusted) -> None:
        self.notify(f"{message.name}: trusted {message.fingerprint}", title="Host key")
        self.probe((message.name,), group=f"probe:{message.name}")

    # -- per-node actions: deploy, selftest ----------------------------------------------

    def action_deploy_selected(self) -> None:
        """Upload the agent to the node under the cursor (only if absent or modified there)."""
        self._node_action("deploy", self._deploy)

    def action_selftest_selected(self) -> None:
        """Run the agent's selftest on the node under the cursor; the counts go in the detail pane."""
        self._node_action("selftest", self._selftest)

    def _node_action(self, action: str, run: Callable[[Node], Awaitable[tuple[str, bool]]]) -> None:
        state = self._selected()
        if state is None:
            self.notify("no node is selected", title=action.capitalize(), severity="warning")
            return
        node = state.node
        state.actions = {**(state.actions or {}), action: "running…"}
        self._show_detail()

        async def work() -> None:
            try:
                text, ok = await run(node)
            except Exception as exc:  # the node's fault or ours: said on its row, never raised
                from fleet_tui.fleet.transport.base import as_node_error

                error = as_node_error(exc, node.name, action)
                text, ok = f"{error.kind}: {error.message}", False
            self.post_message(NodeActionDone(node.name, action, clean(text, 200), ok))

        self.run_worker(
            work(),
            name=f"{action} {node.name}",
            group=f"{action}:{node.name}",
            exclusive=True,
            exit_on_error=False,
            description=f"{action.capitalize()} on {node.name}",
        )

    async def _deploy(self, node: Node) -> tuple[str, bool]:
        from fleet_tui.fleet.deploy import deploy_agent

        pool = self.fleet_app.connections
        result = await deploy_agent(await pool.transport(node), pool.bundle())
        label = {"uploaded": "uploaded", "present": "already present", "replaced_tampered": "REPLACED"}
        text = f"{label.get(result.status, result.status)} {result.bytes} bytes in {result.seconds:.2f} s"
        return text, True

    async def _selftest(self, node: Node) -> tuple[str, bool]:
        from fleet_tui.fleet.selftest import check_counts, selftest_node

        checks, messages = await selftest_node(node, self.fleet_app.connections)
        counts = check_counts(checks)
        failed = [str(c.get("name")) for c in checks if c.get("status") == "fail"]
        text = f"{counts['pass']} pass, {counts['fail']} fail, {counts['skipped']} skipped"
        if failed:
            text += f" (failed: {', '.join(failed)})"
        if messages:
            text += f"; {len(messages)} agent message(s)"
        return text, not failed

    @on(NodeActionDone)
    def _node_action_done(self, message: NodeActionDone) -> None:
        state = self.states.get(message.name)
        if state is not None:
            state.actions = {**(state.actions or {}), message.action: message.text}
            self._show_detail()
        self.notify(
            f"{message.name}: {message.text}",
            title=message.action.capitalize(),
            severity="information" if message.ok else "error",
        )

    # -- filter, sort, auto-refresh -------------------------------------------------------

    def action_probe_selected(self) -> None:
        """Probe the node under the cursor only."""
        state = self._selected()
        if state is None:
            self.notify("no node is selected", title="Probe", severity="warning")
            return
        self.probe((state.node.name,), group=f"probe:{state.node.name}")

    def action_filter(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._rebuild_rows()

    @on(Input.Submitted, "#fleet-filter")
    def _filter_done(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.display = bool(self.filter_text)
        self.query_one(NodeTable).focus()

    def action_sort(self) -> None:
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self._sort()
        self.notify(f"sorted by {self.sort_key}", title="Sort", timeout=2)

    def _sort(self) -> None:
        self.query_one(NodeTable).sort(self.sort_key, key=lambda text: text.plain)

    def action_auto_refresh(self) -> None:
        index = AUTO_REFRESH_S.index(self.refresh_every_s) if self.refresh_every_s in AUTO_REFRESH_S else 0
        self.refresh_every_s = AUTO_REFRESH_S[(index + 1) % len(AUTO_REFRESH_S)]
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        if self.refresh_every_s:
            self._refresh_timer = self.set_interval(self.refresh_every_s, self.action_refresh)
        said = f"every {self.refresh_every_s} s" if self.refresh_every_s else "off"
        self.notify(f"auto-refresh {said}", title="Auto-refresh", timeout=2)
        self._summarise()

    def _rebuild_rows(self) -> None:
        table = self.query_one(NodeTable)
        table.clear()
        for state in self.states.values():
            if matches(state, self.filter_text):
                table.add_node(state)
        self._sort()
        self._show_detail()
        self._summarise()

    # -- drawing -----------------------------------------------------------------------------

    def _selected(self) -> NodeState | None:
        name = self.query_one(NodeTable).selected_name
        return None if name is None else self.states.get(name)

    def _redraw(self, state: NodeState) -> None:
        table = self.query_one(NodeTable)
        if state.node.name not in table.rows:  # filtered out; the totals still count it
            self._summarise()
            return
        table.show_state(state)
        self._summarise()
        selected = self._selected()
        if selected is not None and selected.node.name == state.node.name:
            self._show_detail()
            self.refresh_bindings()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._show_detail()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        settings = self.fleet_app.settings
        self.query_one(NodeDetail).show_node(
            self._selected(),
            known_hosts=str(settings.known_hosts_path()),
            accept_new=settings.accept_new_host_keys,
        )

    def _summarise(self) -> None:
        """The header's sub-title: how many nodes, how many answered, how many failed."""
        states = self.states.values()
        ok = sum(1 for s in states if s.status == "ok")
        probing = sum(1 for s in states if s.probing)
        failed = sum(1 for s in states if not s.probing and s.status not in ("ok", "not probed"))
        count = len(self.states)
        summary = f"{count} node{'' if count == 1 else 's'} · {ok} ok · {failed} failed"
        if probing:
            summary += f" · {probing} probing"
        self.sub_title = summary
        totals = fleet_totals(states)
        if self.filter_text:
            totals += f" · filter {self.filter_text!r}"
        if self.refresh_every_s:
            totals += f" · auto-refresh {self.refresh_every_s} s"
        self.query_one("#fleet-totals", Static).update(Text(totals))  # node text: never markup
