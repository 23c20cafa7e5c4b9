"""Open a local HTML file in real headless Chromium, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no port, no network, no extra Python package): which images loaded, what the
console said, and a screenshot. Used by tests/test_report.py."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

IMAGES = "JSON.stringify(Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]))"


def executable() -> str | None:
    """Debian's chromium (or a chromium-like browser on PATH), or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class _Pipe:
    """The DevTools protocol over fds 3 (commands in) and 4 (messages out) of the browser: JSON texts ended by NUL."""

    def __init__(self, browser: str, profile: str):
        commands_r, self.commands = os.pipe()
        self.messages, messages_w = os.pipe()

        def wire():  # in the child: the protocol's fixed fds
            os.dup2(commands_r, 3)
            os.dup2(messages_w, 4)

        self.process = subprocess.Popen(
            [browser, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}", "--window-size=1200,1600",
             "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_r)
        os.close(messages_w)
        self.buffer, self.events, self.next_id = b"", [], 0

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def receive(self, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            if time.monotonic() > end:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self.messages, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(text)
        if "method" in message:
            self.events.append(message)
        return message

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            message = self.receive(timeout)
            if message.get("method") == method:
                return message

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.commands)
        os.close(self.messages)


def open_page(path: Path, browser: str) -> dict:
    """Load ``path`` (file://, nothing else reachable) and return {"images": [[complete, naturalWidth, alt]],
    "errors": console errors and uncaught exceptions, "screenshot": PNG bytes of the page's first screen}."""
    with tempfile.TemporaryDirectory() as profile:
        pipe = _Pipe(browser, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired")
            images = json.loads(pipe.send("Runtime.evaluate", {"expression": IMAGES, "returnByValue": True},
                                          session=session)["result"]["value"])
            shot = base64.b64decode(pipe.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
            errors = [e["params"] for e in pipe.events
                      if e["method"] == "Runtime.exceptionThrown"
                      or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                      or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
        finally:
            pipe.close()
    return {"images": images, "errors": errors, "screenshot": shot}
