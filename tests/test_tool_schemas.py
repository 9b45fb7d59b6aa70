"""Every agent tool's schema is made from its function, and its arguments go through the same model.

The schemas are what the model is shown and part of every agent turn's cache key, so two of them
are spelled out here as they were when they were still written by hand: the derivation keeps them.
"""

from __future__ import annotations

import inspect
from typing import Annotated

import pytest
from pydantic import Field

from msrkit.agent import tools as tools_module
from msrkit.agent.schema import arguments_model, check_arguments, example_arguments, parameters_schema
from msrkit.agent.tools import TOOLS, Tool, ToolInputError, tool_specs, validated

FUNCTIONS = {
    "user_profile": tools_module.user_profile,
    "similar_users": tools_module.similar_users,
    "search_catalog": tools_module.search_catalog,
    "similar_items": tools_module.similar_items,
    "filter": tools_module.filter_candidates,
    "rank_candidates": tools_module.rank_candidates,
    "inspect_items": tools_module.inspect_items,
    "finish": tools_module.finish,
}


@pytest.mark.parametrize("name", list(TOOLS))
def test_each_tools_schema_is_its_functions_signature(name: str) -> None:
    tool, fn = TOOLS[name], FUNCTIONS[name]
    assert tool.arguments is not None
    assert tool.spec.parameters == parameters_schema(arguments_model(fn)) == parameters_schema(tool.arguments)
    keyword = [p for p in list(inspect.signature(fn).parameters.values())[1:]]
    assert list(tool.spec.parameters["properties"]) == [p.name for p in keyword]
    assert tool.spec.parameters["required"] == [p.name for p in keyword if p.default is p.empty]
    assert tool.spec.description == (fn.__doc__ or "").strip().splitlines()[0]


@pytest.mark.parametrize("name", list(TOOLS))
def test_each_tools_arguments_validate_through_its_model(name: str) -> None:
    tool = TOOLS[name]
    assert tool.arguments is not None
    args, _, error = check_arguments(example_arguments(tool.spec.parameters), tool.spec.parameters)
    assert error is None
    assert set(validated(tool.arguments, args)) == set(tool.spec.parameters["properties"])


def test_the_model_refuses_what_the_schema_refuses() -> None:
    finish = TOOLS["finish"].arguments
    assert finish is not None
    with pytest.raises(ToolInputError, match="'item_ids'"):
        validated(finish, {})
    with pytest.raises(ToolInputError, match="'item_ids'"):
        validated(finish, {"item_ids": [str(n) for n in range(11)]})  # maxItems 10
    with pytest.raises(ToolInputError, match="'explanation'"):
        validated(finish, {"item_ids": ["1"], "explanation": "x" * 301})  # maxLength 300
    similar = TOOLS["similar_users"].arguments
    assert similar is not None
    assert validated(similar, {}) == {"k": 3}  # the function's default
    with pytest.raises(ToolInputError, match="'k'"):
        validated(similar, {"k": 11})


def test_the_schemas_are_those_the_model_was_shown_before() -> None:
    ids = {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 10, "examples": [["1", "2"]]}
    assert TOOLS["filter"].spec.parameters == {
        "type": "object",
        "properties": {
            "exclude_ids": ids,
            "exclude_seen": {"type": "boolean"},
            "attribute": {"type": "string", "maxLength": 40, "examples": ["genres"]},
            "equals": {"type": "string", "maxLength": 60, "examples": ["Comedy"]},
        },
        "required": [],
    }
    assert TOOLS["rank_candidates"].spec.parameters == {
        "type": "object",
        "properties": {"method": {"type": "string", "enum": ["listwise", "pointwise", "fusion"], "default": "fusion"}},
        "required": [],
    }
    assert TOOLS["rank_candidates"].expensive and not TOOLS["finish"].expensive
    finish = {s.name: s for s in tool_specs(candidates=["a", "b"])}["finish"].parameters
    assert finish["properties"]["item_ids"] == {"type": "array", "items": {"type": "string", "enum": ["a", "b"]},
                                                "maxItems": 10, "minItems": 1}  # fmt: skip


def test_a_new_tool_is_one_typed_function() -> None:
    def count(ctx: object, *, word: Annotated[str, Field(max_length=5)], times: int = 2) -> str:
        """Say a word a few times.

        (Only the first paragraph is shown to the model.)"""
        return " ".join([word] * times)

    tool = Tool.of(count)
    assert tool.spec.name == "count" and tool.spec.description == "Say a word a few times."
    assert tool.spec.parameters == {
        "type": "object",
        "properties": {"word": {"type": "string", "maxLength": 5}, "times": {"type": "integer", "default": 2}},
        "required": ["word"],
    }
    assert tool.run(None, {"word": "hi"}) == "hi hi"  # type: ignore[arg-type]
    with pytest.raises(ToolInputError, match="'word'"):
        tool.run(None, {"word": "toolong"})  # type: ignore[arg-type]
