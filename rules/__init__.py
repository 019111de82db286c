"""Service rules: triggers and automations, SLA clocks on business calendars, webhooks out.

One role, ``switchboard rules``: a consumer group ``rules`` on ``ticket.events`` hands each
event to the handlers (``rules.components``), and timers beside it wake on due times.
"""
