"""Headless Chromium driven over the DevTools protocol (aiohttp's websocket client): open a page, collect its
console errors and uncaught exceptions, check its images decoded, take a screenshot.

Started with its own profile directory and stopped by its pid. :func:`chromium` is None when no Chromium is
installed (tests then skip).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from driftline.embedded.stack import stop_process

IMAGES_RENDERED = (
    "(() => { const imgs = Array.from(document.images);"
    " return {count: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)}; })()"
)


def chromium() -> str | None:
    """Path of an installed Chromium (Debian's ``chromium`` or another common name)."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)


@dataclass
class PageCheck:
    """What the browser saw on a page."""

    errors: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""


def check_page(path: Path, profile: Path, timeout: float = 60.0) -> PageCheck:
    """Open ``path`` in headless Chromium and report console errors, exceptions, images and a screenshot."""
    binary = chromium()
    assert binary is not None, "no Chromium installed"
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port = _devtools_port(profile / "DevToolsActivePort", proc, timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        return asyncio.run(asyncio.wait_for(_inspect(pages[0]["webSocketDebuggerUrl"], path), timeout))
    finally:
        stop_process(proc)


def _devtools_port(port_file: Path, proc: subprocess.Popen, timeout: float) -> int:
    """The port Chromium chose, from the file it writes once DevTools listens."""
    deadline = time.monotonic() + timeout
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(0.05)
    return int(port_file.read_text().split()[0])


async def _inspect(ws_url: str, path: Path) -> PageCheck:
    check = PageCheck()
    ids = itertools.count(1)
    waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
    loaded = asyncio.Event()
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:

        async def listen() -> None:
            async for message in ws:
                data = json.loads(message.data)
                if "id" in data and data["id"] in waiting:
                    waiting.pop(data["id"]).set_result(data)
                    continue
                method, params = data.get("method"), data.get("params", {})
                if method == "Page.loadEventFired":
                    loaded.set()
                elif method == "Runtime.exceptionThrown":
                    check.errors.append(params["exceptionDetails"].get("text", "exception"))
                elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    check.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    check.errors.append(params["entry"]["text"])

        async def call(method: str, **params: Any) -> dict[str, Any]:
            number = next(ids)
            waiting[number] = asyncio.get_running_loop().create_future()
            await ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
            answer = await waiting[number]
            if "error" in answer:
                raise RuntimeError(f"{method}: {answer['error']}")
            return answer["result"]

        listener = asyncio.create_task(listen())
        for domain in ("Page", "Runtime", "Log"):
            await call(f"{domain}.enable")
        await call("Page.navigate", url=path.resolve().as_uri())
        await loaded.wait()
        result = await call("Runtime.evaluate", expression=IMAGES_RENDERED, returnByValue=True)
        images = result["result"]["value"]
        check.images, check.broken_images = images["count"], images["broken"]
        check.title = (await call("Runtime.evaluate", expression="document.title", returnByValue=True))["result"][
            "value"
        ]
        shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        check.screenshot = base64.b64decode(shot["data"])
        listener.cancel()
    return check
