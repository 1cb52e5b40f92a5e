"""Plan files in every shape seen in the wild, read into the contract's Story.

Each fixture is invented text in the shape of a kind of real plan (see
docs/loop-families.md): one test per shape and per quirk.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopdash.derive.status import next_story, stories_payload
from loopdash.loop.parsing import ParseError, parse_prd


def plan(doc: Any) -> Any:
    return parse_prd(json.dumps(doc).encode())


def test_snake_case_user_stories_without_priority() -> None:
    prd = plan(
        {
            "title": "Tablero",
            "features": ["a", "b"],
            "user_stories": [{"id": "US-1", "title": "Ver", "passes": False}],
        }
    )
    assert [(s.id, s.title, s.passes, s.priority) for s in prd.stories] == [("US-1", "Ver", False, None)]
    assert prd.project == "Tablero"


def test_stories_array_with_status_words_and_priority_words() -> None:
    prd = plan(
        {
            "project": "tracker",
            "stories": [
                {
                    "id": "TR-1",
                    "title": "Profile",
                    "status": "done",
                    "priority": "high",
                    "acceptance": ["tab"],
                },
                {"id": "TR-2", "title": "Audit", "status": "active", "priority": "critical"},
                {"id": "TR-3", "title": "Export", "status": "todo", "priority": "low"},
                {"id": "TR-4", "title": "Sync", "status": "Blocked", "priority": "medium"},
            ],
        }
    )
    assert [s.state for s in prd.stories] == ["completed", "in_progress", "pending", "blocked"]
    assert [s.rank for s in prd.stories] == [1.0, 0.0, 3.0, 2.0]
    assert prd.stories[0].acceptance_criteria == ("tab",)
    body = stories_payload(prd)["stories"]
    assert [s["status"] for s in body] == ["completed", "pending", "pending", "pending"]
    assert [s["state"] for s in body] == ["completed", "in_progress", "pending", "blocked"]
    assert body[0]["priority"] is None and body[0]["priorityLabel"] == "high"


def test_status_in_progress_story_is_the_next_one() -> None:
    prd = plan(
        {
            "stories": [
                {"id": "A", "priority": 1, "passes": False},
                {"id": "B", "priority": 5, "status": "in_progress"},
            ]
        }
    )
    story = next_story(prd)
    assert story is not None and story.id == "B"


def test_priority_words_order_the_next_story() -> None:
    prd = plan({"stories": [{"id": "L", "priority": "low"}, {"id": "H", "priority": "High"}]})
    story = next_story(prd)
    assert story is not None and story.id == "H"


def test_tasks_without_ids_get_stable_positional_ids() -> None:
    prd = plan(
        {
            "tasks": [
                {"title": "Wire the view", "done": True},
                {"description": "Second line\nmore", "done": "false"},
                {"title": "Third", "done": "true"},
            ]
        }
    )
    assert [(s.id, s.title, s.passes) for s in prd.stories] == [
        ("#1", "Wire the view", True),
        ("#2", "Second line", False),
        ("#3", "Third", True),
    ]


def test_in_a_list_of_ids_an_item_without_id_is_skipped() -> None:
    prd = plan({"userStories": [{"id": "A"}, {"title": "fragment"}]})
    assert [s.id for s in prd.stories] == ["A"]


def test_features_with_category_and_description_only() -> None:
    prd = plan(
        {"features": [{"category": "ui", "description": "Grid layout", "steps": ["x"], "passes": True}]}
    )
    (story,) = prd.stories
    assert (story.id, story.title, story.passes) == ("#1", "Grid layout", True)


def test_items_with_ids_out_of_order_keep_file_order() -> None:
    prd = plan({"items": [{"id": "RL-002", "passes": False}, {"id": "RL-000", "passes": True}]})
    assert [s.id for s in prd.stories] == ["RL-002", "RL-000"]


def test_top_level_array_with_completed_flag() -> None:
    prd = parse_prd(b'[{"id": 1, "description": "Only item", "completed": true}]')
    (story,) = prd.stories
    assert (story.id, story.title, story.passes, story.state) == ("1", "Only item", True, "completed")


def test_integer_ids_become_strings() -> None:
    prd = plan({"stories": [{"id": 1, "priority": 1}, {"id": 2, "priority": 1}]})
    assert [s.id for s in prd.stories] == ["1", "2"]


def test_nested_envelope_features_holding_user_stories() -> None:
    prd = plan(
        {
            "artifact_type": "prd",
            "status": "approved",
            "data": {
                "project_name": "engine",
                "features": [
                    {"id": "FR-1", "user_stories": [{"id": "ST-1", "title": "Intake", "priority": "high"}]},
                    {"id": "FR-2", "user_stories": [{"id": "ST-2", "title": "Review"}]},
                ],
            },
        }
    )
    assert [(s.id, s.state) for s in prd.stories] == [("ST-1", "pending"), ("ST-2", "pending")]
    assert prd.project == "engine"


def test_epics_holding_stories() -> None:
    prd = plan({"epics": [{"id": "E1", "stories": [{"id": "S1", "passes": True}, {"id": "S2"}]}]})
    assert [(s.id, s.passes) for s in prd.stories] == [("S1", True), ("S2", False)]


def test_epics_beside_user_stories_are_not_stories() -> None:
    prd = plan({"epics": [{"id": "E1", "title": "Epic"}], "userStories": [{"id": "US-1", "epic": "E1"}]})
    assert [s.id for s in prd.stories] == ["US-1"]


def test_phases_without_status_are_pending_items_not_an_error() -> None:
    prd = plan(
        {"title": "events", "phases": [{"name": "Phase 1: CLI", "goal": "Create apps"}, {"name": "Phase 2"}]}
    )
    assert [(s.id, s.title, s.description, s.state) for s in prd.stories] == [
        ("#1", "Phase 1: CLI", "Create apps", "pending"),
        ("#2", "Phase 2", "", "pending"),
    ]


def test_envelope_without_a_list_has_no_stories_and_no_error() -> None:
    assert plan({"artifact_type": "prd", "data": {"summary": "text"}}).stories == ()


def test_acceptance_criteria_as_objects_keep_their_text() -> None:
    prd = plan(
        {
            "userStories": [
                {"id": "A", "acceptanceCriteria": [{"id": "AC-1", "text": "builds", "passes": True}, "plain"]}
            ]
        }
    )
    assert prd.stories[0].acceptance_criteria == ("builds", "plain")


@pytest.mark.parametrize("key", ["dependencies", "dependsOn", "depends_on", "blocking"])
def test_dependencies_under_every_key(key: str) -> None:
    prd = plan({"stories": [{"id": "B", key: ["A"]}]})
    assert prd.stories[0].dependencies == ("A",)


def test_blocking_as_a_boolean_is_not_a_dependency() -> None:
    assert plan({"stories": [{"id": "B", "blocking": True}]}).stories[0].dependencies == ()


def test_status_done_with_passes_false_is_not_done() -> None:
    assert plan({"stories": [{"id": "A", "status": "done", "passes": False}]}).stories[0].passes is False


def test_active_status_with_passes_false_stays_in_progress() -> None:
    assert (
        plan({"stories": [{"id": "docs", "status": "active", "passes": False}]}).stories[0].state
        == "in_progress"
    )


def test_name_instead_of_project_and_complexity_key() -> None:
    prd = plan({"name": "tui", "userStories": [{"id": "US-1", "complexity": "medium", "dependsOn": []}]})
    assert prd.project == "tui" and prd.stories[0].complexity == "medium"


def test_utf8_bom_is_allowed() -> None:
    prd = parse_prd(b'\xef\xbb\xbf{"stories": [{"id": "A"}]}')
    assert [s.id for s in prd.stories] == ["A"]


def test_invalid_json_with_a_placeholder_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_prd(b'{"userStories": [{"id": "US-1"},\n    ...\n]}')


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.one_of(st.integers(), st.text(max_size=5), st.none(), st.booleans()),
                "status": st.sampled_from(["done", "todo", "active", "in-progress", "blocked", "x", 3]),
                "passes": st.one_of(st.booleans(), st.sampled_from(["true", "false", "yes"])),
                "priority": st.one_of(st.integers(-5, 5), st.sampled_from(["high", "low", "p1", "?"])),
                "description": st.text(max_size=30),
            },
        ),
        max_size=8,
    ),
    st.sampled_from(["userStories", "user_stories", "stories", "tasks", "features", "items", None]),
)
def test_any_item_list_gives_servable_stories_with_unique_positional_ids(
    items: list[Any], key: str | None
) -> None:
    doc: Any = items if key is None else {key: items}
    prd = plan(doc)
    body = json.dumps(stories_payload(prd), allow_nan=False)
    assert body
    if items and not any(
        isinstance(i.get("id"), (int, str)) and not isinstance(i.get("id"), bool) and str(i.get("id"))
        for i in items
    ):
        assert [s.id for s in prd.stories] == [f"#{n}" for n in range(1, len(items) + 1)]
    for story in prd.stories:
        assert story.state in ("completed", "pending", "in_progress", "blocked")
        assert story.passes == (story.state == "completed")
