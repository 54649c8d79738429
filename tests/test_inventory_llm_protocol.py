"""The planner model's endpoint, without vLLM: which OpenAI request fields become a guided-decoding schema,
which are refused (never unconstrained output that looks constrained), and the response body."""

from __future__ import annotations

import pytest

from models.llm import ChatRequest, chat_completion
from workloads.inventory.plans import plan_json_schema

SCHEMA = plan_json_schema()
MSG = [{"role": "user", "content": "what do I need to restock today?"}]


@pytest.mark.parametrize(
    ("extra", "schema"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}}, SCHEMA),
        ({"structured_outputs": {"json": SCHEMA}}, SCHEMA),
        ({"structured_outputs": {"json": '{"type": "object"}'}}, {"type": "object"}),  # vLLM also takes a string
        ({"response_format": {"type": "json_object"}}, {"type": "object"}),
        ({"response_format": {"type": "text"}}, None),
        ({}, None),
    ],
    ids=["response_format", "structured_outputs", "schema-as-text", "json_object", "text", "none"],
)
def test_request_fields_become_a_schema(extra, schema):
    assert ChatRequest(messages=MSG, **extra).json_schema() == schema


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"guided_json": SCHEMA}, "not supported"),  # vLLM 0.32 would silently ignore it
        ({"structured_outputs": {"regex": "a+"}}, "only {json"),
        ({"response_format": {"type": "grammar"}}, "not supported"),
        ({"structured_outputs": {"json": "[1]"}}, "must be an object"),
    ],
    ids=["guided_json", "regex", "unknown-type", "not-an-object"],
)
def test_unsupported_requests_are_refused(extra, why):
    with pytest.raises(ValueError, match=why):
        ChatRequest(messages=MSG, **extra).json_schema()


def test_response_body_is_an_openai_chat_completion():
    body = chat_completion("SmolLM2-135M-Instruct", '{"plan": "shelf_gaps"}', None, 700, 12)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == '{"plan": "shelf_gaps"}'
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["total_tokens"] == 712
