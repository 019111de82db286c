"""`make bench` stays runnable: the WeChat safe-mode ingress scenario on a tiny push count."""

from ops.bench import wechat


async def test_wechat_scenario_queues_every_push():
    row = await wechat.run(n=60, connections=2)
    assert (row["scenario"], row["pushes"], row["gateways"]) == ("wechat", 60, 1)
    assert row["accepted_per_s"] > 0


def test_pushes_are_distinct_safe_mode_messages():
    work = wechat.pushes(5)
    assert len({q["msg_signature"] for _, q in work}) == 5
    assert all(q["encrypt_type"] == "aes" and "<Encrypt>" in body for body, q in work)
