"""One home for every profile's settings (paper_repro.config): every table covers every profile, one resolver,
one unknown-key check, one spelling of the compile modes."""
import pytest

from paper_repro import checks
from paper_repro import config as C


def test_every_profile_table_covers_every_profile():
    for part, table in C.PROFILE_TABLES.items():
        assert tuple(table) == C.PROFILES, part
        for profile in C.PROFILES:
            assert isinstance(C.profile_settings(part, profile, "resnet56"), dict)
    with pytest.raises(ValueError, match="profile: unknown profile 'gpu'; valid names: smoke, cpu, paper"):
        C.profile_settings("method", "gpu")


def test_resolver_picks_per_arch_values():
    assert C.profile_settings("teacher", "cpu", "vgg_small")["width"] == 0.25
    assert C.profile_settings("teacher", "cpu", "resnet56")["width"] == 0.5  # "*": any other arch
    assert C.profile_settings("notebook", "smoke")["latency_repeats"] < C.profile_settings("notebook", "cpu")[
        "latency_repeats"]


def test_unknown_keys_and_choices_are_one_error_each():
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['lamda'\]; valid: \['epochs', 'lambda_max'\]"):
        checks.check_known({"lamda": 1}, {"epochs", "lambda_max"})
    checks.check_known({"epochs": 1}, {"epochs"})
    with pytest.raises(ValueError, match="penalty: unknown value 'x'; valid: a, b"):
        checks.check_choice("penalty", "x", ("a", "b"))


def test_compile_modes_one_spelling():
    assert C.COMPILE_MODES[0] is False and C.EXECUTION["compile"] is False
    for mode in C.COMPILE_MODES:
        C.check_compile(mode)
    for bad in ("off", "fast", None):  # "off" is the command line's word for False, not a mode
        with pytest.raises(ValueError, match="compile: unknown value"):
            C.check_compile(bad)
