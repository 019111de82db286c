"""The shape and size of a routing rule: checked where rules come in (API, CLI) and again where
the router reads stored rules and waiting tickets' requirements, so one bad row cannot stop
routing for anybody else.

The shapes are the ones ``router.policy`` reads: ``match`` holds lists (``channels``,
``accounts``, ``tags``, ``languages``, ``keywords``) and ``min_customer_tier``; ``required``
and ``preferred`` map skill names to levels; ``widen`` holds ``required`` and ``min_tier``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

INT32_MAX = 2**31 - 1  # INTEGER columns (tiers, priority, ids, seconds) are 32-bit on PostgreSQL
MAX_NAME = 200  # routing_rules.name is VARCHAR(200)
MAX_LIST = 100  # entries in one match list (keywords, tags, ...)
MAX_STRING = 100  # characters in one keyword, tag, channel or language
MAX_SKILLS = 20  # skills in one required/preferred/widen.required map
MAX_SKILL_NAME = 64
MAX_RULE_BYTES = 16 * 1024  # the rule's columns as JSON
MAX_RULES = 200  # rules per tenant

# What a rule asks of agents and how that widens: stored together as the rule's ``policy``
# (JSON), so a new field here needs no migration.
POLICY_FIELDS = ("required", "preferred", "priority", "min_tier", "escalate_after_s", "widen")
POLICY_DEFAULTS = {"required": {}, "preferred": {}, "priority": 0, "min_tier": 0, "escalate_after_s": None,
                   "widen": {}}
FIELDS = ("name", "position", "match", *POLICY_FIELDS)
MATCH_LISTS = {"channels": str, "accounts": int, "tags": str, "languages": str, "keywords": str}
MATCH_FIELDS = (*MATCH_LISTS, "min_customer_tier")
WIDEN_FIELDS = ("required", "min_tier")


class RuleError(ValueError):
    """A rule (or stored requirements) the router cannot use, with the API's answer to it."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_body") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def integer(value: Any, name: str, low: int = 0, high: int = INT32_MAX) -> int:
    """``value`` if it is an integer in ``[low, high]``; bool is not an integer, nor is 1e23."""
    if type(value) is not int or not low <= value <= high:
        raise RuleError(f"{name} must be an integer from {low} to {high}")
    return value


def text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise RuleError(f"{name} is over {limit} characters")
    return value


def levels(value: Any, name: str, limit: int = MAX_SKILLS) -> dict[str, int]:
    """A map of skill names to levels, as ``required``, ``preferred`` and ``widen.required`` are."""
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and type(v) is int and 0 <= v <= INT32_MAX for k, v in value.items()):
        raise RuleError(f"{name} must map skill names to non-negative integers")
    if len(value) > limit:
        raise RuleError(f"{name} has over {limit} skills")
    for skill in value:
        text(skill, f"{name} skill name", MAX_SKILL_NAME)
    return dict(value)


def match(value: Any, name: str = "match") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleError(f"{name} must be an object")
    _known(value, MATCH_FIELDS, name)
    out: dict[str, Any] = {}
    for key, kind in MATCH_LISTS.items():
        if key not in value:
            continue
        items, where = value[key], f"{name}.{key}"
        if not isinstance(items, list):
            raise RuleError(f"{where} must be a list")
        if len(items) > MAX_LIST:
            raise RuleError(f"{where} has over {MAX_LIST} entries")
        if kind is int:
            out[key] = [integer(v, f"{where} entry", 1) for v in items]
        else:
            out[key] = [text(v, f"{where} entry", MAX_STRING) for v in items]
    if "min_customer_tier" in value:
        out["min_customer_tier"] = integer(value["min_customer_tier"], f"{name}.min_customer_tier")
    return out


def widen(value: Any, name: str = "widen") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleError(f"{name} must be an object")
    _known(value, WIDEN_FIELDS, name)
    out: dict[str, Any] = {}
    if "required" in value:
        out["required"] = levels(value["required"], f"{name}.required")
    if "min_tier" in value:
        out["min_tier"] = integer(value["min_tier"], f"{name}.min_tier")
    return out


def _known(value: Mapping, fields: tuple[str, ...], name: str) -> None:
    unknown = sorted(str(k) for k in set(value) - set(fields))
    if unknown:
        raise RuleError(f"{name} has an unknown field {unknown[0][:MAX_STRING]!r} (known: {', '.join(fields)})")


def rule(body: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's columns from ``body``, checked; raises ``RuleError`` naming the field."""
    _known(body, FIELDS, "rule")
    out: dict[str, Any] = {"name": text(body.get("name"), "name", MAX_NAME),
                           "match": match(body.get("match", {})),
                           "required": levels(body.get("required", {}), "required"),
                           "preferred": levels(body.get("preferred", {}), "preferred"),
                           "widen": widen(body.get("widen", {}))}
    for name in ("priority", "min_tier", "escalate_after_s", "position"):
        if body.get(name) is not None:
            out[name] = integer(body[name], name)
    size = len(json.dumps(out, ensure_ascii=False).encode())
    if size > MAX_RULE_BYTES:
        raise RuleError(f"rule is {size} bytes as JSON, over the limit of {MAX_RULE_BYTES}", 413, "rule_too_large")
    return out


def requirements(data: Any) -> dict[str, Any]:
    """A waiting ticket's stored requirements (``policy.Requirements.to_json``), checked."""
    if not isinstance(data, Mapping):
        raise RuleError("requirements must be an object")
    out = dict(data)
    for name in ("required", "preferred"):
        out[name] = levels(data.get(name, {}), name)
    out["widen"] = widen(data.get("widen", {}))
    for name in ("min_tier", "priority", "stage"):
        out[name] = integer(data.get(name, 0), name)
    for name in ("escalate_after_s", "rule_id"):
        if data.get(name) is not None:
            out[name] = integer(data[name], name)
    if not isinstance(data.get("rule", ""), str):
        raise RuleError("rule must be a string")
    return out


def with_required(data: Mapping[str, Any], required: Mapping[str, int]) -> dict[str, Any]:
    """Requirements (``policy.Requirements.to_json``) that also need ``required`` (the higher
    level where both name a skill), at every escalation stage: a trigger's ``require_skills``
    is not widened away."""
    out = dict(data)

    def merged(have: Any) -> dict[str, int]:
        both = dict(have or {})
        for skill, level in required.items():
            both[skill] = max(level, both.get(skill, 0))
        return both

    out["required"] = merged(data.get("required"))
    widen = dict(data.get("widen") or {})
    if "required" in widen:
        widen["required"] = merged(widen["required"])
        out["widen"] = widen
    return out
