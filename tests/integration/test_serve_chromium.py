"""`fleet-tui serve` for real: the installed command on a free loopback port, the page opened in
Debian's headless Chromium, the Fleet screen's text read off the websocket.

textual-serve draws the terminal with xterm.js on a canvas, so the DOM never holds the screen's
text: the text is checked on the websocket the page itself uses (the app's terminal output), and
the browser is checked by a screenshot taken once the first byte arrived (Chromium driven over its
DevTools protocol: a plain `--screenshot` fires before the app has painted).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and os.environ.get("FLEET_TUI_REQUIRE_CHROMIUM") == "1":
    raise RuntimeError("FLEET_TUI_REQUIRE_CHROMIUM=1, but chromium is missing (apt-get install chromium)")

pytestmark = pytest.mark.timeout(180)

WAIT_S = 60.0
"""Bound on each wait: the server starts in about a second, each tab's app in one or two more."""

ANSI = re.compile(
    r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"fleet-tui serve exited {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {WAIT_S:.0f} s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`fleet-tui serve` on a free loopback port, on a one-node inventory; yields its URL."""
    command = Path(sys.executable).parent / "fleet-tui"
    assert command.exists(), f"{command}: the package is not installed in this environment"
    inventory = tmp_path / "fleet.toml"
    # A node nothing listens for: its probe fails at once and the row still shows its name.
    inventory.write_text('[[node]]\nname = "served-node"\nhost = "127.0.0.1"\nport = 9\n')
    port = free_port()
    server = subprocess.Popen(
        [
            str(command),
            "serve",
            "--port",
            str(port),
            "--inventory",
            str(inventory),
            "--db",
            str(tmp_path / "fleet.db"),
            "--known-hosts",
            str(tmp_path / "known_hosts"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path), "COLUMNS": "120"},
        start_new_session=True,  # its own process group: the per-tab apps are stopped with it
    )
    try:
        wait_until_listening(port, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)  # textual-serve's own graceful exit
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
        try:  # any tab's app still running (the server's group is ours alone)
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_page_names_the_app_and_loads_its_terminal(served: str) -> None:
    with urllib.request.urlopen(served + "/", timeout=30) as response:
        assert response.status == 200
        page = response.read().decode()
    assert "fleet-tui" in page
    assert 'id="terminal"' in page and "/ws" in page


async def screen_text(url: str) -> str:
    """Open the page's websocket as the browser does (wide enough for the whole footer); the
    terminal text once the Fleet screen shows."""
    ws_url = url.replace("http://", "ws://") + "/ws?width=200&height=40"
    seen = ""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if message.type is aiohttp.WSMsgType.BINARY:
                seen += ANSI.sub("", message.data.decode("utf-8", "replace"))
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
            if "served-node" in seen and "Runs" in seen and "1 failed" in seen:
                break
        await ws.send_json(["stdin", "q"])
    return seen


def test_the_fleet_screen_is_served_over_the_websocket(served: str) -> None:
    text = asyncio.run(asyncio.wait_for(screen_text(served), WAIT_S + 20))
    assert "served-node" in text, text[-2000:]  # the node table's row
    assert "Fleet" in text and "Runs" in text  # the footer's bindings
    assert "1 failed" in text  # the totals bar


class DevTools:
    """Just enough of Chromium's DevTools protocol: send a command, await its answer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=WAIT_S)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result


def colours(png: bytes) -> int:
    with Image.open(io.BytesIO(png)) as image:
        found = image.convert("RGB").resize((256, 160)).getcolors(maxcolors=256 * 160)
        return len(found or ())


async def screenshot_after_first_byte(page_url: str, devtools_url: str) -> tuple[bool, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(devtools_url + "/json/list") as response:
            targets = await response.json()
        target = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Page.navigate", url=page_url + "/")
            first_byte = False
            shot = b""
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                answer = await tools.call(
                    "Runtime.evaluate", expression="document.body.classList.contains('-first-byte')"
                )
                first_byte = bool(answer.get("result", {}).get("value"))
                if first_byte:
                    shot = base64.b64decode((await tools.call("Page.captureScreenshot"))["data"])
                    # The fade-in takes 0.3 s: wait for a drawn screen, not a fixed time.
                    if colours(shot) > 12:
                        break
                await asyncio.sleep(0.2)
            return first_byte, shot


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (Debian package chromium) is not installed")
def test_chromium_shows_the_served_app(served: str, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1280,800",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        assert browser.stderr is not None
        devtools_url = None
        for line in browser.stderr:
            found = re.search(r"DevTools listening on ws://([^/]+)/", line)
            if found:
                devtools_url = f"http://{found.group(1)}"
                break
        assert devtools_url is not None, "chromium never opened its DevTools port"
        first_byte, shot = asyncio.run(
            asyncio.wait_for(screenshot_after_first_byte(served, devtools_url), WAIT_S + 20)
        )
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=30)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
    assert first_byte, "the page never received the app's first byte over its websocket"
    (tmp_path / "served.png").write_bytes(shot)
    # The loading card alone has a handful of colours; the drawn TUI (table, header, footer) many.
    assert colours(shot) > 12, f"the screenshot looks blank: {colours(shot)} colours"
