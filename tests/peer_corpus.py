"""Other help desks' parser test mails, scored column by column against what they expect.

Zammad's ``test/data/mail/mailNNN.box`` come with ``mailNNN.yml``: what its parser returns
(from, subject, body, attachments). Chatwoot's ``spec/fixtures/files/*.eml`` come with
assertions in its specs, which ``CHATWOOT`` below restates. The mails are the projects' own
fixtures and stay outside this repository (``SWITCHBOARD_PEER_CORPUS`` or a
``shared/corpus/peers`` folder beside or above the checkout, or under /work for a
clone made elsewhere on the build machine).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from connectors.email import parse
from connectors.email.body import html_to_text
from connectors.inbound import Inbound
from core.envelope import Envelope

COLUMNS = ("subject", "sender", "body", "attachments")


def corpus_root() -> Path | None:
    """The folder holding ``zammad/`` and ``chatwoot/``, or None when it is not here."""
    if os.environ.get("SWITCHBOARD_PEER_CORPUS"):
        return Path(os.environ["SWITCHBOARD_PEER_CORPUS"])
    for parent in (*Path(__file__).resolve().parents, Path("/work")):
        candidate = parent / "shared" / "corpus" / "peers"
        if candidate.is_dir():
            return candidate
    return None


class _RubyYaml(yaml.SafeLoader):
    """Psych's dump: ``!ruby/hash:...`` maps and ``!binary`` base64 scalars."""


_RubyYaml.add_multi_constructor("!ruby/", lambda loader, _suffix, node:
                                loader.construct_mapping(node, deep=True))
_RubyYaml.add_constructor("!binary", lambda loader, node:
                          base64.b64decode("".join(loader.construct_scalar(node).split())))


def zammad_cases(root: Path) -> list[Path]:
    return sorted((root / "zammad").glob("*.box"))


def zammad_expected(box: Path) -> dict:
    return yaml.load(box.with_suffix(".yml").read_text(encoding="utf-8"), Loader=_RubyYaml)


def parse_mail(raw: bytes) -> Inbound:
    """The normalizer's parse for the email channel (connectors.registry)."""
    [inbound] = parse(Envelope(tenant="t", channel="email", account="1", payload=raw,
                               content_type="message/rfc822"))
    return inbound


def words(text: str) -> str:
    """Text as a reader compares it: whitespace runs (incl. no-break space) are one space."""
    return " ".join(text.replace("\xa0", " ").split())


@dataclass
class Verdict:
    """One mail's result per column: "" when it matches, else what differs."""

    name: str
    crashed: str = ""
    diffs: dict[str, str] = field(default_factory=dict)


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    return str(data or "").encode("utf-8")


def _zammad_body(want: dict, got: Inbound) -> str:
    """Zammad's body is its sanitised HTML (content_type text/html) or the joined plain parts."""
    body = want["body"] or ""
    if body == "no visible content":
        body = ""
    if want.get("content_type") == "text/html":
        expected, ours = html_to_text(body), html_to_text(got.html) if got.html else got.text
    else:
        expected, ours = body, got.text
    if words(expected) == words(ours):
        return ""
    return f"{words(expected)[:120]!r} != {words(ours)[:120]!r}"


def _digest(data: bytes) -> str:
    # Line ends and trailing blanks are not content: Zammad keeps LF, the wire and we CRLF,
    # and a regenerated message/* part writes "X-Empty: " for Zammad's "X-Empty:".
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    return hashlib.sha256(b"\n".join(line.rstrip(b" \t") for line in lines).rstrip(b"\n")).hexdigest()


def _sender_named(prefs: dict) -> bool:
    """Whether the part carried a file name; else Zammad made one up (file, document1.html,
    Content-Description, Content-ID) and ours is made up too."""
    header = f"{prefs.get('Content-Type', '')};{prefs.get('Content-Disposition', '')}".lower()
    return "name=" in header or "name*" in header


def _zammad_attachments(want: dict, got: Inbound) -> str:
    """Every file Zammad keeps is ours too (same bytes), with its name and type.

    Zammad files the HTML body as one more attachment (``content-alternative``): not a file.
    """
    left = list(got.attachments)
    problems = []
    for att in want.get("attachments") or []:
        prefs = att.get("preferences") or {}
        if prefs.get("content-alternative"):
            continue
        data, name = _as_bytes(att.get("data")), att.get("filename") or ""
        ctype = str(prefs.get("Mime-Type") or "").lower()
        same = [a for a in left if _digest(a.data) == _digest(data)]
        if not same:
            problems.append(f"missing {name} ({len(data)} bytes)")
            continue
        # Several parts with the same bytes: pair by name, then by type.
        mine = next((a for a in same if a.filename == name),
                    next((a for a in same if a.content_type == ctype), same[0]))
        left.remove(mine)
        if _sender_named(prefs) and words(mine.filename) != words(name):
            problems.append(f"name {name!r} != {mine.filename!r}")
        if ctype and ctype != mine.content_type:
            problems.append(f"type {ctype} != {mine.content_type}")
    return "; ".join(problems)


def score_zammad(box: Path) -> Verdict:
    want = zammad_expected(box)
    verdict = Verdict(box.stem)
    try:
        got = parse_mail(box.read_bytes())
    except Exception as exc:  # a crash is scored, not raised: the table shows every mail
        verdict.crashed = f"{type(exc).__name__}: {exc}"[:200]
        verdict.diffs = dict.fromkeys(COLUMNS, "crashed")
        return verdict
    subject = words(want.get("subject") or "")
    if subject != words(got.subject):
        verdict.diffs["subject"] = f"{subject!r} != {got.subject!r}"
    sender = str(want.get("from_email") or "").lower()
    if sender != got.sender.value:
        verdict.diffs["sender"] = f"{sender!r} != {got.sender.value!r}"
    verdict.diffs["body"] = _zammad_body(want, got)
    verdict.diffs["attachments"] = _zammad_attachments(want, got)
    verdict.diffs = {k: v for k, v in verdict.diffs.items() if v}
    return verdict


def tally(verdicts: list[Verdict], waived: dict[tuple[str, str], object]) -> dict[str, int]:
    """Matches per column; a waived (mail, column) counts when ours is the documented answer."""
    scores = {c: 0 for c in COLUMNS}
    for v in verdicts:
        for column in COLUMNS:
            if not v.crashed and (column not in v.diffs or (v.name, column) in waived):
                scores[column] += 1
    scores["crashes"] = sum(1 for v in verdicts if v.crashed)
    return scores


def zammad_value(box: Path, column: str) -> str:
    """What Zammad's yml says for a column, as the comparison sees it."""
    want = zammad_expected(box)
    if column == "subject":
        return words(want.get("subject") or "")
    if column == "sender":
        return str(want.get("from_email") or "").lower()
    if column == "body":
        body = "" if want["body"] == "no visible content" else want["body"] or ""
        return words(html_to_text(body) if want.get("content_type") == "text/html" else body)
    return " | ".join(a.get("filename") or "" for a in want.get("attachments") or []
                      if not (a.get("preferences") or {}).get("content-alternative"))


def our_value(got: Inbound, column: str) -> str:
    if column == "subject":
        return words(got.subject)
    if column == "sender":
        return got.sender.value
    if column == "body":
        return words(html_to_text(got.html) if got.html else got.text)
    return " | ".join(a.filename for a in got.attachments)
