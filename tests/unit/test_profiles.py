"""Server profiles: HUB_PROFILES parsing, the spawn page's form, and what a start may pick."""

from __future__ import annotations

import pytest

from personal_hub.parsers import Invalid
from personal_hub.profiles import ALL_GPUS, Profile, Profiles, chosen_profile, options_form

GIB = 1024**3


def test_profiles_as_written_in_stack_env():
    profiles = Profiles()(" small: cpu=1 memory=2G ;large: cpu=4 memory=8G;"
                          "gpu: memory=16G gpus=all image=my/cuda:1; ; two: gpus=2")

    assert profiles == (
        Profile("small", cpu=1.0, memory=2 * GIB),
        Profile("large", cpu=4.0, memory=8 * GIB),
        Profile("gpu", memory=16 * GIB, gpus=ALL_GPUS, image="my/cuda:1"),
        Profile("two", gpus=2),
    )
    assert [p.description() for p in profiles] == [
        "1 CPU, 2G memory", "4 CPUs, 8G memory", "16G memory, all GPUs, image my/cuda:1",
        "2 GPUs"]
    assert Profile("plain").description() == "the hub's standard server"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("small cpu=1", "does not start with a profile name"),
        ("Small: cpu=1", "does not start with a profile name"),
        ("a" * 31 + ": cpu=1", "does not start with a profile name"),
        ("<b>: cpu=1", "does not start with a profile name"),
        ("a: cpu=0", "profile a: cpu:"),
        ("a: cpu=lots", "profile a: cpu:"),
        ("a: memory=1K", "profile a: memory:"),
        ("a: mem=1G", "'mem=1G' is not one of cpu=..."),
        ("a: cpu", "'cpu' is not one of"),
        ("a: gpus=some", "profile a: gpus: 'some' is not all or a number"),
        ("a: gpus=0", "profile a: gpus:"),
        ("a: gpus=65", "profile a: gpus:"),
        ("a: image=bad|image", "profile a: image:"),
        ("a: cpu=1 cpu=2", "cpu is given twice"),
        ("a: cpu=1; a: cpu=2", "profile a is declared more than once"),
        (";".join(f"p{n}:" for n in range(21)), "at most 20"),
    ],
)
def test_mistakes_name_the_profile_and_the_key(text, says):
    with pytest.raises(Invalid) as raised:
        Profiles()(text)
    assert says in str(raised.value)


def test_the_form_offers_each_profile_with_the_first_or_the_last_choice_selected():
    profiles = list(Profiles()("small: cpu=1; gpu: gpus=all"))

    form = options_form(profiles)
    assert form.count('type="radio" name="profile"') == 2
    assert 'value="small" checked' in form and 'value="gpu">' in form
    assert "all GPUs" in form
    assert 'value="gpu" checked' in options_form(profiles, "gpu")
    assert 'value="small" checked' in options_form(profiles, "<script>")


def test_the_form_escapes_what_it_shows():
    form = options_form([Profile("x", image="evil/<script>")])
    assert "<script>" not in form and "&lt;script&gt;" in form


PROFILES = [Profile("small", cpu=1.0), Profile("gpu", gpus=ALL_GPUS)]


@pytest.mark.parametrize(
    ("options", "expected"),
    [({}, "small"), ({"profile": "gpu"}, "gpu"), ({"profile": ""}, "small")],
)
def test_the_chosen_profile(options, expected):
    assert chosen_profile(PROFILES, options).name == expected


@pytest.mark.parametrize(
    "options",
    [{"profile": "huge"}, {"profile": "gpu", "image": "x"}, {"image": "x"}, ["gpu"],
     {"profile": ["gpu"]}, {"profile": "x" * 10_000}],
)
def test_anything_else_is_refused_without_echoing_much(options):
    with pytest.raises(ValueError) as raised:
        chosen_profile(PROFILES, options)
    assert len(str(raised.value)) < 200


def test_without_profiles_only_empty_options_start():
    assert chosen_profile([], {}) is None
    with pytest.raises(ValueError):
        chosen_profile([], {"profile": "small"})


def test_profiles_from_config_values():
    assert Profile.from_config({"name": "big", "memory": 8 * GIB}) == Profile("big", memory=8 * GIB)
    for bad in ({"memory": 1}, {"name": "x", "swap": 1}):
        with pytest.raises(ValueError):
            Profile.from_config(bad)
