"""Agent entry point: ``python -u agent-<sha16>.pyz <command>``; events on stdout, logs on stderr.

Commands:
    probe     print hello, facts, done
    run       read one JSON job line from stdin, run it, stream events (see node_agent.runner)
    selftest  check on this node the platform assumptions the agent relies on
    build     build a content-addressed workload artifact (controller side, local subprocess)
    version   print hello, done
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from node_agent import AGENT_VERSION
from node_agent.protocol import AgentExit, Emitter

_PYZ_NAME = re.compile(r"agent-([0-9a-f]{16})\.pyz$")


def agent_archive() -> str | None:
    """The zipapp this agent runs from, or None when run from a source tree."""
    path = sys.argv[0] if sys.argv else ""
    return path if _PYZ_NAME.search(path) and os.path.isfile(path) else None


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def new_sha256() -> Hasher:
    """A sha256 hasher: CPython's builtin one where present, since `import hashlib` loads OpenSSL
    first (~2 ms on every agent start, and `probe` runs on every fleet refresh)."""
    for builtin in ("_sha2", "_sha256"):  # CPython 3.12+, 3.11
        try:
            hasher: Hasher = __import__(builtin).sha256()
            return hasher
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256()


def agent_sha() -> str:
    """sha256 of the running zipapp, or 'source' when not running from one."""
    archive = agent_archive()
    if archive is None:
        return "source"
    digest = new_sha256()
    with open(archive, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_self(out: Emitter) -> str | None:
    """Check that the archive's bytes match the hash in its name; emit an error if not."""
    archive = agent_archive()
    sha = agent_sha()
    if archive is None:
        return sha
    match = _PYZ_NAME.search(archive)
    assert match is not None
    if not sha.startswith(match.group(1)):
        out.error(
            "agent_tampered",
            f"{archive}: sha256 {sha[:16]}... does not match the name's {match.group(1)}; "
            "the file was modified on the node. Redeploy with `fleet-tui deploy`.",
        )
        return None
    return sha


def _machine() -> str:
    """platform.machine() without importing platform (a few ms on every agent start)."""
    try:
        return os.uname().machine
    except AttributeError:  # no uname on this platform
        import platform

        return platform.machine()


def hello_fields(sha: str) -> dict[str, object]:
    """What the controller learns about this agent before anything else."""
    from node_agent.capabilities import available_engines, available_workloads, library_versions

    libs = library_versions()
    return {
        "agent_sha": sha,
        "agent_version": AGENT_VERSION,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": sys.platform,
        "machine": _machine(),
        "pid": os.getpid(),
        "libs": libs,
        "engines": available_engines(libs),
        "workloads": available_workloads(),
    }


def _cmd_probe(out: Emitter, argv: Sequence[str]) -> int:
    from node_agent.facts import collect_facts

    out.emit("facts", facts=collect_facts())
    return AgentExit.OK


def _cmd_version(out: Emitter, argv: Sequence[str]) -> int:
    return AgentExit.OK


def _cmd_run(out: Emitter, argv: Sequence[str]) -> int:
    from node_agent.runner import run_job_from_stdin

    return run_job_from_stdin(out)


def _cmd_selftest(out: Emitter, argv: Sequence[str]) -> int:
    from node_agent.selftest import run_selftest

    return run_selftest(out)


def _cmd_build(out: Emitter, argv: Sequence[str]) -> int:
    from node_agent.artifacts import build_main

    return build_main(out, argv)


COMMANDS: dict[str, Callable[[Emitter, Sequence[str]], int]] = {
    "probe": _cmd_probe,
    "run": _cmd_run,
    "selftest": _cmd_selftest,
    "build": _cmd_build,
    "version": _cmd_version,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = Emitter()
    command = args[0] if args else ""
    handler = COMMANDS.get(command)
    if handler is None:
        out.error("bad_command", f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
        out.done(AgentExit.BAD_INPUT)
        return AgentExit.BAD_INPUT
    sha = verify_self(out)
    if sha is None:
        out.done(AgentExit.TAMPERED)
        return AgentExit.TAMPERED
    out.emit("hello", command=command, **hello_fields(sha))
    try:
        code = handler(out, args[1:])
    except KeyboardInterrupt:
        code = AgentExit.INTERRUPTED
    except Exception as exc:  # the last line of defence: report, never a bare traceback on stdout
        import traceback

        traceback.print_exc(file=sys.stderr)
        out.error("internal", f"{type(exc).__name__}: {exc}")
        code = AgentExit.INTERNAL
    out.done(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
