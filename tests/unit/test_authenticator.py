"""`PersonalAuthenticator` through JupyterHub's public `get_authenticated_user` API."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from sample_secrets import ADMIN_PASSWORD, USER_PASSWORD
from traitlets.config import Config

import personal_hub.authenticator as authenticator_module
from personal_hub.authenticator import (
    FailureLog,
    LoginRefused,
    PersonalAuthenticator,
    describe_wait,
)
from personal_hub.config import apply
from personal_hub.settings import load_settings

WRONG = "wrong-Password-123"


def request_from(ip: str = "192.0.2.1"):
    """The smallest handler JupyterHub passes: only `.request.remote_ip` is read."""
    return SimpleNamespace(request=SimpleNamespace(remote_ip=ip))


class Clock:
    """A stand-in for time.monotonic that tests move forward by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    # only the authenticator's view of time; the event loop keeps the real clock
    monkeypatch.setattr(authenticator_module, "time", clock)
    return clock


@pytest.fixture
def make_authenticator(environ, clock):
    """An authenticator configured the way the hub configures it, from stack.env values."""

    def make(**changes: str) -> PersonalAuthenticator:
        c = Config()
        apply(load_settings({**environ, **changes}), c)
        return PersonalAuthenticator(config=c)

    return make


async def login(auth, username, password, ip="192.0.2.1"):
    return await auth.get_authenticated_user(
        request_from(ip), {"username": username, "password": password}
    )


# ---------------------------------------------------------------- passwords


async def test_shared_password_logs_in_a_non_admin(make_authenticator):
    user = await login(make_authenticator(), "alice", USER_PASSWORD)

    assert user["name"] == "alice"
    assert user["admin"] is False


async def test_admin_logs_in_with_the_admin_password(make_authenticator):
    user = await login(make_authenticator(), "admin", ADMIN_PASSWORD)

    assert user["name"] == "admin"
    assert user["admin"] is True


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("admin", USER_PASSWORD),  # the shared password never makes anyone admin
        ("alice", ADMIN_PASSWORD),  # the admin password is only the admin's
        ("alice", WRONG),
        ("admin", WRONG),
        ("alice", ""),
        ("alice", USER_PASSWORD + " "),
        ("alice", USER_PASSWORD.upper()),
    ],
)
async def test_wrong_passwords_are_refused(make_authenticator, username, password):
    assert await login(make_authenticator(), username, password) is None


@pytest.mark.parametrize("typed", ["  Alice ", "ALICE", "alice", "\tAlIcE\n"])
async def test_usernames_are_normalised(make_authenticator, typed):
    user = await login(make_authenticator(), typed, USER_PASSWORD)

    assert user["name"] == "alice"


async def test_admin_username_is_case_insensitive(make_authenticator):
    user = await login(make_authenticator(), " Admin", ADMIN_PASSWORD)

    assert (user["name"], user["admin"]) == ("admin", True)


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("", "The username is empty."),
        ("   ", "The username is empty."),
        ("a" * 33, "33 characters long"),
        ("a/b", "characters that are not allowed"),
        ("ALICE$", "characters that are not allowed"),
        ("ålice", "characters that are not allowed"),
        ("名前", "characters that are not allowed"),
        (".hidden", "characters that are not allowed"),
        ("bob smith", "characters that are not allowed"),
    ],
)
async def test_invalid_usernames_are_refused_with_a_clear_message(
    make_authenticator, username, message
):
    with pytest.raises(LoginRefused) as refused:
        await login(make_authenticator(), username, USER_PASSWORD)

    assert message in refused.value.message
    assert refused.value.status == 403


async def test_longest_valid_username(make_authenticator):
    user = await login(make_authenticator(), "a" * 32, USER_PASSWORD)

    assert user["name"] == "a" * 32


async def test_allowed_users_list_limits_who_may_log_in(make_authenticator):
    auth = make_authenticator(HUB_ALLOWED_USERS="alice,bob")

    assert (await login(auth, "Bob", USER_PASSWORD))["name"] == "bob"
    assert await login(auth, "carol", USER_PASSWORD) is None


async def test_without_allowed_users_any_valid_name_may_log_in(make_authenticator):
    auth = make_authenticator()

    assert auth.allow_all is True
    assert (await login(auth, "carol", USER_PASSWORD))["name"] == "carol"


# ---------------------------------------------------------------- lockout


async def fail(auth, username, times, ip="192.0.2.1"):
    for _ in range(times):
        assert await login(auth, username, WRONG, ip=ip) is None


async def test_user_is_locked_out_after_max_failures(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3", HUB_LOGIN_LOCKOUT="5m")
    await fail(auth, "alice", 3)

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "alice", USER_PASSWORD)

    assert refused.value.status == 429
    assert "Too many failed logins" in refused.value.message
    assert "wait 5 minutes" in refused.value.message


async def test_one_failure_fewer_than_the_limit_is_not_a_lockout(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3")
    await fail(auth, "alice", 2)

    assert (await login(auth, "alice", USER_PASSWORD))["name"] == "alice"


async def test_lockout_of_one_user_does_not_affect_another(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3")
    await fail(auth, "alice", 3)

    assert (await login(auth, "bob", USER_PASSWORD))["name"] == "bob"
    with pytest.raises(LoginRefused):
        await login(auth, "alice", USER_PASSWORD, ip="198.51.100.7")


async def test_address_is_locked_out_across_usernames(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3", HUB_LOGIN_MAX_FAILURES_PER_IP="4")
    for name in ["u1", "u2", "u3", "u4"]:
        await fail(auth, name, 1, ip="203.0.113.9")

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "fresh", USER_PASSWORD, ip="203.0.113.9")
    assert refused.value.status == 429
    assert (await login(auth, "fresh", USER_PASSWORD, ip="198.51.100.7"))["name"] == "fresh"


async def test_logins_work_again_after_the_window(make_authenticator, clock):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3", HUB_LOGIN_LOCKOUT="60")
    await fail(auth, "alice", 3)

    clock.now += 59
    with pytest.raises(LoginRefused) as refused:
        await login(auth, "alice", USER_PASSWORD)
    assert "second" in refused.value.message

    clock.now += 1
    assert (await login(auth, "alice", USER_PASSWORD))["name"] == "alice"


async def test_successful_login_clears_the_users_failures(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3")
    await fail(auth, "alice", 2)
    assert await login(auth, "alice", USER_PASSWORD)
    await fail(auth, "alice", 2)

    assert (await login(auth, "alice", USER_PASSWORD))["name"] == "alice"


async def test_failed_login_logs_never_contain_the_password(make_authenticator, caplog):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="2")
    secret_attempt = "Almost-" + USER_PASSWORD
    caplog.set_level(logging.DEBUG)

    await login(auth, "alice", secret_attempt)
    await login(auth, "admin", USER_PASSWORD)
    await login(auth, "alice", ADMIN_PASSWORD)
    with pytest.raises(LoginRefused):
        await login(auth, "alice", USER_PASSWORD)

    messages = [record.getMessage() for record in caplog.records]
    assert any("Failed login for 'alice'" in message for message in messages)
    assert any("locked out" in message for message in messages)
    for text in messages:
        for password in (secret_attempt, USER_PASSWORD, ADMIN_PASSWORD):
            assert password not in text


# ---------------------------------------------------------------- FailureLog


def test_failures_slide_out_of_the_window():
    log = FailureLog(window_seconds=30)
    for now in (0, 10, 20):
        log.record("alice", now)

    assert [log.count("alice", now) for now in (25, 30, 40, 45, 50)] == [3, 2, 1, 1, 0]


def test_record_returns_the_recent_count():
    log = FailureLog(window_seconds=30)

    assert [log.record("alice", now) for now in (0, 10, 20, 35)] == [1, 2, 3, 3]


@pytest.mark.parametrize(
    ("limit", "now", "expected"),
    [
        (4, 20, None),  # fewer failures than the limit: not locked out
        (3, 20, 10),  # the oldest of the last 3 failures (t=0) ages out at t=30
        (2, 20, 20),  # the oldest of the last 2 failures (t=10) ages out at t=40
        (1, 20, 30),
        (3, 25, 5),
        (3, 30, None),  # t=0 has aged out: 2 failures left
    ],
)
def test_retry_after(limit, now, expected):
    log = FailureLog(window_seconds=30)
    for when in (0, 10, 20):
        log.record("alice", when)

    assert log.retry_after("alice", limit, now) == expected


def test_unknown_key_is_not_locked_out():
    assert FailureLog(window_seconds=30).retry_after("nobody", 1, now=0) is None


def test_clear_forgets_a_key():
    log = FailureLog(window_seconds=30)
    log.record("alice", 0)
    log.record("bob", 0)

    log.clear("alice")
    log.clear("never-seen")

    assert (log.count("alice", 1), log.count("bob", 1)) == (0, 1)


def test_memory_is_bounded_forgetting_the_least_recent_key():
    log = FailureLog(window_seconds=300, max_keys=3)
    for now, key in enumerate(["a", "b", "c", "a", "d"]):
        log.record(key, now)

    assert {key: log.count(key, 10) for key in "abcd"} == {"a": 2, "b": 0, "c": 1, "d": 1}


def test_many_keys_stay_within_the_bound():
    log = FailureLog(window_seconds=300, max_keys=100)
    keys = [f"client-{i}" for i in range(1000)]
    for i, key in enumerate(keys):
        log.record(key, i * 0.01)

    remembered = [key for key in keys if log.count(key, 10)]
    assert remembered == keys[-100:]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "1 second"),
        (29.2, "30 seconds"),
        (59.5, "60 seconds"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (119.9, "2 minutes"),
        (300, "5 minutes"),
    ],
)
def test_describe_wait_rounds_up(seconds, text):
    assert describe_wait(seconds) == text
