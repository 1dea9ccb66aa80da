"""Shared-password login with a separate admin password, username rules and lockout.

Built on JupyterHub's own `SharedPasswordAuthenticator` (constant-time compares, admin
password >= 32 characters and different from the user password, admins *must* use
the admin password). Added here: username normalisation and validation with a clear
message on the login page, and brute-force protection per username and per address.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.handlers.login import LoginHandler
from traitlets import Integer

from .usernames import normalize_username, username_problem


class LoginRefused(Exception):
    """A login refused before the password is checked; `message` is shown to the user."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.message = message
        self.status = status


class FailureLog:
    """Recent failure times per key, in a sliding window; bounded in memory.

    Pure logic (time is passed in), so it is unit-tested without a clock.
    """

    def __init__(self, window_seconds: float, max_keys: int = 10_000):
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def count(self, key: str, now: float) -> int:
        return len(self._recent(key, now))

    def record(self, key: str, now: float) -> int:
        times = self._recent(key, now)
        if key not in self._failures:
            self._failures[key] = times
        self._failures.move_to_end(key)
        times.append(now)
        while len(self._failures) > self.max_keys:
            # Forget the least recently failing key rather than grow without bound.
            self._failures.popitem(last=False)
        return len(times)

    def retry_after(self, key: str, limit: int, now: float) -> float | None:
        """Seconds until `key` may try again, or None if it is not locked out."""
        times = self._recent(key, now)
        if len(times) < limit:
            return None
        # Locked until enough of the failures have aged out of the window.
        return times[len(times) - limit] + self.window_seconds - now

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


def describe_wait(seconds: float) -> str:
    """'1 second', '45 seconds', '5 minutes': rounded up, so the user never retries too early."""
    if seconds < 60:
        count, unit = max(1, math.ceil(seconds)), "second"
    else:
        count, unit = math.ceil(seconds / 60), "minute"
    return f"{count} {unit}{'s' if count != 1 else ''}"


class PersonalLoginHandler(LoginHandler):
    """JupyterHub's login page, showing *why* a login was refused when we know it."""

    async def post(self):
        try:
            await super().post()
        except LoginRefused as refused:
            self.set_status(refused.status)
            username = self.get_argument("username", default="", strip=True)[:64]
            html = await self._render(login_error=refused.message, username=username)
            self.finish(html)


class PersonalAuthenticator(SharedPasswordAuthenticator):
    """Log in with the shared password; the admin with the separate admin password."""

    max_failures_per_user = Integer(
        5,
        config=True,
        help="""Failed logins for one username within `lockout_seconds` before further
        attempts for that username are refused until the failures age out.""",
    )
    max_failures_per_ip = Integer(
        20,
        config=True,
        help="""Failed logins from one client address within `lockout_seconds` before
        further attempts from that address are refused.""",
    )
    lockout_seconds = Integer(
        300,
        config=True,
        help="Window in which failed logins are counted, and how long a lockout lasts.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._user_failures = FailureLog(self.lockout_seconds)
        self._ip_failures = FailureLog(self.lockout_seconds)

    def normalize_username(self, username: str) -> str:
        return super().normalize_username(normalize_username(username))

    def validate_username(self, username: str) -> bool:
        return username_problem(username) is None and super().validate_username(username)

    def get_handlers(self, app):
        return [("/login", PersonalLoginHandler)]

    def lockout_message(self, username: str, ip: str, now: float) -> str | None:
        waits = [
            wait
            for wait in (
                self._user_failures.retry_after(username, self.max_failures_per_user, now),
                self._ip_failures.retry_after(ip, self.max_failures_per_ip, now),
            )
            if wait is not None
        ]
        if not waits:
            return None
        return (
            "Too many failed logins. Please wait "
            f"{describe_wait(max(waits))} before trying again."
        )

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        ip = handler.request.remote_ip if handler is not None else "unknown"
        problem = username_problem(username)
        if problem:
            raise LoginRefused(problem)
        now = time.monotonic()
        locked = self.lockout_message(username, ip, now)
        if locked:
            self.log.warning("Refused login for %r from %s: locked out", username, ip)
            raise LoginRefused(locked, status=429)
        result = await super().authenticate(handler, {**data, "username": username})
        if result is None:
            user_count = self._user_failures.record(username, now)
            ip_count = self._ip_failures.record(ip, now)
            # Never log the password, only who failed and how often.
            self.log.warning(
                "Failed login for %r from %s "
                "(%d recent failures for the user, %d from the address)",
                username,
                ip,
                user_count,
                ip_count,
            )
        else:
            self._user_failures.clear(username)
        return result
