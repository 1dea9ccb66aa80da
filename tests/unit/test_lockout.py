"""The failure budgets' pure logic, with time passed in."""

from __future__ import annotations

import pytest

from personal_hub.lockout import (
    Budget,
    Counter,
    LoginLimiter,
    MemoryStore,
    SqlStore,
    record_failure,
    retry_after,
)

BUDGET = Budget(limit=3, window=60, max_lockout=600)


def fail(counter, times, now):
    for _ in range(times):
        counter = record_failure(counter, BUDGET, now)
    return counter


def test_a_full_budget_locks_for_the_window():
    counter = fail(Counter(), 3, now=100)
    assert retry_after(counter, 100) == 60
    assert retry_after(counter, 159) == 1
    assert retry_after(counter, 160) is None


def test_fewer_failures_than_the_limit_do_not_lock():
    assert retry_after(fail(Counter(), 2, now=100), 100) is None


def test_failures_outside_the_window_start_a_new_count():
    counter = fail(Counter(), 2, now=100)
    counter = fail(counter, 2, now=200)
    assert retry_after(counter, 200) is None


@pytest.mark.parametrize(("lockouts", "seconds"), [(1, 60), (2, 120), (3, 240), (4, 480),
                                                   (5, 600), (9, 600)])
def test_each_further_lockout_doubles_up_to_the_cap(lockouts, seconds):
    counter, now = Counter(), 0.0
    for _ in range(lockouts):
        now = max(now, counter.locked_until)
        counter = fail(counter, 3, now)
    assert retry_after(counter, now) == seconds


def test_a_long_quiet_time_forgives_earlier_lockouts():
    counter = fail(fail(Counter(), 3, now=0), 3, now=60)
    assert counter.strikes == 2
    later = 60 + BUDGET.window + BUDGET.max_lockout + 1
    assert retry_after(fail(counter, 3, now=later), later) == 60


def limiter(store=None):
    return LoginLimiter(
        store or MemoryStore(),
        per_user=BUDGET,
        per_address=Budget(limit=5, window=60, max_lockout=600),
        shared=Budget(limit=4, window=60, max_lockout=600),
        known_address_seconds=3600,
    )


def test_a_locked_username_holds_only_addresses_that_failed():
    limits = limiter()
    for _ in range(3):
        limits.failed("admin", "203.0.113.1", False, now=10)
    assert limits.wait_before_try("admin", "203.0.113.1", False, now=11) is not None
    assert limits.wait_before_try("admin", "198.51.100.2", False, now=11) is None


def test_the_shared_budget_spares_known_addresses_and_the_admin():
    limits = limiter()
    limits.succeeded("erin", "198.51.100.9", now=1)
    for n in range(4):
        limits.failed(f"guess{n}", f"203.0.113.{n}", True, now=10)
    assert limits.wait_before_try("newcomer", "203.0.113.50", True, now=11) is not None
    assert limits.wait_before_try("erin", "198.51.100.9", True, now=11) is None
    assert limits.wait_before_try("admin", "203.0.113.50", False, now=11) is None


def test_purge_forgets_only_what_can_no_longer_matter():
    store = MemoryStore()
    limits = limiter(store)
    limits.failed("old", "203.0.113.1", True, now=0)
    limits.failed("new", "203.0.113.2", True, now=5000)
    assert "user:old" not in store.counters and "user:new" in store.counters


def test_the_sql_store_keeps_counters_across_instances(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    first = SqlStore(url)
    first.put("user:alice", Counter(failures=2, window_start=1.5, last_failure=2.0))
    first.put("user:alice", Counter(failures=3, window_start=1.5, last_failure=3.0))

    again = SqlStore(url)
    assert again.get("user:alice") == Counter(failures=3, window_start=1.5, last_failure=3.0)
    assert again.get("user:nobody") == Counter()
    again.purge(now=10_000, keep_seconds=60)
    assert again.get("user:alice") == Counter()
