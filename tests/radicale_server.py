"""A real CalDAV server for tests: Radicale as a subprocess on a free loopback port, with its own
storage folder and a plain htpasswd file. It can be stopped and started again on the same port
(a calendar server that goes down and comes back), and calendars are made with MKCALENDAR."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from icalendar import Calendar


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Radicale:
    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.users = users or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "radicale.log"

    def add_user(self, name: str, password: str) -> None:
        self.users[name] = password
        self._write_users()

    def _write_users(self) -> None:
        (self.folder / "users").write_text("".join(f"{name}:{password}\n" for name, password in self.users.items()))

    def start(self, timeout: float = 20.0) -> Radicale:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_users()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", "", "--server-hosts", f"127.0.0.1:{self.port}",
                 "--storage-filesystem-folder", str(self.folder / "collections"), "--auth-type", "htpasswd",
                 "--auth-htpasswd-filename", str(self.folder / "users"), "--auth-htpasswd-encryption", "plain",
                 "--no-auth-htpasswd-cache", "--rights-type", "owner_only", "--web-type", "none",
                 "--logging-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"radicale exited early:\n{self.log_path.read_text(errors='replace')}")
            try:
                httpx.request("OPTIONS", self.url + "/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("radicale did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # Calendars -----------------------------------------------------------------------------

    def new_user(self, prefix: str = "staff") -> tuple[str, str]:
        name, password = f"{prefix}-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
        self.add_user(name, password)
        return name, password

    def make_calendar(self, user: str, name: str = "work") -> str:
        """MKCALENDAR ``/{user}/{name}/`` and return its URL."""
        url = f"{self.url}/{user}/{name}/"
        answer = httpx.request("MKCALENDAR", url, auth=(user, self.users[user]), timeout=10)
        assert answer.status_code == 201, answer.text
        return url

    def make_address_book(self, user: str, name: str = "contacts") -> str:
        """A collection that is not a calendar (a CardDAV address book)."""
        url = f"{self.url}/{user}/{name}/"
        body = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>'
                '<D:resourcetype><D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>')
        answer = httpx.request("MKCOL", url, content=body, auth=(user, self.users[user]), timeout=10,
                               headers={"Content-Type": "application/xml"})
        assert answer.status_code == 201, answer.text
        return url

    def get(self, user: str, url: str) -> httpx.Response:
        return httpx.get(url, auth=(user, self.users[user]), timeout=10)

    def event(self, user: str, url: str) -> Calendar | None:
        """The calendar object at ``url`` parsed, or None if there is none."""
        answer = self.get(user, url)
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.status_code
        return Calendar.from_ical(answer.text)

    def hrefs(self, user: str, calendar_url: str) -> list[str]:
        """The names of the calendar objects in a collection (PROPFIND depth 1)."""
        answer = httpx.request("PROPFIND", calendar_url, auth=(user, self.users[user]), timeout=10,
                               headers={"Depth": "1"})
        assert answer.status_code == 207, answer.status_code
        names = []
        for chunk in answer.text.split("<href>")[1:] + answer.text.split("<D:href>")[1:]:
            href = chunk.split("</")[0]
            if href.endswith(".ics"):
                names.append(href.rsplit("/", 1)[-1])
        return sorted(set(names))

    def stored_text(self) -> str:
        """Everything Radicale keeps on disk, as text (to check what a calendar holds after an erasure)."""
        return "".join(path.read_text(errors="replace") for path in (self.folder / "collections").rglob("*")
                       if path.is_file())
