"""known_hosts checks and explicit trust-on-first-use.

Host-key checking is never turned off. A host absent from known_hosts is `host_key_unknown`: the
operator sees the server key's fingerprint and may trust it explicitly (`--accept-new-host-keys`
headless, a confirm dialog in the TUI), which appends one line to known_hosts. A host present
with other keys is `host_key_changed` and always refused (it could be a man in the middle). A key
known_hosts marks `@revoked` is `host_key_revoked`: refused and never written, whatever the flags.
A known_hosts that cannot be read or written (a directory, under a file, read-only) is the
operator's config error (`config`, never retried), naming the path.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import asyncssh

from fleet_tui.config.files import ConfigFileError, file_kind, read_regular_text
from fleet_tui.config.settings import SshSettings
from fleet_tui.fleet.transport.base import HostKeyInfo, NodeError, NodeErrorKind
from fleet_tui.fleet.transport.handshake import handshake_slot, map_connect_error

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

DEFAULT_SSH_PORT = 22


def known_hosts_pattern(host: str, port: int) -> str:
    """`host` for port 22, `[host]:port` otherwise (OpenSSH known_hosts syntax)."""
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


KNOWN_HOSTS_MAX_BYTES = 64 * 1024 * 1024


class KnownHostsError(Exception):
    """known_hosts cannot be read or written: the operator's config, never the node's fault.

    The message names the path and the reason.
    """


def load_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """The known_hosts file as asyncssh matches it; a missing file trusts nothing.

    (Passing asyncssh an empty value would make it fall back to ~/.ssh/known_hosts, so an
    explicit empty object is used instead.) A directory, a FIFO, a path under a file or an
    unreadable file raises KnownHostsError: retrying cannot fix it and no node is to blame.
    """
    try:
        text = read_regular_text(path, KNOWN_HOSTS_MAX_BYTES)
    except ConfigFileError as exc:
        if not path.exists() and not path.is_symlink() and _parent_is_usable(path):
            text = ""  # absent: nothing trusted yet (created on the first trusted key)
        else:
            raise KnownHostsError(f"known_hosts {path} cannot be read: {exc}") from None
    try:
        return asyncssh.import_known_hosts(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise KnownHostsError(f"known_hosts {path} cannot be parsed: {exc}") from None


def _parent_is_usable(path: Path) -> bool:
    """Every existing ancestor of `path` is a directory (else the file can never exist)."""
    for folder in path.parents:
        if folder.exists():
            return folder.is_dir()
    return True


def known_hosts_problem(settings: SshSettings) -> str | None:
    """Why the controller cannot use its known_hosts (None when it can), checked before any node.

    Reading it must work (a missing file is fine); with `accept_new_host_keys` it must also be
    writable, which is tested by opening it for append (created 0600 if absent, as the first
    trusted key would create it): a read-only mount or folder is found now, not after a node's
    key was fetched.
    """
    path = settings.known_hosts_path()
    try:
        load_known_hosts(path)
    except KnownHostsError as exc:
        return str(exc)
    if settings.accept_new_host_keys:
        try:
            _open_for_append(path).close()
        except KnownHostsError as exc:
            return str(exc)
    return None


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
    return _matching(load_known_hosts(path), host, port)


def revoked_keys_for(path: Path, host: str, port: int) -> list[asyncssh.SSHKey]:
    """Keys known_hosts marks `@revoked` for host:port (or its addresses, or a wildcard).

    Matched as trusted keys of a known_hosts holding only the revoked lines (marker removed):
    asyncssh's own match drops the revoked keys of `[host]:port` when that pattern trusts no
    key, so a lone `@revoked [host]:port` line would otherwise look like an unknown host.
    """
    load_known_hosts(path)  # the same checks and errors as every other read
    try:
        text = read_regular_text(path, KNOWN_HOSTS_MAX_BYTES)
    except ConfigFileError:
        text = ""  # absent (load_known_hosts refused every other reason)
    lines = [
        line.strip().split(None, 1)[1]
        for line in text.splitlines()
        if line.strip().startswith("@revoked ") and len(line.split()) >= 3
    ]
    return _matching(asyncssh.import_known_hosts("\n".join(lines) + "\n"), host, port)


def _matching(known: asyncssh.SSHKnownHosts, host: str, port: int) -> list[asyncssh.SSHKey]:
    keys: list[asyncssh.SSHKey] = []
    for addr in {host} | _addresses(host):
        matched = known.match(host, addr, port if port != DEFAULT_SSH_PORT else None)
        keys.extend(k for k in matched[0] if k not in keys)
    return keys


def _revoked_message(where: str, fingerprint: str, path: Path) -> str:
    return (
        f"host key REVOKED for {where}: the server presents {fingerprint}, which {path} marks "
        "@revoked. Refusing to connect, and never trusting it (--accept-new-host-keys does not "
        "apply); the node must get a new host key."
    )


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
    try:
        await _trust_host_key(info, known_hosts_path)
    except KnownHostsError as exc:
        raise NodeError(NodeErrorKind.CONFIG, info.node, str(exc)) from None


async def _trust_host_key(info: HostKeyInfo, known_hosts_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with _append_locks.setdefault(loop, asyncio.Lock()):
        # A thread: reading the file and resolving the host's addresses both block.
        existing = await asyncio.to_thread(trusted_keys_for, known_hosts_path, info.host, info.port)
        revoked = await asyncio.to_thread(revoked_keys_for, known_hosts_path, info.host, info.port)
        new_key = asyncssh.import_public_key(info.line.split(None, 1)[1])
        if new_key in revoked:
            raise NodeError(
                NodeErrorKind.HOST_KEY_REVOKED,
                info.node,
                _revoked_message(
                    known_hosts_pattern(info.host, info.port), info.fingerprint, known_hosts_path
                ),
                fingerprint=info.fingerprint,
            )
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


def _open_for_append(path: Path) -> BinaryIO:
    """known_hosts opened for reading and appending (~/.ssh created 0700, the file 0600)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise KnownHostsError(f"known_hosts {path} cannot be written: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        kind = file_kind(os.fstat(fd).st_mode)
        os.close(fd)
        raise KnownHostsError(f"known_hosts {path} cannot be written: {kind}, not a regular file")
    return os.fdopen(fd, "r+b", buffering=0)


def _append_line(path: Path, line: str) -> None:
    with _open_for_append(path) as fh:
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
    try:
        return await _classify_host_key_failure(node, settings)
    except KnownHostsError as exc:
        return NodeError(NodeErrorKind.CONFIG, node.name, str(exc))


async def _classify_host_key_failure(node: Node, settings: SshSettings) -> NodeError:
    path = settings.known_hosts_path()
    host, port = await asyncio.to_thread(target_of, node, settings)
    where = known_hosts_pattern(host, port)
    if await asyncio.to_thread(revoked_keys_for, path, host, port):
        # Checked first: a revoked key is neither "unknown" (trust-on-first-use would write it)
        # nor "changed" (the operator would be told to delete the old line and retry).
        offered = await fetch_host_key(node, settings)
        public = asyncssh.import_public_key(offered.line.split(None, 1)[1])
        if public in await asyncio.to_thread(revoked_keys_for, path, host, port):
            return NodeError(
                NodeErrorKind.HOST_KEY_REVOKED,
                node.name,
                _revoked_message(where, offered.fingerprint, path),
                fingerprint=offered.fingerprint,
            )
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
