"""Routing policy as pure functions: language, rules, eligibility, order, escalation, queue rank."""

import dataclasses
import random

from connectors.registry import capacity_classes
from router import policy, snapshot
from router import pool as agent_pool
from router.policy import Requirements, Rule, Ticket
from router.pool import Agent

NOW = 1_800_000_000_000


def agent(id, status="online", tier=0, skills=None, cap=2, load=0, idle_s=0, cls="email"):
    return Agent(id, f"a{id}", status, tier, skills or {}, {cls: cap}, {cls: load}, NOW - idle_s * 1000)


def test_language_detection_tells_chinese_japanese_korean_and_latin_apart():
    assert policy.detect_language("您好，我的订单还没有到") == "zh"
    assert policy.detect_language("注文がまだ届いていません") == "ja"
    assert policy.detect_language("주문이 아직 도착하지 않았습니다") == "ko"
    assert policy.detect_language("Where is my order?") == "latin"
    # A Chinese mail with an English order number and signature is still Chinese.
    assert policy.detect_language("Order AB-1042: 我的订单还没有到，请帮忙查询") == "zh"
    assert policy.detect_language("1234 !!") == ""


def test_channel_classes():
    # The registry's channels each name their class; the router is handed this map.
    assert capacity_classes() == {"email": "email", "wechat": "chat", "weibo": "chat", "webform": "chat",
                                  "sdk": "chat", "voice": "voice", "sms": "chat", "portal": "chat"}


def test_first_matching_rule_wins_and_every_miss_is_explained():
    rules = [
        Rule(1, "vip", match={"min_customer_tier": 2}),
        Rule(2, "chinese refunds", match={"languages": ["zh"], "keywords": ["退款", "refund"]}),
        Rule(3, "catch-all"),
    ]
    ticket = Ticket(9, "email", 1, customer_tier=0, language="zh", text="申请退款")
    rule, trace = policy.match_rule(rules, ticket)
    assert rule.id == 2
    assert trace == [
        {"rule_id": 1, "rule": "vip", "hit": False, "misses": ["customer tier 0 < 2"]},
        {"rule_id": 2, "rule": "chinese refunds", "hit": True, "misses": []},
    ]
    english = Ticket(10, "wechat", 1, language="latin", text="refund")
    assert policy.rule_misses(rules[1], english) == ["language latin not in ['zh']"]
    assert policy.rule_misses(Rule(4, "mail", match={"channels": ["email"], "tags": ["b2b"]}), english) == [
        "channel wechat not in ['email']", "tags ['b2b'] missing"]


def test_exclusions_name_every_reason():
    req = Requirements(required={"chinese": 3, "refunds": 2}, min_tier=2)
    a = agent(1, status="away", tier=1, skills={"chinese": 2}, cap=2, load=2)
    assert agent_pool.exclusions(a, "email", req) == [
        "status away", "skill chinese 2 < 3", "skill refunds 0 < 2", "tier 1 < 2", "email load 2/2"]
    assert agent_pool.exclusions(agent(2, tier=2, skills={"chinese": 3, "refunds": 5}), "email", req) == []
    # No capacity configured for a class means no tickets of that class.
    assert agent_pool.exclusions(agent(3, cls="chat"), "email", Requirements()) == ["email load 0/0"]


def test_order_is_sticky_then_preferred_then_load_ratio_then_longest_idle():
    req = Requirements(preferred={"refunds": 3})
    ticket = Ticket(1, "email", 1, previous_agent=4)
    agents = [
        agent(1, cap=4, load=1, idle_s=10),
        agent(2, cap=4, load=1, idle_s=500),
        agent(3, cap=4, load=0, idle_s=5),
        agent(4, cap=4, load=3, idle_s=1),                         # the customer's last agent
        agent(5, cap=4, load=2, skills={"refunds": 3}, idle_s=1),  # has the preferred skill
        agent(6, status="offline"),
    ]
    decision = agent_pool.decide(ticket, agents, req, NOW, capacity_classes())
    assert [a.id for a, _ in decision.ranked] == [4, 5, 3, 2, 1]
    assert [(a.id, r) for a, r in decision.excluded] == [(6, ["status offline"])]
    explained = decision.explain()
    assert explained["candidates"][0] == {"agent_id": 4, "agent": "a4", "score": {
        "sticky": True, "preferred": 0, "load_ratio": 0.75, "idle_s": 1}}
    assert explained["excluded_total"] == 1


def test_escalation_drops_preferred_then_widens_as_the_rule_says():
    rule = Rule(7, "chinese", required={"chinese": 4}, preferred={"refunds": 2}, min_tier=2,
                escalate_after_s=60, widen={"required": {"chinese": 2}, "min_tier": 0})
    req = policy.requirements(rule)
    assert [policy.escalation_stage(req, ms) for ms in (0, 59_999, 60_000, 120_000, 10**9)] == [0, 0, 1, 2, 2]
    one, two = policy.widened(req, 1), policy.widened(req, 2)
    assert (dict(one.preferred), dict(one.required), one.min_tier) == ({}, {"chinese": 4}, 2)
    assert (dict(two.preferred), dict(two.required), two.min_tier, two.stage) == ({}, {"chinese": 2}, 0, 2)
    assert policy.next_stage_at(req, 1000, 0) == 61_000 and policy.next_stage_at(req, 1000, 2) is None
    no_widen = policy.requirements(Rule(8, "x", preferred={"a": 1}, escalate_after_s=10))
    assert policy.max_stage(no_widen) == 1 and policy.escalation_stage(no_widen, 10**9) == 1
    assert policy.max_stage(policy.requirements(None)) == 0


def test_requirements_round_trip_through_json():
    req = policy.requirements(Rule(3, "r", required={"a": 1}, priority=2, escalate_after_s=5, widen={"min_tier": 0}))
    assert Requirements.from_json(req.to_json()) == req
    # to_json spells its fields out: a field added to Requirements must be added there too.
    assert list(req.to_json()) == [f.name for f in dataclasses.fields(Requirements)]


def test_queue_rank_puts_vip_first_but_lets_old_tickets_age_past_them():
    aging = 600_000
    old_standard = policy.queue_rank(NOW - 300_000, 0, 0, aging)   # waited 5 minutes
    new_vip = policy.queue_rank(NOW, 1, 0, aging)
    assert new_vip < old_standard
    ancient_standard = policy.queue_rank(NOW - 700_000, 0, 0, aging)  # waited longer than one tier
    assert ancient_standard < new_vip
    assert policy.queue_rank(NOW, 0, 10, aging) == policy.queue_rank(NOW, 1, 0, aging)


def test_a_pool_kept_up_to_date_decides_as_a_pass_over_every_agent():
    # The router keeps a Pool per tenant and changes agents in it; its decisions (the first
    # candidates, totals, excluded in id order) are those of ranking every agent afresh.
    rng = random.Random(5)

    def some_agent(id):
        return Agent(id, f"a{id}", rng.choice(["online"] * 4 + ["away"]), rng.randrange(3),
                     {s: rng.randrange(4) for s in rng.sample(["zh", "refunds"], rng.randrange(3))},
                     {"email": rng.choice([0, 2, 4])}, {"email": rng.randrange(5)},
                     NOW + rng.choice([-60_000, -60_000, -1, 0, 5_000]))  # some tied at zero idle

    agents = {id: some_agent(id) for id in rng.sample(range(1, 2000), 400)}
    pool = agent_pool.Pool(agents.values())
    for step in range(60):
        id = rng.choice(list(agents)) if step % 5 else rng.randrange(2000, 3000)
        agents[id] = some_agent(id)
        pool.put(agents[id])
        if step % 7 == 0:
            pool.remove(id)
            del agents[id]
        req = Requirements(required={"zh": rng.randrange(3)} if step % 2 else {},
                           preferred={"refunds": 2} if step % 3 == 0 else {}, min_tier=step % 3)
        ticket = Ticket(1, "email", 1, previous_agent=rng.choice(list(agents)))
        decision = agent_pool.decide(ticket, pool, req, NOW, capacity_classes())
        everyone = sorted(agents.values(), key=lambda a: a.id)
        eligible = [a for a in everyone if not agent_pool.exclusions(a, "email", req)]
        scored = [(agent_pool.score(a, "email", req, ticket.previous_agent, NOW), a.id) for a in eligible]
        ranked = sorted(scored, key=lambda pair: (pair[0].key(), pair[1]))
        assert [(a.id, s) for a, s in decision.top(20)] == [(id, s) for s, id in ranked[:20]]
        assert decision.top_ids(4) == [id for _, id in ranked[:4]]
        explained = decision.explain()
        assert explained["candidates_total"] == len(eligible)
        assert [(x["agent_id"], x["score"]) for x in explained["candidates"]] == [
            (id, s.to_json()) for s, id in ranked[:policy.TRACE_CANDIDATES]]
        assert [x["agent_id"] for x in explained["excluded"]] == [
            a.id for a in everyone if agent_pool.exclusions(a, "email", req)][:policy.TRACE_EXCLUDED]
        assert explained["excluded_total"] == len(everyone) - len(eligible)


def test_a_count_that_stands_is_one_undo_and_took_would_leave_as_it_is():
    # The router skips undoing a planned count and counting the claim again when the planned
    # agent took the ticket: only where doing both would change nothing.
    rng = random.Random(3)
    for _ in range(500):
        a = agent(1, cap=5, load=rng.randrange(3), idle_s=rng.choice([0, 0, 60]))
        now = rng.choice([NOW, NOW + 1])
        tenant, again = snapshot.Tenant([], [], 0.0), snapshot.Tenant([], [], 0.0)
        for t in (tenant, again):
            t.put(a)
        again.undo(1, "email")
        again.took(1, "email", now)
        assert tenant.stands(1, "email", now) == (again.pool.get(1) == a)
    assert snapshot.Tenant([], [], 0.0).stands(1, "email", NOW)  # an agent it does not hold: nothing to change
