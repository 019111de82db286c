"""The schema. Every table carries ``tenant_id``; times are epoch milliseconds."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _tenant() -> Column:
    return Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False)


tenants = Table(
    "tenants", metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("next_ticket_number", Integer, nullable=False, server_default="0"),
    Column("settings", JSON, nullable=False, default=dict),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
)

channel_accounts = Table(
    "channel_accounts", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("channel", String(32), nullable=False),
    Column("address", String(320), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("settings", JSON, nullable=False, default=dict),
    Column("secret_enc", Text),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("channel", "address", name="uq_channel_accounts_channel_address"),
)

customers = Table(
    "customers", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("name", String(200), nullable=False, server_default=""),
    Column("vip_tier", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("last_agent_id", Integer),  # the agent last assigned to this customer (sticky routing)
)

identities = Table(
    "identities", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("scope", String(64), nullable=False, server_default=""),
    Column("value", String(320), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "kind", "scope", "value", name="uq_identities_tenant_kind_scope_value"),
    # Every message looks its sender up by value alone (kind and scope are matched after).
    Index("ix_identities_tenant_value", "tenant_id", "value"),
)

agents = Table(
    "agents", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("status", String(16), nullable=False, server_default="offline"),
    Column("tier", Integer, nullable=False, server_default="0"),
    Column("skills", JSON, nullable=False, default=dict),
    Column("capacity", JSON, nullable=False, default=dict),
    Column("created_at", BigInteger, nullable=False),
    # Capacity and load per channel class as plain columns, so a claim is one compare-and-set
    # (`load_email < cap_email`) on any database.
    Column("cap_email", Integer, nullable=False, server_default="0"),
    Column("cap_chat", Integer, nullable=False, server_default="0"),
    Column("cap_voice", Integer, nullable=False, server_default="0"),
    Column("load_email", Integer, nullable=False, server_default="0"),
    Column("load_chat", Integer, nullable=False, server_default="0"),
    Column("load_voice", Integer, nullable=False, server_default="0"),
    Column("last_assigned_at", BigInteger, nullable=False, server_default="0"),
    Column("status_at", BigInteger, nullable=False, server_default="0"),
    # Console sign-in: an Argon2id hash (none: the agent cannot sign in) and agent | supervisor | admin.
    Column("password_hash", String(255)),
    Column("role", String(16), nullable=False, server_default="agent"),
    UniqueConstraint("tenant_id", "email", name="uq_agents_tenant_email"),
)

tickets = Table(
    "tickets", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("number", Integer, nullable=False),
    Column("subject", String(1000), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("account_id", Integer, ForeignKey("channel_accounts.id"), nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("assignee_id", Integer, ForeignKey("agents.id")),
    Column("parent_id", Integer, ForeignKey("tickets.id")),
    Column("tags", JSON, nullable=False, default=list),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger),
    Column("language", String(8)),  # of the first message, set by the router
    Column("assigned_at", BigInteger),
    # Opened by bulk or machine-made mail (a newsletter, a monitoring alert): kept where people
    # see it, never routed nor acknowledged. ``auto_reason`` says which sign gave it away.
    Column("auto", Boolean, nullable=False, server_default="0"),
    Column("auto_reason", String(64), nullable=False, server_default=""),
    # Addresses on its messages' Cc (lower-case, bounded): they may quote its number to join it.
    Column("cc", JSON),
    # Signed status-page links carry this in their MAC: raising it revokes every link issued.
    Column("portal_generation", Integer, nullable=False, server_default="0"),
    # Custom field values by field name (``custom_fields``); NULL until one is set. Filters
    # read ``ticket_field_values``, which holds the same values one indexed row per value.
    Column("fields", JSON),
    # When the status last changed: how long a ticket has been pending or solved.
    Column("status_at", BigInteger),
    # What an agent needs beyond the routing rule's requirements, set by a trigger's
    # require_skills / require_team: {"required": {skill: level}, "team": name}.
    Column("requirements", JSON),
    UniqueConstraint("tenant_id", "number", name="uq_tickets_tenant_number"),
    Index("ix_tickets_tenant_status_id", "tenant_id", "status", "id"),
    Index("ix_tickets_tenant_customer", "tenant_id", "customer_id"),
    # Automations look for tickets by their time columns (``rules.automations``).
    Index("ix_tickets_tenant_status_status_at", "tenant_id", "status", "status_at"),
    Index("ix_tickets_tenant_updated_at", "tenant_id", "updated_at"),
    Index("ix_tickets_tenant_created_at", "tenant_id", "created_at"),
)

# Conversation keys (email Message-IDs, chat session keys) -> the ticket that holds them.
# The unique key is what makes threading race-free across normalizer processes.
ticket_threads = Table(
    "ticket_threads", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("account_id", Integer, ForeignKey("channel_accounts.id"), nullable=False),
    Column("thread_key", String(255), nullable=False),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "account_id", "thread_key", name="uq_ticket_threads_key"),
)

messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id")),
    Column("channel", String(32), nullable=False),
    Column("account_id", Integer, ForeignKey("channel_accounts.id"), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("envelope_id", String(26), nullable=False),
    Column("direction", String(8), nullable=False, server_default="in"),
    Column("customer_id", Integer, ForeignKey("customers.id")),
    Column("sender", String(320), nullable=False, server_default=""),
    Column("sender_name", String(200), nullable=False, server_default=""),
    Column("subject", String(1000), nullable=False, server_default=""),
    Column("text", Text, nullable=False, server_default=""),
    Column("html", Text, nullable=False, server_default=""),
    Column("headers", JSON, nullable=False, default=dict),
    Column("auto_reason", String(64), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger),
    Column("kind", String(8), nullable=False, server_default=""),  # outgoing: reply | note (internal)
    Column("author_id", Integer, ForeignKey("agents.id")),  # the agent who wrote an outgoing message
    # How the normalizer threaded it: the rule that placed it and each rule's hit or miss, why.
    Column("thread_rule", String(32), nullable=False, server_default=""),
    Column("thread_trail", JSON),
    UniqueConstraint("tenant_id", "channel", "dedup_key", name="uq_messages_dedup"),
    Index("ix_messages_ticket_id", "ticket_id", "id"),
    # Messages by kind (``GET /messages?kind=bounce``): the bounces no ticket holds.
    Index("ix_messages_tenant_auto_reason", "tenant_id", "auto_reason", "id"),
)

attachments = Table(
    "attachments", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("blob_key", String(100), nullable=False),
    Column("content_id", String(255)),
    Column("inline", Boolean, nullable=False, server_default="0"),
)

# Routing rules: an ordered table per tenant; the first rule that matches a ticket applies.
routing_rules = Table(
    "routing_rules", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("position", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("match", JSON, nullable=False, default=dict),  # channels, accounts, tags, languages, ...
    # rule_schema.POLICY_FIELDS: required/preferred skills, priority, min_tier, escalate_after_s, widen
    Column("policy", JSON, nullable=False, default=dict),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_routing_rules_tenant_position", "tenant_id", "position"),
)

# Tickets waiting for an agent. ``rank`` is the enqueue time minus the ticket's boost, so a
# plain ascending index gives the order "VIP first, then oldest" with linear aging.
routing_queue = Table(
    "routing_queue", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, unique=True),
    Column("channel_class", String(8), nullable=False),
    Column("vip_tier", Integer, nullable=False, server_default="0"),
    Column("rank", BigInteger, nullable=False),
    Column("queued_at", BigInteger, nullable=False),
    Column("rule_id", Integer),
    Column("requirements", JSON, nullable=False, default=dict),
    Column("stage", Integer, nullable=False, server_default="0"),  # escalation stage reached
    Column("next_stage_at", BigInteger),  # when the next escalation stage is due, if any
    Index("ix_routing_queue_tenant_class_rank", "tenant_id", "channel_class", "rank"),
    Index("ix_routing_queue_next_stage_at", "next_stage_at"),
)

# Every routing decision with its reasons: what `GET /tickets/{id}/routing` explains.
routing_decisions = Table(
    "routing_decisions", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("agent_id", Integer),
    Column("rule_id", Integer),
    Column("detail", JSON, nullable=False, default=dict),
    Column("elapsed_us", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_routing_decisions_ticket", "ticket_id", "id"),
)

# Replies waiting to be sent, and how their sending went. Written in the transaction that
# stores the reply; the relay puts due rows on ``outbound.<channel>`` (``relayed_at`` marks
# them), the sender records the outcome. ``handle`` and ``reply_to`` are chosen once, here,
# so every retry sends the same Message-ID.
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False, unique=True),
    Column("channel", String(32), nullable=False),
    Column("mode", String(8), nullable=False, server_default="send"),  # send | callback (a phone ticket)
    Column("account_id", Integer, ForeignKey("channel_accounts.id"), nullable=False),
    Column("recipient", String(320), nullable=False, server_default=""),
    Column("recipient_name", String(200), nullable=False, server_default=""),
    Column("handle", String(255), nullable=False, server_default=""),
    Column("reply_to", String(320), nullable=False, server_default=""),
    Column("in_reply_to", String(998), nullable=False, server_default=""),
    Column("refs", JSON, nullable=False, default=list),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False, server_default="0"),
    Column("lease_until", BigInteger, nullable=False, server_default="0"),  # an attempt holds the row
    Column("relayed_at", BigInteger),
    Column("relay_entry", String(32), nullable=False, server_default=""),
    Column("last_error_code", String(64), nullable=False, server_default=""),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("platform_id", String(255), nullable=False, server_default=""),
    Column("idempotency_key", String(200)),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger),
    UniqueConstraint("tenant_id", "idempotency_key", name="uq_outbox_tenant_idempotency_key"),
    Index("ix_outbox_status_relayed_next", "status", "relayed_at", "next_attempt_at"),
)

# A tenant's custom ticket fields: ``field_schema`` says what each type holds.
custom_fields = Table(
    "custom_fields", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("name", String(40), nullable=False),  # a slug: the key in tickets.fields and in filters
    Column("type", String(16), nullable=False),  # text | number | date | choice | multi_choice
    Column("label", String(200), nullable=False, server_default=""),
    Column("required", Boolean, nullable=False, server_default="0"),  # before a ticket is solved
    Column("choices", JSON),  # choice and multi_choice: the values allowed
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_custom_fields_tenant_name"),
)

# One row per custom field value of a ticket (a multi-choice value: one row per choice), so
# ``GET /tickets?field.NAME=...`` is an indexed lookup on SQLite and PostgreSQL alike: JSON
# path expressions can only be indexed per field name, per database dialect.
ticket_field_values = Table(
    "ticket_field_values", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("name", String(40), nullable=False),
    Column("value_text", String(500), nullable=False),  # text, choice, ISO date, the number as text
    Column("value_num", Float),  # number; date: days since 1970-01-01 (ranges)
    Index("ix_ticket_field_values_text", "tenant_id", "name", "value_text"),
    Index("ix_ticket_field_values_num", "tenant_id", "name", "value_num"),
    Index("ix_ticket_field_values_ticket", "ticket_id", "name"),
)

# Triggers: a tenant's ordered rules run on ticket events. ``conditions`` is the API's ``if``
# (rules.conditions), ``actions`` its ``then`` (rules.actions).
triggers = Table(
    "triggers", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("events", JSON, nullable=False, default=list),  # the API's ``on``: event types
    Column("conditions", JSON, nullable=False, default=dict),
    Column("actions", JSON, nullable=False, default=list),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_triggers_tenant_position", "tenant_id", "position"),
)

# Automations: a tenant's ordered time-based rules, checked by a timer over tickets.
automations = Table(
    "automations", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("conditions", JSON, nullable=False, default=dict),
    Column("actions", JSON, nullable=False, default=list),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_automations_tenant_position", "tenant_id", "position"),
)

# Every firing of a trigger or automation, written in the transaction of its effects: the
# unique keys make a redelivered event (or a second look at a ticket) fire nothing twice.
# An automation fires once per ticket per ``episode`` (the ticket's ``status_at``).
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("trigger_id", Integer),
    Column("automation_id", Integer),
    Column("episode", BigInteger),
    Column("name", String(200), nullable=False, server_default=""),
    Column("actions", JSON, nullable=False, default=list),
    Column("result", String(16), nullable=False),  # applied | error
    Column("error", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("event_id", "trigger_id", name="uq_audit_event_trigger"),
    UniqueConstraint("automation_id", "ticket_id", "episode", name="uq_audit_automation_episode"),
    Index("ix_audit_ticket_id", "ticket_id", "id"),
)

# Business calendars by name per tenant: the document ``rules.calendar_schema`` checked.
calendars = Table(
    "calendars", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("name", String(100), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_calendars_tenant_name"),
)

# SLA policies: an ordered table per tenant; the first whose conditions match a ticket applies.
sla_policies = Table(
    "sla_policies", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("position", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("conditions", JSON, nullable=False, default=dict),
    Column("targets", JSON, nullable=False, default=dict),  # metric -> seconds
    Column("calendar", String(100)),  # a calendar's name; NULL: calendar time (24/7)
    Column("warn_before_s", Integer, nullable=False, server_default="900"),
    Column("pause_in", JSON, nullable=False, default=list),  # ticket statuses that stop the clocks
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_sla_policies_tenant_name"),
    Index("ix_sla_policies_tenant_position", "tenant_id", "position"),
)

# One clock per ticket and metric (first_reply, next_reply, resolution). Business time is
# counted in ms: ``used_ms`` before ``run_from`` (NULL while paused); ``next_at`` is the next
# moment the timer owes the clock something (its warning or its breach), NULL when nothing.
sla_clocks = Table(
    "sla_clocks", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("metric", String(16), nullable=False),
    Column("policy_id", Integer),
    Column("policy", String(100), nullable=False),
    Column("calendar", String(100)),
    Column("state", String(12), nullable=False),  # running | paused | met | breached
    Column("target_ms", BigInteger, nullable=False),
    Column("warn_ms", BigInteger, nullable=False, server_default="0"),
    Column("used_ms", BigInteger, nullable=False, server_default="0"),
    Column("run_from", BigInteger),
    Column("started_at", BigInteger, nullable=False),
    Column("due_at", BigInteger),
    Column("warn_at", BigInteger),
    Column("warned_at", BigInteger),
    Column("paused_at", BigInteger),
    Column("breached_at", BigInteger),
    Column("met_at", BigInteger),
    Column("next_at", BigInteger),
    Column("cycle", Integer, nullable=False, server_default="1"),  # next_reply: one per customer turn
    Column("breaches", Integer, nullable=False, server_default="0"),  # breached cycles so far
    Column("start_message_id", Integer),  # next_reply: the customer message that started the cycle
    Column("announce", String(32), nullable=False, server_default=""),  # events claimed, not yet published
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("ticket_id", "metric", name="uq_sla_clocks_ticket_metric"),
    Index("ix_sla_clocks_next_at", "next_at"),
    Index("ix_sla_clocks_tenant_state", "tenant_id", "state"),
)

# Webhooks out: a tenant's receivers, each with the event types it wants ("*": every one)
# and its signing secret, sealed with the secret key (core.credentials).
webhooks = Table(
    "webhooks", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("url", String(2048), nullable=False),
    Column("events", JSON, nullable=False, default=list),
    Column("secret_enc", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_webhooks_tenant_id", "tenant_id", "id"),
)

# One event (or one trigger's call) to one URL, across all its attempts. ``next_at`` is when
# the next attempt is due (a claimed row is pushed past its lease, so a crashed attempt comes
# due again); None once delivered or dead. A redelivered event adds no second row: unique
# (webhook, event id). ``payload`` is the body without its ``id``.
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    _tenant(),
    Column("webhook_id", Integer, ForeignKey("webhooks.id")),  # None: a one-off call to ``url``
    Column("url", String(2048), nullable=False),
    Column("event_id", String(26)),
    Column("event_type", String(64), nullable=False),
    Column("ticket_id", Integer),
    Column("payload", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", BigInteger),
    Column("lease_until", BigInteger, nullable=False, server_default="0"),  # an attempt holds the row
    Column("window_from", BigInteger, nullable=False),  # retries end webhook_retry_window_s after this
    Column("response_code", Integer),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("last_attempt_at", BigInteger),
    Column("delivered_at", BigInteger),
    UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
    Index("ix_webhook_deliveries_next_at", "next_at"),
    Index("ix_webhook_deliveries_webhook_id", "webhook_id", "id"),
)
