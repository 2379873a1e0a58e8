"""The panel under the fleet table: everything about the selected node, errors in full."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static

from fleet_tui.app.state import MISSING, PROBING, NodeState, format_memory, show
from fleet_tui.fleet.transport.base import NodeErrorKind


def _address(state: NodeState) -> str:
    node = state.node
    if node.transport == "local":
        return "local (this machine)"
    user = f"{node.user}@" if node.user else ""
    port = f":{node.port}" if node.port else ""
    return f"ssh {user}{node.host}{port}"


def _known_hosts_name(host: str, port: int | None) -> str:
    """The host pattern known_hosts uses: "host" on port 22, "[host]:port" otherwise."""
    return host if port in (None, 22) else f"[{host}]:{port}"


def detail_content(state: NodeState, *, known_hosts: str, accept_new: bool) -> Content:
    """The detail text of one node. User-supplied strings are template variables (escaped)."""
    node = state.node
    parts: list[Content] = [
        Content.from_markup(
            "[b]$name[/b]  $address  tier $tier",
            name=node.name,
            address=_address(state),
            tier=show(node.tier),
        )
    ]
    result = state.result

    if state.probing:
        parts.append(Content.from_markup("[dim]$text[/dim]", text=PROBING))
    if state.aborted is not None:
        parts.append(Content.from_markup("[$error]probe crashed:[/] $msg", msg=state.aborted))

    error = None if result is None or result.ok else result.error
    if error is not None and error.kind != NodeErrorKind.HOST_KEY_CHANGED:
        parts.append(
            Content.from_markup("[$error b]$kind[/]  $msg", kind=error.kind.value, msg=error.message)
        )
    if error is not None:
        pattern = _known_hosts_name(node.host, node.port)
        if error.kind == NodeErrorKind.HOST_KEY_UNKNOWN:
            parts.append(
                Content.from_markup(
                    "fingerprint [b]$fp[/b]  [$accent]press t to review and trust this key[/]",
                    fp=error.fingerprint or "(fetched when you press t)",
                )
            )
        elif error.kind == NodeErrorKind.HOST_KEY_CHANGED:
            # Never offer trust here: a changed key is what an attacker in the middle looks like.
            parts.append(
                Content.from_markup(
                    "[$error b]host_key_changed[/]  [$warning b]WARNING: this host's key CHANGED since "
                    "it was trusted.[/] "
                    "Someone may be intercepting the connection (man-in-the-middle), or the "
                    "machine was reinstalled. fleet-tui will not connect and will not replace the key.\n"
                    "If you know why it changed, remove the old line by hand: "
                    "[b]ssh-keygen -R '$pattern' -f $file[/b], then press r.",
                    pattern=pattern,
                    file=known_hosts,
                )
            )
            if error.fingerprint:
                parts.append(Content.from_markup("key now offered: $fp", fp=error.fingerprint))

    accepted = None if result is None else result.host_key_accepted
    if accepted is not None:
        # Trusted without asking (--accept-new-host-keys): the operator must still see what.
        parts.append(
            Content.from_markup(
                "[$warning]host key accepted on first use:[/] $type [b]$fp[/b] (added to $file)",
                type=accepted.key_type,
                fp=accepted.fingerprint,
                file=known_hosts,
            )
        )

    if result is not None and result.tier_note:
        parts.append(Content.from_markup("[$warning]tier:[/] $note", note=result.tier_note))

    facts: dict[str, Any] = state.facts
    if facts:
        libs = facts.get("libs")
        lib_text = (
            ", ".join(f"{k} {v}" for k, v in sorted(libs.items()) if v) if isinstance(libs, dict) else ""
        )
        parts.append(
            Content.from_markup(
                "chip $chip  model $model  hostname $hostname\n"
                "os $os  kernel $kernel  python $python  rosetta $rosetta\n"
                "memory $memory  pressure $mempressure  swap used $swap  uptime $uptime\n"
                "thermal $thermal (via $tsource)  libs $libs",
                chip=show(facts.get("chip")),
                model=show(facts.get("hw_model")),
                hostname=show(facts.get("hostname")),
                os=_os_long(facts),
                kernel=show(facts.get("kernel")),
                python=show(facts.get("python")),
                rosetta=show(facts.get("rosetta")),
                memory=format_memory(facts.get("memory_bytes")),
                mempressure=show(facts.get("memory_pressure")),
                swap=format_memory(facts.get("swap_used_bytes")),
                uptime=_uptime(facts.get("uptime_s")),
                thermal=show(facts.get("thermal_pressure")),
                tsource=show(facts.get("thermal_source")),
                libs=lib_text or MISSING,
            )
        )

    if result is not None and (result.hello or result.deploy):
        sha = (result.hello or {}).get("agent_sha")
        deploy = result.deploy
        deploy_text = (
            f"{deploy.status} ({deploy.bytes} bytes, {deploy.seconds:.2f} s)"
            if deploy is not None
            else MISSING
        )
        parts.append(
            Content.from_markup(
                "agent $sha  deploy $deploy  probe took $secs s",
                sha=show(sha),
                deploy=deploy_text,
                secs=f"{result.seconds:.2f}",
            )
        )
    elif result is not None:
        parts.append(Content.from_markup("probe took $secs s", secs=f"{result.seconds:.2f}"))
    if state.probed_at is not None:
        parts.append(Content.from_markup("last probe $when", when=state.probed_at))
    for action, outcome in (state.actions or {}).items():
        parts.append(Content.from_markup("[dim]$action[/] $outcome", action=action, outcome=outcome))
    for line in state.recent_runs:
        parts.append(Content.from_markup("[dim]run[/] $line", line=line))
    if accept_new and node.transport != "local":
        parts.append(
            Content.from_markup("[dim]--accept-new-host-keys: unknown host keys are trusted on first use[/]")
        )
    return Content("\n").join(parts)


def _os_long(facts: dict[str, Any]) -> str:
    """ "macOS 14.5 (23F79)" or "Linux · Debian GNU/Linux 12 (bookworm)"."""
    name = facts.get("os")
    if not name:
        return MISSING
    pretty = {"macos": "macOS", "linux": "Linux"}.get(str(name), str(name))
    version, build = facts.get("os_version"), facts.get("os_build")
    if name != "macos" and version:
        return f"{pretty} · {version}"
    text = f"{pretty} {version}" if version else pretty
    return f"{text} ({build})" if build else text


def _uptime(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return MISSING
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"


class NodeDetail(Static):
    """Shows `detail_content` for the node under the table cursor."""

    def show_node(self, state: NodeState | None, *, known_hosts: str, accept_new: bool) -> None:
        """Redraw for this node (or a hint when the table is empty)."""
        if state is None:
            self.update("No nodes in the inventory.")
            return
        self.update(detail_content(state, known_hosts=known_hosts, accept_new=accept_new))
