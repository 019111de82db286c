"""Merging the reports of one call: the same final state whatever the arrival order."""

from __future__ import annotations

import itertools
import json

from connectors.voice.call import Call, merge, needs_callback, summary

REC = "https://api.twilio.com/rec/RE1"


def _reports() -> list[dict]:
    base = dict(id="CA1", source="twilio", caller="+8613800138000", callee="+862161234567")
    return [
        Call(**base, status="ringing").to_doc(),
        Call(**base, status="answered", agent="li.na", answered_at=1_000).to_doc(),
        Call(**base, status="completed", duration=95, ended_at=96_000).to_doc(),
        Call(id="CA1", source="twilio", recording=REC, recording_id="RE1").to_doc(),
        Call(id="CA1", source="twilio", transcript="快递没到", started_at=500).to_doc(),
    ]


def _fold(reports: list[dict]) -> dict:
    state = reports[0]
    for report in reports[1:]:
        state = merge(state, report)
    return state


def test_every_arrival_order_and_retry_gives_one_final_state():
    # All 120 orders of five reports, and each order with its first report retried at the end.
    reports = _reports()
    finals = {json.dumps(_fold(list(p)), sort_keys=True) for p in itertools.permutations(reports)}
    finals |= {json.dumps(_fold([*p, p[0]]), sort_keys=True) for p in itertools.permutations(reports)}
    [final] = finals
    state = json.loads(final)
    assert (state["status"], state["agent"], state["duration"], state["recording"], state["transcript"]) == (
        "completed", "li.na", 95, REC, "快递没到")
    assert (state["started_at"], state["answered_at"], state["ended_at"]) == (500, 1_000, 96_000)


def test_a_late_ringing_never_undoes_a_missed_call():
    missed = Call(id="c", source="records", status="missed", caller="+8613800138000").to_doc()
    ringing = Call(id="c", source="records", status="ringing", caller="+8613800138000").to_doc()
    assert merge(missed, ringing)["status"] == merge(ringing, missed)["status"] == "missed"
    assert needs_callback(merge(ringing, missed)) and not needs_callback(ringing)


def test_voicemail_after_an_answered_greeting_is_a_voicemail():
    completed = Call(id="c", source="twilio", status="completed", duration=31).to_doc()
    voicemail = Call(id="c", source="twilio", status="voicemail", recording=REC).to_doc()
    state = merge(completed, voicemail)
    assert (state["status"], state["duration"], state["recording"]) == ("voicemail", 31, REC)


def test_summary_is_what_an_agent_reads():
    doc = Call(id="c", source="records", status="completed", caller="+8613800138000", agent="li.na",
               queue="售后", duration=95, ivr_path=["main", "2"], transcript="你好").to_doc()
    assert summary(doc) == ("Call from +8613800138000: completed\nagent li.na, queue 售后, duration 1:35\n"
                            "IVR: main > 2\nTranscript: 你好")
