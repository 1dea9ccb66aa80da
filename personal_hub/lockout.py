"""Login failure budgets with growing back-off, kept where a hub restart cannot lose them.

Three budgets, each a `Counter` under its own key:

- `address:<ip>`: failures from one client address (as resolved by `addresses`);
- `user:<name>`: failures for one username; it only stops addresses that have failed
  themselves (within a lockout's longest span), so nobody can lock a person out by
  failing on purpose from elsewhere;
- `shared`: failures with the shared password, across all usernames and addresses (the
  same password works for every username, so per-username limits cannot protect it); it
  does not stop addresses that logged in successfully within `known_address_seconds`.

A budget that runs out locks its key for `window` seconds, doubling with each further
lockout (capped at `max_lockout`). The logic is pure (`record_failure`, `LoginLimiter`
with time passed in); the state sits in a store: memory for tests, or the hub's own
database (`SqlStore`), where restarts and floods of new usernames cannot wipe it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol


@dataclass(frozen=True)
class Counter:
    failures: int = 0
    window_start: float = 0.0
    locked_until: float = 0.0
    # lockouts in a row: each one doubles the next
    strikes: int = 0
    last_failure: float = 0.0
    last_success: float = 0.0


@dataclass(frozen=True)
class Budget:
    limit: int
    window: float
    max_lockout: float

    def lockout_for(self, strikes: int) -> float:
        return min(self.window * 2 ** min(strikes, 32), self.max_lockout)


def record_failure(counter: Counter, budget: Budget, now: float) -> Counter:
    """The counter after one more failure: a full budget starts a (longer) lockout."""
    strikes = counter.strikes
    if counter.last_failure and now - counter.last_failure > budget.window + budget.max_lockout:
        strikes = 0  # quiet for long enough: forgive earlier lockouts
    failures, window_start = counter.failures, counter.window_start
    if now - window_start >= budget.window:
        failures, window_start = 0, now
    failures += 1
    locked_until = counter.locked_until
    if failures >= budget.limit:
        locked_until = now + budget.lockout_for(strikes)
        strikes += 1
        failures, window_start = 0, now
    return replace(
        counter,
        failures=failures,
        window_start=window_start,
        locked_until=locked_until,
        strikes=strikes,
        last_failure=now,
    )


def retry_after(counter: Counter, now: float) -> float | None:
    """Seconds until the key may try again, or None if it is not locked."""
    return counter.locked_until - now if counter.locked_until > now else None


class Store(Protocol):
    def get(self, key: str) -> Counter: ...

    def put(self, key: str, counter: Counter) -> None: ...

    def purge(self, now: float, keep_seconds: float) -> None: ...


class MemoryStore:
    """For tests and for an authenticator without a hub database."""

    def __init__(self):
        self.counters: dict[str, Counter] = {}

    def get(self, key: str) -> Counter:
        return self.counters.get(key, Counter())

    def put(self, key: str, counter: Counter) -> None:
        self.counters[key] = counter

    def purge(self, now: float, keep_seconds: float) -> None:
        self.counters = {
            key: counter
            for key, counter in self.counters.items()
            if not _stale(counter, now, keep_seconds)
        }


def _stale(counter: Counter, now: float, keep_seconds: float) -> bool:
    newest = max(counter.locked_until, counter.last_failure, counter.last_success)
    return newest < now - keep_seconds


class SqlStore:
    """Counters in a table of the hub's database (PostgreSQL or SQLite)."""

    TABLE = "personal_hub_login_counters"

    def __init__(self, url: str):
        from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine

        self.engine = create_engine(url, pool_pre_ping=True)
        metadata = MetaData()
        self.table = Table(
            self.TABLE,
            metadata,
            Column("key", String(255), primary_key=True),
            Column("failures", Integer, nullable=False),
            Column("window_start", Float, nullable=False),
            Column("locked_until", Float, nullable=False),
            Column("strikes", Integer, nullable=False),
            Column("last_failure", Float, nullable=False),
            Column("last_success", Float, nullable=False),
        )
        metadata.create_all(self.engine, checkfirst=True)

    def get(self, key: str) -> Counter:
        with self.engine.connect() as connection:
            row = connection.execute(
                self.table.select().where(self.table.c.key == key)
            ).mappings().first()
        if row is None:
            return Counter()
        return Counter(**{name: value for name, value in row.items() if name != "key"})

    def put(self, key: str, counter: Counter) -> None:
        values = {
            "failures": counter.failures,
            "window_start": counter.window_start,
            "locked_until": counter.locked_until,
            "strikes": counter.strikes,
            "last_failure": counter.last_failure,
            "last_success": counter.last_success,
        }
        with self.engine.begin() as connection:
            updated = connection.execute(
                self.table.update().where(self.table.c.key == key).values(**values)
            )
            if updated.rowcount == 0:
                connection.execute(self.table.insert().values(key=key, **values))

    def purge(self, now: float, keep_seconds: float) -> None:
        oldest = now - keep_seconds
        c = self.table.c
        with self.engine.begin() as connection:
            connection.execute(
                self.table.delete().where(
                    c.locked_until < oldest, c.last_failure < oldest, c.last_success < oldest
                )
            )


SHARED_KEY = "shared"
PURGE_EVERY_SECONDS = 60


class LoginLimiter:
    """Decides whether a login may be tried, and records how it went."""

    def __init__(
        self,
        store: Store,
        *,
        per_user: Budget,
        per_address: Budget,
        shared: Budget,
        known_address_seconds: float,
    ):
        self.store = store
        self.per_user = per_user
        self.per_address = per_address
        self.shared = shared
        self.known_address_seconds = known_address_seconds
        self._last_purge = 0.0

    def wait_before_try(
        self, username: str, address: str, uses_shared_password: bool, now: float
    ) -> float | None:
        """Seconds this login must wait, or None if it may be tried now."""
        address_counter = self.store.get(f"address:{address}")
        waits = [retry_after(address_counter, now)]
        if self._has_failed_recently(address_counter, now):
            waits.append(retry_after(self.store.get(f"user:{username}"), now))
        if uses_shared_password and not self._is_known(address_counter, now):
            waits.append(retry_after(self.store.get(SHARED_KEY), now))
        waits = [wait for wait in waits if wait is not None]
        return max(waits) if waits else None

    def failed(
        self, username: str, address: str, uses_shared_password: bool, now: float
    ) -> dict[str, int]:
        """Record a failure against every budget it counts for; returns the lockouts so far."""
        keys = [(f"user:{username}", self.per_user), (f"address:{address}", self.per_address)]
        if uses_shared_password:
            keys.append((SHARED_KEY, self.shared))
        strikes = {}
        for key, budget in keys:
            counter = record_failure(self.store.get(key), budget, now)
            self.store.put(key, counter)
            strikes[key] = counter.strikes
        self._purge(now)
        return strikes

    def succeeded(self, username: str, address: str, now: float) -> None:
        self.store.put(f"user:{username}", Counter())
        key = f"address:{address}"
        self.store.put(key, replace(self.store.get(key), last_success=now))

    def _has_failed_recently(self, counter: Counter, now: float) -> bool:
        """Failed within the time a username lockout can last: such an address is held by it."""
        memory = self.per_user.window + self.per_user.max_lockout
        failed = counter.last_failure > 0 and counter.last_failure > now - memory
        return failed or counter.locked_until > now

    def _is_known(self, counter: Counter, now: float) -> bool:
        return counter.last_success > 0 and counter.last_success > now - self.known_address_seconds

    def _purge(self, now: float) -> None:
        if now - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        longest = max(
            budget.window + budget.max_lockout
            for budget in (self.per_user, self.per_address, self.shared)
        )
        self.store.purge(now, max(longest, self.known_address_seconds))
