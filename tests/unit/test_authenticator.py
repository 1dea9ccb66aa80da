"""`PersonalAuthenticator` through JupyterHub's public `get_authenticated_user` API."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from jupyterhub import orm
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from sample_secrets import ADMIN_PASSWORD, USER_PASSWORD
from traitlets.config import Config

import personal_hub.authenticator as authenticator_module
from personal_hub.authenticator import LoginRefused, PersonalAuthenticator, describe_wait
from personal_hub.config import apply
from personal_hub.settings import load_settings

WRONG = "wrong-Password-123"


def request_from(ip: str = "192.0.2.1", headers: dict | None = None):
    """The smallest handler JupyterHub passes: the request's peer address and headers."""
    return SimpleNamespace(request=SimpleNamespace(remote_ip=ip, headers=headers or {}))


class Clock:
    """A stand-in for the `time` module that tests move forward by hand."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def time(self) -> float:
        return self.now

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


async def login(auth, username, password, ip="192.0.2.1", headers=None):
    return await auth.get_authenticated_user(
        request_from(ip, headers), {"username": username, "password": password}
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


# Names JupyterHub itself would take (its default has no username rules), that break ours.
RULE_BREAKING_NAMES = ["a" * 33, "alice$", "ålice", "名前", ".hidden", "-x", "bob smith"]


@pytest.mark.parametrize("username", RULE_BREAKING_NAMES)
def test_validate_username_refuses_names_that_break_our_rules(make_authenticator, username):
    """JupyterHub asks validate_username, not our login form, when a user is created
    through the REST API or the admin page: the rules must hold there too."""
    assert SharedPasswordAuthenticator().validate_username(username) is True

    assert make_authenticator().validate_username(username) is False


@pytest.mark.parametrize("username", ["alice", "a" * 32, "bob.smith", "x_1-2", "7of9"])
def test_validate_username_accepts_names_within_our_rules(make_authenticator, username):
    assert make_authenticator().validate_username(username) is True


async def test_allowed_users_list_limits_who_may_log_in(make_authenticator):
    auth = make_authenticator(HUB_ALLOWED_USERS="alice,bob")

    assert (await login(auth, "Bob", USER_PASSWORD))["name"] == "bob"
    assert await login(auth, "carol", USER_PASSWORD) is None


async def test_a_name_removed_from_the_allowed_list_is_refused_after_a_restart(
    make_authenticator,
):
    """At start-up JupyterHub passes every user in its database to add_user: a user who
    logged in before must not get back in once their name left HUB_ALLOWED_USERS."""
    before = make_authenticator(HUB_ALLOWED_USERS="alice,bob")
    assert (await login(before, "bob", USER_PASSWORD))["name"] == "bob"

    restarted = make_authenticator(HUB_ALLOWED_USERS="alice")
    for name in ("alice", "bob"):
        restarted.add_user(orm.User(name=name))

    assert await login(restarted, "bob", USER_PASSWORD) is None
    assert (await login(restarted, "alice", USER_PASSWORD))["name"] == "alice"


async def test_without_allowed_users_any_valid_name_may_log_in(make_authenticator):
    auth = make_authenticator()

    assert auth.allow_all is True
    assert (await login(auth, "carol", USER_PASSWORD))["name"] == "carol"


# ---------------------------------------------------------------- lockout


async def fail(auth, username, times, ip="192.0.2.1"):
    for _ in range(times):
        assert await login(auth, username, WRONG, ip=ip) is None


async def fail_with(auth, username, ip, headers=None):
    assert await login(auth, username, WRONG, ip=ip, headers=headers) is None


async def test_user_is_locked_out_after_max_failures(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3", HUB_LOGIN_LOCKOUT="5m")
    await fail(auth, "alice", 3)

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "alice", USER_PASSWORD)

    assert refused.value.status == 429
    assert refused.value.message == (
        "Too many failed logins. Please wait 5 minutes before trying again."
    )


def lockout_message(wait: str) -> str:
    return f"Too many failed logins. Please wait {wait} before trying again."


@pytest.mark.parametrize(
    ("elapsed", "wait"),
    [
        (0, "5 minutes"),
        (1, "5 minutes"),  # 299 s: rounded up, never too early
        (60, "4 minutes"),
        (150, "3 minutes"),
        (240, "1 minute"),
        (250, "50 seconds"),
        (299, "1 second"),
    ],
)
async def test_a_locked_out_user_is_told_the_time_that_remains(
    make_authenticator, clock, elapsed, wait
):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3", HUB_LOGIN_LOCKOUT="5m")
    await fail(auth, "alice", 3)
    clock.now += elapsed

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "alice", USER_PASSWORD)

    assert refused.value.message == lockout_message(wait)


async def test_a_repeated_lockout_states_its_longer_wait(make_authenticator, clock):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="2", HUB_LOGIN_LOCKOUT="60")
    await fail(auth, "alice", 2)
    clock.now += 60
    await fail(auth, "alice", 2)  # the second lockout lasts twice as long

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "alice", USER_PASSWORD)
    assert refused.value.message == lockout_message("2 minutes")

    clock.now += 90
    with pytest.raises(LoginRefused) as refused:
        await login(auth, "alice", USER_PASSWORD)
    assert refused.value.message == lockout_message("30 seconds")


async def test_the_longest_of_several_lockouts_is_the_wait(make_authenticator, clock):
    """Locked as a username (1 minute) and as an address (2 minutes, a second lockout):
    the user must wait for both, so the message states the longer one."""
    auth = make_authenticator(
        HUB_LOGIN_MAX_FAILURES="2", HUB_LOGIN_MAX_FAILURES_PER_IP="2", HUB_LOGIN_LOCKOUT="60"
    )
    await fail(auth, "bob", 2)  # the address's first lockout (and bob's)
    clock.now += 60
    await fail(auth, "alice", 2)  # alice's first lockout, the address's second

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "alice", USER_PASSWORD)
    assert refused.value.message == lockout_message("2 minutes")


async def test_one_failure_fewer_than_the_limit_is_not_a_lockout(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3")
    await fail(auth, "alice", 2)

    assert (await login(auth, "alice", USER_PASSWORD))["name"] == "alice"


async def test_lockout_of_one_user_does_not_affect_another(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3")
    await fail(auth, "alice", 3)

    assert (await login(auth, "bob", USER_PASSWORD))["name"] == "bob"
    with pytest.raises(LoginRefused):
        await login(auth, "alice", USER_PASSWORD)


async def test_nobody_locks_a_person_out_by_failing_from_elsewhere(make_authenticator):
    """An attacker who fails on purpose locks their own addresses, not the admin."""
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3")
    await fail(auth, "admin", 3, ip="203.0.113.1")
    for attacker in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        if attacker != "203.0.113.1":
            # Each further address gets one guess at a locked name, then it is stopped too.
            await fail(auth, "admin", 1, ip=attacker)
        with pytest.raises(LoginRefused):
            await login(auth, "admin", ADMIN_PASSWORD, ip=attacker)

    user = await login(auth, "admin", ADMIN_PASSWORD, ip="198.51.100.7")
    assert (user["name"], user["admin"]) == ("admin", True)


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
    assert refused.value.message == lockout_message("1 second")

    clock.now += 1
    assert (await login(auth, "alice", USER_PASSWORD))["name"] == "alice"


async def test_successful_login_clears_the_users_failures(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="3")
    await fail(auth, "alice", 2)
    assert await login(auth, "alice", USER_PASSWORD)
    await fail(auth, "alice", 2)

    assert (await login(auth, "alice", USER_PASSWORD))["name"] == "alice"


async def test_forged_forwarded_headers_do_not_dodge_the_address_limit(make_authenticator):
    """A new X-Real-Ip / X-Forwarded-For and a new username on every try: still one address."""
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES_PER_IP="4")
    for n in range(4):
        forged = {"X-Real-Ip": f"10.9.9.{n}", "X-Forwarded-For": f"10.8.8.{n}"}
        await fail_with(auth, f"user{n}", ip="192.0.2.50", headers=forged)

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "fresh", USER_PASSWORD, ip="192.0.2.50",
                    headers={"X-Real-Ip": "10.7.7.7", "X-Forwarded-For": "10.7.7.8"})
    assert refused.value.status == 429


async def test_a_trusted_proxys_forwarded_for_names_the_client(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES_PER_IP="2")
    # 127.0.0.1: the proxy the hub runs beside itself (no external proxy configured).
    through_proxy = {"X-Forwarded-For": "203.0.113.8"}
    await fail_with(auth, "u1", ip="127.0.0.1", headers=through_proxy)
    await fail_with(auth, "u2", ip="127.0.0.1", headers=through_proxy)

    with pytest.raises(LoginRefused):
        await login(auth, "x", USER_PASSWORD, ip="127.0.0.1", headers=through_proxy)
    other = {"X-Forwarded-For": "203.0.113.9"}
    assert (await login(auth, "x", USER_PASSWORD, ip="127.0.0.1", headers=other))["name"] == "x"


async def test_the_shared_password_has_a_budget_of_its_own(make_authenticator):
    """Guessing the shared password from many addresses and usernames is still bounded."""
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES_SHARED="5")
    assert await login(auth, "regular", USER_PASSWORD, ip="198.51.100.20")
    for n in range(5):
        await fail_with(auth, f"guess{n}", ip=f"203.0.113.{n}")

    with pytest.raises(LoginRefused) as refused:
        await login(auth, "newcomer", USER_PASSWORD, ip="203.0.113.99")
    assert refused.value.status == 429
    # The admin password is not the shared one, and a known address carries on.
    assert (await login(auth, "admin", ADMIN_PASSWORD, ip="203.0.113.99"))["admin"] is True
    assert (await login(auth, "regular", USER_PASSWORD, ip="198.51.100.20"))["name"]


async def test_lockouts_grow_with_each_repeat(make_authenticator, clock):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="2", HUB_LOGIN_LOCKOUT="60")
    await fail(auth, "alice", 2)
    clock.now += 60
    await fail(auth, "alice", 2)

    clock.now += 119
    with pytest.raises(LoginRefused):
        await login(auth, "alice", USER_PASSWORD)
    clock.now += 1
    assert (await login(auth, "alice", USER_PASSWORD))["name"] == "alice"


async def test_lockout_survives_a_restart(make_authenticator, tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    first = make_authenticator(HUB_LOGIN_MAX_FAILURES="2")
    first.lockout_db_url = url
    await fail(first, "alice", 2)

    restarted = make_authenticator(HUB_LOGIN_MAX_FAILURES="2")
    restarted.lockout_db_url = url
    with pytest.raises(LoginRefused):
        await login(restarted, "alice", USER_PASSWORD)


async def test_a_flood_of_new_usernames_does_not_wipe_a_lockout(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="2", HUB_LOGIN_MAX_FAILURES_SHARED="100000")
    await fail(auth, "alice", 2)
    for n in range(3000):
        await fail_with(auth, f"flood{n}", ip=f"10.{n // 250}.{n % 250}.1")

    with pytest.raises(LoginRefused):
        await login(auth, "alice", USER_PASSWORD)


@pytest.mark.parametrize(
    "password", ["Grüße-aus-Köln-2026", "пароль-очень-длинный", "🔑" * 12]
)
async def test_any_characters_work_in_the_shared_password(make_authenticator, password):
    auth = make_authenticator(JUPYTER_PASSWORD=password)

    assert (await login(auth, "alice", password))["name"] == "alice"
    assert await login(auth, "alice", password[:-1] + "ä") is None


async def test_a_non_ascii_wrong_password_is_an_ordinary_counted_failure(make_authenticator):
    auth = make_authenticator(HUB_LOGIN_MAX_FAILURES="2")
    for typed in ("pässwörd-1234", "\u00ff" * 40):
        assert await login(auth, "alice", typed) is None
    with pytest.raises(LoginRefused):
        await login(auth, "alice", USER_PASSWORD)


def test_settings_decide_who_is_admin_at_start_up(make_authenticator):
    """A renamed or removed JUPYTER_ADMIN_USER loses admin rights when the hub starts."""
    auth = make_authenticator(JUPYTER_ADMIN_USER="newboss")
    old_admin = orm.User(name="admin", admin=True)
    new_admin = orm.User(name="newboss", admin=True)

    auth.add_user(old_admin)
    auth.add_user(new_admin)

    assert (old_admin.admin, new_admin.admin) == (False, True)


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
