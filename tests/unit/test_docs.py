"""The settings reference in docs/operations.md is generated and must match the settings model."""

import dataclasses

from prometheus_client.metrics import MetricWrapperBase

from core import metrics
from core.settings import Settings, known_env_names
from ops import docs


def test_every_setting_has_a_help_text_and_no_help_text_is_stale():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert not fields - set(docs.HELP), f"add a help text in ops/docs.py for {sorted(fields - set(docs.HELP))}"
    assert not set(docs.HELP) - fields, f"help texts for settings that no longer exist: {sorted(set(docs.HELP) - fields)}"


def test_table_names_each_setting_by_environment_variable_and_toml_key():
    table = docs.render()
    for f in dataclasses.fields(Settings):
        row = next(line for line in table.splitlines() if f"| `{f.name}` |" in line)
        for env in docs.env_names(f.name):
            assert f"`{env}`" in row and env in known_env_names()
    assert "| `REDIS_URL`, `SWITCHBOARD_REDIS_URL` | `redis_url` | str | `\"\"` |" in table


def test_operations_guide_holds_the_current_settings_table():
    current = docs.section(docs.OPERATIONS_MD.read_text(encoding="utf-8"))
    assert current == docs.render(), "docs/operations.md is out of date: run `python -m ops.docs --write`"


def test_splice_replaces_only_the_marked_section():
    doc = f"intro\n{docs.BEGIN}\nold table\n{docs.END}\noutro\n"
    out = docs.splice(doc, "| new |\n")
    assert out == f"intro\n{docs.BEGIN}\n| new |\n{docs.END}\noutro\n"
    assert docs.section(out) == "| new |\n"


def test_operations_guide_lists_every_metric():
    text = docs.OPERATIONS_MD.read_text(encoding="utf-8")
    for m in vars(metrics).values():
        if isinstance(m, MetricWrapperBase):
            exposed = m._name + ("_total" if m._type == "counter" else "")
            assert f"`{exposed}`" in text, f"docs/operations.md does not describe {exposed}"
