"""Property-based fuzzing (Hypothesis): whatever a stack.env or a login form holds, the
settings loader and the username rules answer with a clear error or a value, never a
traceback, and never echo a secret."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sample_secrets import ADMIN_PASSWORD, USER_PASSWORD

from personal_hub.settings import Settings, SettingsError, load_settings
from personal_hub.usernames import normalize_username, username_problem
from personal_hub.variables import BY_NAME

ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=60,
)
# Text shaped like the values people type: digits, units, words, separators.
VALUE_LIKE = st.one_of(
    ANY_TEXT,
    st.from_regex(r"-?[0-9]{0,40}(\.[0-9]{0,5})?\s?[a-zA-Z]{0,3}", fullmatch=True),
    st.sampled_from(["", " ", "unlimited", "0", "true", "no", "1e309", "nan", "inf"]),
)
NAMES = st.sampled_from(sorted(BY_NAME) + ["HUB_MEM_LIMT", "HUB_", "HUB_X"])


def secrets_to_hide(environ: dict[str, str]) -> dict[str, str]:
    """Secret values that no other variable also holds (those may be shown as that one)."""
    hidden = {}
    for name, value in environ.items():
        variable = BY_NAME.get(name)
        value = value.strip()
        if not (variable and variable.secret and len(value) >= 8):
            continue
        if not any(value in other for key, other in environ.items() if key != name):
            hidden[name] = value
    return hidden


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(NAMES, VALUE_LIKE, max_size=8))
def test_the_settings_loader_answers_every_environment(changes):
    environ = {
        "JUPYTER_PASSWORD": USER_PASSWORD, "JUPYTER_ADMIN_PASSWORD": ADMIN_PASSWORD, **changes
    }
    output = answer(environ)
    for name, value in secrets_to_hide(environ).items():
        # A value that is also part of our own wording (say "unlimite") is no echo: it
        # shows as well when the secret holds something else of the same length.
        if value in output:
            assert value in answer({**environ, name: "\u2603" * len(value)}), (
                f"{name}'s value is echoed"
            )


def answer(environ: dict[str, str]) -> str:
    """What the loader tells its user: the problem report, or the summary."""
    try:
        result = load_settings(environ)
    except SettingsError as error:
        report = error.report()
        assert report.startswith("personal-hub: ")
        for problem in error.problems:
            assert problem.variable and problem.message and problem.fix
        return report
    assert isinstance(result, Settings)
    return "\n".join(result.summary())


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_username_rules_answer_every_text(typed):
    name = normalize_username(typed)
    problem = username_problem(name)
    assert problem is None or problem.startswith("The username")
    if problem is None:
        assert name == name.strip().lower() and 1 <= len(name) <= 32
