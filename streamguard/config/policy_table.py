"""``[policy]`` of the TOML file into `Policy`: rule keys as defaults for every category,
``[policy.CATEGORY]`` tables override them (docs/policy.md)."""

from dataclasses import fields, replace
from typing import Any, TypeVar

from streamguard.config.checks import distances, seconds
from streamguard.config.errors import ConfigError
from streamguard.config.policy import ACTIONS, UNCONFIRMED, UNWATCHABLE, Policy, Rule
from streamguard.hashing import ALGORITHMS

_GENERAL = {"incident_gap_s", "keep_watching_after_kill", "still_live_after_s", "unwatchable"}
_RULE_MAPS = {"max_distance", "instant_distance"}
Choice = TypeVar("Choice", bound=str)


def parse_policy(where: str, table: Any) -> Policy:
    """``[policy]``: rule keys as defaults for every category, ``[policy.CATEGORY]`` overrides."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    general = {k: v for k, v in table.items() if k in _GENERAL}
    categories = {k: v for k, v in table.items() if isinstance(v, dict) and k not in _RULE_MAPS}
    rule_keys = {k: v for k, v in table.items() if k not in general and k not in categories}
    default = _rule(where, rule_keys, Rule())
    policy = Policy(
        default=default,
        categories={
            name.lower(): _rule(f"{where}.{name}", keys, default)
            for name, keys in categories.items()
        },
    )
    if "incident_gap_s" in general:
        policy = replace(
            policy, incident_gap_s=seconds(f"{where}.incident_gap_s", general["incident_gap_s"])
        )
    if "keep_watching_after_kill" in general:
        keep = general["keep_watching_after_kill"]
        if not isinstance(keep, bool):
            raise ConfigError(f"{where}.keep_watching_after_kill: expected true or false")
        policy = replace(policy, keep_watching_after_kill=keep)
    if "still_live_after_s" in general:
        after = general["still_live_after_s"]
        key = f"{where}.still_live_after_s"
        policy = replace(policy, still_live_after_s=0.0 if after == 0 else seconds(key, after))
    if "unwatchable" in general:
        unwatchable = _choice(where, "unwatchable", general["unwatchable"], UNWATCHABLE)
        policy = replace(policy, unwatchable=unwatchable)
    return policy


def _rule(where: str, keys: dict[str, Any], base: Rule) -> Rule:
    known = {f.name for f in fields(Rule)}
    if unknown := set(keys) - known:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in keys.items():
        if key in _RULE_MAPS:
            values[key] = distances(f"{where}.{key}", value)
        elif key == "action":
            values[key] = _choice(where, key, value, ACTIONS)
        elif key == "unconfirmed":
            values[key] = _choice(where, key, value, UNCONFIRMED)
        elif key in ("window_s", "video_window_s"):
            values[key] = seconds(f"{where}.{key}", value)
        elif key == "video_coverage":
            values[key] = _share(f"{where}.{key}", value)
        elif key == "review_only":
            if not isinstance(value, list) or not set(value) <= set(ALGORITHMS):
                raise ConfigError(f"{where}.review_only: expected a list of {list(ALGORITHMS)}")
            values[key] = tuple(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}.{key}: expected a whole number, got {value!r}")
            if key in ("confirmations", "video_frames") and value < 1:
                raise ConfigError(f"{where}.{key}: must be at least 1")
            values[key] = value
    return replace(base, **values)


def _share(where: str, value: Any) -> float:
    """A share from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: expected a number from 0 to 1, got {value!r}")
    return float(value)


def _choice(where: str, key: str, value: Any, allowed: tuple[Choice, ...]) -> Choice:
    """The one of ``allowed`` that ``value`` is."""
    for choice in allowed:
        if value == choice:
            return choice
    raise ConfigError(f"{where}.{key}: expected one of {', '.join(allowed)}, got {value!r}")
