"""`make bench` stays runnable: the hostile form flood on a tiny scale, agents' requests measured."""

from connectors.webform import parts
from ops.bench import hostile


async def test_hostile_scenario_measures_agent_requests_while_one_address_floods_the_form():
    row = await hostile.run(duration=2, hostile=2, parts=(50, 200))
    assert (row["scenario"], row["hostile_clients"], row["parts"]) == ("hostile", 2, [50, 200])
    # Every flood post carries more files than the form allows: all refused, none queued.
    assert row["hostile_answered"] > 0 and list(row["hostile_statuses"]) == ["413"]
    assert row["probes"] > 0
    for name in ("ticket_list", "download"):
        p50, p99, top = (row[f"{name}_{q}_ms"] for q in ("p50", "p99", "max"))
        assert 0 < p50 <= p99 <= top, (name, p50, p99, top)


def test_flood_bodies_have_the_asked_number_of_file_parts():
    intake = parts.Intake(f"multipart/form-data; boundary={hostile.BOUNDARY}",
                          parts.Limits(max_files=10**6, max_bytes=10**8))
    intake.feed(hostile.many_parts(1234))
    assert (intake.files, intake.fields, intake.closed) == (1234, 0, True)
