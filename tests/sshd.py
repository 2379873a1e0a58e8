"""A test fleet of real OpenSSH sshd processes on loopback addresses (127.0.0.2, 127.0.0.3, ...).

Each node gets its own sshd (``sshd -D -e -f <cfg>``), its own temporary ed25519 host key and
its own HOME. Tests run as root, so every node logs in as root with one temporary client key;
``SetEnv HOME=<node home>`` in sshd_config gives each node an isolated home (sshd applies the
admin's SetEnv after its own HOME, so it wins; `test_transport.py` checks that
``printf %s "$HOME"`` returns it). The login's working directory stays root's real home, which
is why the controller always works with absolute paths built from ``$HOME``.

Used by the fixtures in ``tests/conftest.py`` and by ``tests/bench/bench_probe.py``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
START_TIMEOUT_S = 10.0


def sshd_missing_reason() -> str | None:
    """Why the sshd fleet cannot run here, or None when it can."""
    if not SSHD.exists():
        return f"{SSHD} is not installed (apt-get install openssh-server)"
    if shutil.which(SSH_KEYGEN) is None:
        return "ssh-keygen is not installed (apt-get install openssh-client)"
    if os.geteuid() != 0:
        return "the sshd fleet needs root (sshd must read its config and switch to the login user)"
    return None


def loopback_address(index: int) -> str:
    """127.0.0.2, 127.0.0.3, ... wrapping within 127.0.0.2-254 (ports tell nodes apart)."""
    return f"127.0.0.{2 + index % 253}"


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def _descendants(root_pid: int) -> list[int]:
    """All processes below root_pid (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the parenthesised name
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [root_pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


@dataclasses.dataclass
class SshdNode:
    """One sshd: its address, port, files and process."""

    index: int
    address: str
    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def config(self) -> Path:
        return self.root / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    def host_public_key(self) -> str:
        """The host key as ``type base64`` (no comment)."""
        parts = (self.root / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    def known_hosts_line(self, public_key: str | None = None) -> str:
        return f"[{self.address}]:{self.port} {public_key or self.host_public_key()}\n"


class SshdFleet:
    """N sshd processes; `nodes` are inventory Nodes that reach them with `settings`.

    `kill(i)` SIGKILLs node i's sshd and every process under it (connections, sessions), like
    a machine that drops off the network: existing connections break and new ones are refused.
    `restart(i)` brings it back on the same address, port and host key.
    """

    def __init__(self, root: Path, count: int, *, first_index: int = 0, start: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
        self.client_key = root / "client_ed25519"
        if not self.client_key.exists():
            keygen(self.client_key, "fleet-tui-test-client")
        self.authorized_keys = root / "authorized_keys"
        self.authorized_keys.write_text((root / "client_ed25519.pub").read_text())
        self.known_hosts = root / "known_hosts"
        self.sshds: list[SshdNode] = []
        for i in range(first_index, first_index + count):
            address = loopback_address(i)
            node_root = root / f"node{i}"
            node_root.mkdir()
            sshd = SshdNode(index=i, address=address, port=free_port(address), root=node_root)
            sshd.home.mkdir()
            keygen(sshd.host_key, f"fleet-tui-test-node{i}")
            self._write_config(sshd)
            self.sshds.append(sshd)
        self.known_hosts.write_text("".join(s.known_hosts_line() for s in self.sshds))
        self.settings = SshSettings(
            known_hosts=self.known_hosts,
            ssh_config=None,  # the developer's ~/.ssh/config must not leak in
            connect_timeout=5.0,
            keepalive_interval=5.0,
            keepalive_count_max=2,
            use_ssh_agent=False,
        )
        self.nodes: list[Node] = [
            Node(
                name=f"ssh{s.index}",
                host=s.address,
                port=s.port,
                user="root",
                identity_file=str(self.client_key),
                python=sys.executable,
                source=str(s.config),
            )
            for s in self.sshds
        ]
        if start:
            try:
                self.start_all()
            except BaseException:
                self.close()  # the caller gets no fleet to close: stop the sshds that did start
                raise

    def _write_config(self, sshd: SshdNode) -> None:
        sshd.config.write_text(
            "\n".join(
                [
                    f"ListenAddress {sshd.address}:{sshd.port}",
                    f"HostKey {sshd.host_key}",
                    f"PidFile {sshd.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "AllowTcpForwarding yes",
                    "PrintMotd no",
                    "Subsystem sftp internal-sftp",
                    f"SetEnv HOME={sshd.home}",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start_all(self) -> None:
        for i in range(len(self.sshds)):
            self._spawn(i)
        for i in range(len(self.sshds)):
            self._wait_ready(i)

    def _spawn(self, i: int) -> None:
        sshd = self.sshds[i]
        log = open(sshd.root / "sshd.log", "ab")  # noqa: SIM115 - handed to the child process
        try:
            sshd.process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(sshd.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()

    def _wait_ready(self, i: int) -> None:
        """Wait until the sshd answers with its SSH banner."""
        sshd = self.sshds[i]
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = ""
        while time.monotonic() < deadline:
            assert sshd.process is not None
            if sshd.process.poll() is not None:
                log = (sshd.root / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd for node {i} exited with {sshd.process.returncode}: {log[-2000:]}")
            try:
                with socket.create_connection((sshd.address, sshd.port), timeout=1.0) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.02)
        raise RuntimeError(f"sshd for node {i} on {sshd.address}:{sshd.port} not ready: {last_error}")

    def kill(self, i: int) -> None:
        """SIGKILL node i's sshd and every process under it; its port then refuses."""
        sshd = self.sshds[i]
        if sshd.process is None:
            return
        # Connection processes call setsid(), so a process-group kill would miss them: take the
        # whole tree (connections, sessions, agents), like a machine that loses power.
        victims = [sshd.process.pid, *_descendants(sshd.process.pid)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sshd.process.wait()
        sshd.process = None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((sshd.address, sshd.port)) == 0:
                raise RuntimeError(f"node {i} still accepts connections after kill")

    def restart(self, i: int) -> None:
        """Start node i's sshd again: same address, port and host key."""
        self.kill(i)
        self._spawn(i)
        self._wait_ready(i)

    def close(self) -> None:
        for i in range(len(self.sshds)):
            self.kill(i)

    # -- views for tests -----------------------------------------------------------------------

    def home(self, i: int) -> Path:
        return self.sshds[i].home

    def empty_known_hosts(self) -> Path:
        """A known_hosts file that trusts no node (for the unknown-host-key path)."""
        path = self.root / "known_hosts.empty"
        path.write_text("")
        return path

    def wrong_known_hosts(self) -> Path:
        """A known_hosts file with a different key for every node (for the changed-key path)."""
        path = self.root / "known_hosts.wrong"
        impostor = self.root / "impostor_ed25519"
        if not impostor.exists():
            keygen(impostor, "impostor")
        parts = (self.root / "impostor_ed25519.pub").read_text().split()
        path.write_text("".join(s.known_hosts_line(f"{parts[0]} {parts[1]}") for s in self.sshds))
        return path

    def __enter__(self) -> SshdFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
