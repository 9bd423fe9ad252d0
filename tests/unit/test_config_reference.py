"""docs/configuration.md's tables are the settings models, rendered: they cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from components import settings as s
from components.settings import reference as ref

MASTERS = '[{"name": "m", "host": "h"}]'


def test_the_page_is_what_the_models_render() -> None:
    page = ref.PAGE.read_text()
    assert ref.replace_block(page, ref.render()) == page, (
        "docs/configuration.md differs from the settings models: run `python -m components.settings.reference`")


def test_every_key_has_a_description_and_no_description_is_stale() -> None:
    rows = ref.rows()
    assert [r.key for r in rows if not r.description] == []
    keys = {r.key for r in rows}
    assert sorted(set(ref.DESCRIPTIONS) - keys) == [], "descriptions for keys the models no longer have"
    # A field with its own Field(description=...) is described there; a second text here would be ignored.
    own = {
        f"{prefix}{info.alias or name}"
        for prefix, model in [("masters[].", s.Master)] + [(f"{x.key}.", x.model) for x in ref.SECTIONS]
        for name, info in model.model_fields.items() if info.description
    }
    assert sorted(own & set(ref.DESCRIPTIONS)) == []


def test_the_tables_cover_exactly_the_keys_the_parser_reads() -> None:
    top = {t.key for t in ref.TOP_LEVEL} | {x.key for x in ref.SECTIONS}
    assert top == s._KNOWN_KEYS
    assert len(top) == len(ref.TOP_LEVEL) + len(ref.SECTIONS)


@pytest.mark.parametrize("section", ref.SECTIONS, ids=lambda x: x.key)
def test_each_section_is_the_model_the_parser_uses(section: ref.Section) -> None:
    parsed = s.parse_settings({"masters": MASTERS, section.key: "{}"}, set(), "t")
    assert type(getattr(parsed, section.attribute)) is section.model
    # And its keys are that model's: an unknown one is refused under this section's name.
    with pytest.raises(s.SettingsError, match=rf"kube-audit:{section.key}\.noSuchKey: Extra inputs"):
        s.parse_settings({"masters": MASTERS, section.key: '{"noSuchKey": 1}'}, set(), "t")


def test_required_top_level_keys_are_really_required() -> None:
    required = [t.key for t in ref.TOP_LEVEL if t.default is None]
    assert required == ["masters"]
    with pytest.raises(s.SettingsError, match="kube-audit:masters: required"):
        s.parse_settings({}, set(), "t")


def test_top_level_defaults_are_what_the_parser_applies() -> None:
    rendered = {row.key: row.default for row in ref.sections()[0][1]}
    assert rendered["enabled"] == "`true`"
    assert rendered["policy"] == "`dce-default`"
    assert rendered["volumeMinHistoryHours"] == "`24`"
    assert rendered["sshPrivateKey"] == "unset"


def test_the_table_follows_a_changed_model() -> None:
    # The table is read from the model: a changed default, a new field or a new constraint shows.
    class ChangedLog(s.LogSettings):
        max_age: int = Field(default=7, alias="maxAge", ge=1)
        shipped: bool = Field(default=False, description="ship the log elsewhere")

    sections = (ref.Section("log", ChangedLog, "log", "log"),)
    rows = {r.key: r for r in ref.rows(ref.sections(sections))}
    assert (rows["log.maxAge"].type, rows["log.maxAge"].default) == ("integer ≥ 1", "`7`")
    assert rows["log.shipped"].description == "ship the log elsewhere"
    assert ref.render(ref.sections(sections)) != ref.render()


def test_check_mode_fails_on_a_stale_page_and_rewrites_it(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"# title\n\n{ref.BEGIN}\nold table\n{ref.END}\n\ntail\n")
    assert ref.main(["--check", "--page", str(page)]) == 1
    assert "old table" in page.read_text()
    assert ref.main(["--page", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# title\n\n") and text.endswith("\n\ntail\n") and "old table" not in text
    assert ref.main(["--check", "--page", str(page)]) == 0


def test_a_page_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        ref.replace_block("# no markers here\n", ref.render())
