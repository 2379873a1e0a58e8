"""known_hosts checks and explicit trust-on-first-use.

Host-key checking is never turned off. A host absent from known_hosts is `host_key_unknown`: the
operator sees the server key's fingerprint and may trust it explicitly (`--accept-new-host-keys`
headless, a confirm dialog in the TUI), which appends one line to known_hosts. A host present
with other keys is `host_key_changed` and always refused (it could be a man in the middle).
"""

from __future__ import annotations

import asyncio
import os
import socket
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from fleet_tui.config.settings import SshSettings
from fleet_tui.fleet.transport.base import HostKeyInfo, NodeError, NodeErrorKind
from fleet_tui.fleet.transport.handshake import handshake_slot, map_connect_error

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

DEFAULT_SSH_PORT = 22


def known_hosts_pattern(host: str, port: int) -> str:
    """`host` for port 22, `[host]:port` otherwise (OpenSSH known_hosts syntax)."""
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


def load_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """The known_hosts file as asyncssh matches it; a missing file trusts nothing.

    (Passing asyncssh an empty value would make it fall back to ~/.ssh/known_hosts, so an
    explicit empty object is used instead.)
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    return asyncssh.import_known_hosts(text)


def ssh_config_arg(settings: SshSettings) -> tuple[()] | None | list[str]:
    """SshSettings.ssh_config in asyncssh's terms."""
    if settings.ssh_config is None:
        return None
    if settings.ssh_config == ():
        return ()
    return [str(p) for p in settings.ssh_config]


def target_of(node: Node, settings: SshSettings) -> tuple[str, int]:
    """The host name and port that known_hosts is checked against, after ~/.ssh/config."""
    options = asyncssh.SSHClientConnectionOptions(
        config=ssh_config_arg(settings),
        host=node.host,
        port=node.port if node.port is not None else (),
        known_hosts=None,  # only host/port resolution is wanted here, no key loading
        client_keys=None,
        agent_path=None,
    )
    host = options.host_key_alias or options.host
    return host, int(options.port)


def _addresses(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return set()


def trusted_keys_for(path: Path, host: str, port: int) -> list[asyncssh.SSHKey]:
    """Keys known_hosts trusts for host:port (or its addresses), as asyncssh would match them."""
    known = load_known_hosts(path)
    keys: list[asyncssh.SSHKey] = []
    for addr in {host} | _addresses(host):
        matched = known.match(host, addr, port if port != DEFAULT_SSH_PORT else None)
        keys.extend(k for k in matched[0] if k not in keys)
    return keys


async def fetch_host_key(node: Node, settings: SshSettings) -> HostKeyInfo:
    """Connect just far enough to learn the server's host key. Nothing is trusted here."""

    host, port = await asyncio.to_thread(target_of, node, settings)
    try:
        async with handshake_slot():
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(
                    node.host,
                    node.port if node.port is not None else (),
                    tunnel=node.proxy_jump if node.proxy_jump else (),
                    config=ssh_config_arg(settings),
                ),
                settings.connect_timeout,
            )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise map_connect_error(node, settings, exc) from exc
    if key is None:
        raise NodeError(NodeErrorKind.UNREACHABLE, node.name, f"{host}:{port} offered no host key")
    public = key.export_public_key("openssh").decode().split()
    line = f"{known_hosts_pattern(host, port)} {public[0]} {public[1]}\n"
    return HostKeyInfo(node.name, host, port, key.get_algorithm(), key.get_fingerprint("sha256"), line)


_append_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def trust_host_key(info: HostKeyInfo, known_hosts_path: Path) -> None:
    """Append the key to known_hosts (creating ~/.ssh 0700 and the file 0600 if needed).

    Refuses when the file already holds a different key for that host: that is a changed key,
    and trust-on-first-use must never overwrite one.
    """
    loop = asyncio.get_running_loop()
    async with _append_locks.setdefault(loop, asyncio.Lock()):
        # A thread: reading the file and resolving the host's addresses both block.
        existing = await asyncio.to_thread(trusted_keys_for, known_hosts_path, info.host, info.port)
        new_key = asyncssh.import_public_key(info.line.split(None, 1)[1])
        if existing and new_key not in existing:
            raise NodeError(
                NodeErrorKind.HOST_KEY_CHANGED,
                info.node,
                f"{known_hosts_path} already has a different key for {info.host}:{info.port}; "
                "not overwriting it",
                fingerprint=info.fingerprint,
            )
        if new_key in existing:
            return
        await asyncio.to_thread(_append_line, known_hosts_path, info.line)


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b", buffering=0) as fh:
        # Keep the file line-structured even if its last line had no newline.
        size = fh.seek(0, os.SEEK_END)
        separator = b""
        if size > 0:
            fh.seek(size - 1)
            separator = b"" if fh.read(1) == b"\n" else b"\n"
        # One O_APPEND write: another ssh client appending at the same time cannot split the line.
        fh.write(separator + line.encode())


async def classify_host_key_failure(node: Node, settings: SshSettings) -> NodeError:
    """After HostKeyNotVerifiable: changed (known_hosts has other keys) or unknown (absent)."""
    path = settings.known_hosts_path()
    host, port = await asyncio.to_thread(target_of, node, settings)
    where = known_hosts_pattern(host, port)
    if await asyncio.to_thread(trusted_keys_for, path, host, port):
        fingerprint: str | None = None
        try:
            fingerprint = (await fetch_host_key(node, settings)).fingerprint
        except NodeError:
            pass
        return NodeError(
            NodeErrorKind.HOST_KEY_CHANGED,
            node.name,
            f"HOST KEY CHANGED for {where}: the server now presents {fingerprint or 'another key'}, "
            f"which does not match {path}. Refusing to connect (possible man-in-the-middle). If the "
            f"node was reinstalled, remove its old line with `ssh-keygen -R '{where}' -f {path}`.",
            fingerprint=fingerprint,
        )
    info = await fetch_host_key(node, settings)
    return NodeError(
        NodeErrorKind.HOST_KEY_UNKNOWN,
        node.name,
        f"unknown host key for {where} ({info.key_type} {info.fingerprint}); not in {path}. "
        "Check the fingerprint, then trust it with --accept-new-host-keys (or confirm in the TUI).",
        fingerprint=info.fingerprint,
    )
