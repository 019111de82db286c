"""`make bench` stays runnable: the email scenario end to end on a tiny mail count."""

from ops.bench import email


async def test_email_scenario_commits_every_distinct_mail():
    row = await email.run(mails=40, connections=2, normalizers=1)
    assert row["scenario"] == "email" and row["mails"] == 40
    # 1 % of the mix are re-deliveries of the same bytes: never more distinct than sent.
    assert 30 <= row["distinct"] <= 40
    assert row["smtp_accept_per_s"] > 0 and row["end_to_end_per_s"] > 0
    assert 0 <= row["ingress_to_ticket_p50_ms"] <= row["ingress_to_ticket_p99_ms"]
    # CPU per mail of each role process, Redis and the sending client, read from /proc.
    cpu = row["cpu_us_per_mail"]
    assert set(cpu) == {"smtp", "normalizer", "router", "redis", "client"}
    assert cpu["smtp"] > 0 and cpu["normalizer"] > 0 and all(v >= 0 for v in cpu.values())


def test_mail_mix_is_wire_format_and_holds_duplicates():
    mails, distinct = email.mail_mix(400)
    assert all(b"\r\n" in m and b"\n" not in m.replace(b"\r\n", b"") for m in mails)
    assert distinct < len(mails)  # the mix re-sends some mails byte for byte
