"""A minimal real-time collaboration client: the Y-websocket protocol over pycrdt.

It does what JupyterLab does for a shared notebook: opens a collaboration session on
the server (`PUT /api/collaboration/session/<path>`), connects to the room's websocket,
runs the Y sync protocol, and sends every local change as a Y update.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import quote, urlsplit

import requests
from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from websockets.sync.client import connect


def open_session(session: requests.Session, server_url: str, path: str) -> dict:
    """Ask the server for the collaboration room of a notebook (as JupyterLab does)."""
    server_path = urlsplit(server_url).path.rstrip("/") + "/"
    xsrf = session.cookies.get("_xsrf", path=server_path) or ""
    response = session.put(
        f"{server_url}/api/collaboration/session/{quote(path)}",
        json={"format": "json", "type": "notebook"},
        headers={"X-XSRFToken": xsrf},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


class NotebookPeer:
    """One participant in a notebook's collaboration room."""

    def __init__(self, session: requests.Session, server_url: str, room: dict):
        parts = urlsplit(server_url)
        server_path = parts.path.rstrip("/") + "/"
        xsrf = session.cookies.get("_xsrf", path=server_path) or ""
        url = (
            f"ws://{parts.netloc}{parts.path.rstrip('/')}/api/collaboration/room/"
            f"{room['format']}:{room['type']}:{room['fileId']}"
            f"?sessionId={room['sessionId']}&_xsrf={xsrf}"
        )
        cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
        self.doc = Doc()
        self._lock = threading.RLock()
        self._applying_remote = False
        self.synced = threading.Event()
        self.websocket = connect(
            url,
            additional_headers={"Cookie": cookies, "Origin": f"{parts.scheme}://{parts.netloc}"},
            open_timeout=15,
        )
        self.doc.observe(self._send_local_update)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.websocket.send(create_sync_message(self.doc))

    def _send_local_update(self, event) -> None:
        if not self._applying_remote:
            self.websocket.send(create_update_message(event.update))

    def _read(self) -> None:
        try:
            for message in self.websocket:
                if not isinstance(message, bytes) or message[0] != YMessageType.SYNC:
                    continue  # awareness and other messages
                with self._lock:
                    self._applying_remote = True
                    try:
                        reply = handle_sync_message(message[1:], self.doc)
                    finally:
                        self._applying_remote = False
                self.synced.set()
                if reply is not None:
                    self.websocket.send(reply)
        except Exception:  # noqa: BLE001 - the connection closed; tests see stale state
            return

    def cell_source(self, index: int = 0) -> str | None:
        with self._lock:
            cells = self.doc.get("cells", type=Array)
            if len(cells) <= index:
                return None
            cell = cells[index]
            return str(cell["source"]) if isinstance(cell, Map) and "source" in cell else None

    def append_to_cell(self, text: str, index: int = 0) -> None:
        with self._lock:
            source = self.doc.get("cells", type=Array)[index]["source"]
            assert isinstance(source, Text)
            source += text

    def wait_for_source(self, expected: str, timeout: float = 30) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.cell_source()
            if current == expected:
                return current
            time.sleep(0.1)
        return self.cell_source()

    def close(self) -> None:
        self.websocket.close()
