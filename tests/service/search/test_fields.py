"""What content becomes for searching, without a database."""

from __future__ import annotations

import pytest

from beamlink.errors import InvalidInput
from beamlink.service.search.fields import (
    MAX_FIELDS,
    check_field_name,
    date_key,
    entry_text,
    field_values,
    file_references,
)


def test_leaves_are_indexed_under_dotted_names_with_arrays_flattened() -> None:
    content = {
        "title": "Run 7",
        "sample": {"name": "Lysozyme", "temperature": 21.5},
        "keywords": ["xpcs", "gel"],
        "ok": True,
        "taken": "2026-03-04T05:06:07+02:00",
        "files": [{"path": "/a.h5"}],
        "odd key": "kept as text only",
        "nothing": None,
    }
    values = {(v.field, v.text, v.key, v.number, v.date) for v in field_values(content)}
    assert values == {
        ("title", "Run 7", "run 7", None, None),
        ("sample.name", "Lysozyme", "lysozyme", None, None),
        ("sample.temperature", "21.5", "21.5", 21.5, None),
        ("keywords", "xpcs", "xpcs", None, None),
        ("keywords", "gel", "gel", None, None),
        ("ok", "true", "true", None, None),
        ("taken", "2026-03-04T05:06:07+02:00", "2026-03-04t05:06:07+02:00", None, "2026-03-04T03:06:07"),
        ("files.path", "/a.h5", "/a.h5", None, None),
    }
    assert "kept as text only" in entry_text("s", content)


def test_dates_normalise_to_utc_and_non_dates_do_not() -> None:
    assert date_key("2026-11-21") == "2026-11-21T00:00:00"
    assert date_key("2026-11-21T10:00:00Z") == "2026-11-21T10:00:00"
    assert date_key("2026-11-21 10:00") == "2026-11-21T10:00:00"
    assert date_key("2026-13-40") is None
    assert date_key("yesterday") is None
    assert date_key("20261121") is None


def test_plot_data_is_not_searchable_text_nor_fields() -> None:
    content = {"title": "G2", "plots": [{"series": [{"x": [123456] * (MAX_FIELDS + 1), "y": [7]}]}]}
    text = entry_text("subject-1", content)
    assert "G2" in text
    assert "subject-1" in text
    assert "123456" not in text
    assert [v.field for v in field_values(content)] == ["title"]  # however many points a plot has


def test_too_many_values_is_refused_with_the_limit() -> None:
    with pytest.raises(InvalidInput, match=f"more than {MAX_FIELDS} values"):
        field_values({"data": list(range(MAX_FIELDS + 1))})


def test_file_references_are_read_and_bad_ones_named_by_pointer() -> None:
    refs = file_references(
        {
            "thumbnail": {"collection": "c1", "path": "/t.png"},
            "files": [{"collection": "c1", "path": "/d.h5"}],
        }
    )
    assert [(r.collection, r.path, r.kind, r.pointer) for r in refs] == [
        ("c1", "/d.h5", "files", "/content/files/0"),
        ("c1", "/t.png", "thumbnail", "/content/thumbnail"),
    ]
    with pytest.raises(InvalidInput, match="/content/images/1: a file reference"):
        file_references({"images": [{"collection": "c", "path": "/a"}, "/b.png"]})


@pytest.mark.parametrize("name", ["", "a..b", "a b", "a.", "$.a", "a[0]"])
def test_bad_field_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a field name"):
        check_field_name(name, where="facets/0/field_name")
