"""SSH handshakes shared by the transport and host-key fetching: the in-flight cap, error mapping.

At most `MAX_HANDSHAKES` handshakes are in flight per event loop, because OpenSSH's sshd drops
connections beyond MaxStartups (default 10) that have not finished authenticating.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncssh

from fleet_tui.config.settings import SshSettings
from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

MAX_HANDSHAKES = 8

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def handshake_slot() -> AsyncIterator[None]:
    """Hold one of the MAX_HANDSHAKES slots of the running event loop."""
    loop = asyncio.get_running_loop()
    semaphore = _slots.setdefault(loop, asyncio.Semaphore(MAX_HANDSHAKES))
    async with semaphore:
        yield


def describe_target(node: Node) -> str:
    user = f"{node.user}@" if node.user else ""
    port = f":{node.port}" if node.port is not None else ""
    return f"{user}{node.host}{port}"


def map_connect_error(node: Node, settings: SshSettings, exc: BaseException) -> NodeError:
    """A connection failure as the operator should read it (host-key failures excluded)."""
    where = describe_target(node)
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, asyncssh.PermissionDenied):
        return NodeError(
            NodeErrorKind.AUTH_FAILED,
            node.name,
            f"authentication failed for {where}: {exc.reason or 'no key was accepted'}"
            + (f" (identity_file {node.identity_file})" if node.identity_file else ""),
        )
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return NodeError(NodeErrorKind.HOST_KEY_UNKNOWN, node.name, f"host key of {where} not trusted")
    if isinstance(exc, TimeoutError):  # connect_timeout raises the builtin TimeoutError
        return NodeError(
            NodeErrorKind.TIMEOUT,
            node.name,
            f"no SSH session with {where} within the {settings.connect_timeout:g} s connect timeout",
        )
    if isinstance(exc, ConnectionRefusedError):
        return NodeError(NodeErrorKind.UNREACHABLE, node.name, f"connection refused by {where}")
    if isinstance(exc, socket.gaierror):
        # The operator's to fix (the inventory's host, ~/.ssh/config or the resolver): retrying
        # the same name a few seconds later does not heal it, so it is a config error.
        return NodeError(
            NodeErrorKind.CONFIG,
            node.name,
            f"cannot resolve host {node.host!r} (check its inventory entry or ~/.ssh/config): {exc}",
        )
    if isinstance(exc, OSError):
        return NodeError(NodeErrorKind.UNREACHABLE, node.name, f"cannot reach {where}: {exc.strerror or exc}")
    if isinstance(exc, asyncssh.KeyImportError | asyncssh.KeyEncryptionError):
        return NodeError(NodeErrorKind.CONFIG, node.name, f"cannot use the SSH key for {where}: {exc}")
    if isinstance(exc, asyncssh.Error):
        return NodeError(
            NodeErrorKind.UNREACHABLE, node.name, f"SSH connection to {where} failed: {exc.reason}"
        )
    return NodeError(NodeErrorKind.UNREACHABLE, node.name, f"SSH connection to {where} failed: {exc!r}")
