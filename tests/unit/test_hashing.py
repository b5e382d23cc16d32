"""The one check of a match distance that every setting and flag goes through."""

import pytest

from streamguard.hashing import ALGORITHMS, check_distance


def test_half_the_bits_is_the_largest_distance():
    assert {name: spec.max_distance for name, spec in ALGORITHMS.items()} == {
        "pdq": 128,
        "phash": 32,
        "dhash": 32,
    }
    assert check_distance("pdq", 0) == 0 and check_distance("pdq", 128) == 128
    assert check_distance("phash", 32) == 32


@pytest.mark.parametrize(
    ("algo", "value", "problem"),
    [
        ("pdq", 129, "pdq distance 129 is out of range: 0 to 128 (half of 256 bits;"),
        ("dhash", 64, "dhash distance 64 is out of range: 0 to 32 (half of 64 bits;"),
        ("phash", -1, "phash distance -1 is out of range"),
        ("pdq", True, "pdq distance: expected a whole number, got True"),
        ("pdq", 3.0, "pdq distance: expected a whole number, got 3.0"),
        ("md5", 3, "unknown algorithm 'md5', expected one of pdq, phash, dhash"),
    ],
)
def test_refusals_say_why(algo, value, problem):
    with pytest.raises(ValueError) as refused:
        check_distance(algo, value)
    assert str(refused.value).startswith(problem)
