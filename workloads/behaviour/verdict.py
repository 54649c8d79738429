"""What the vision-language model is asked, and the only shape its answer may take.

The answer is held by guided decoding (vLLM structured outputs) to `answer_regex()`, which is the JSON
object of `answer_schema()` with every part bounded: `status` (suspicious | no_match | no_enough_data),
`confidence` in [0, 1] and a `reason` of at most `reason_max_chars`. So even a model that rambles (or,
in tests, a random-weight one) yields a parseable verdict within `max_answer_tokens`; anything that
still fails to parse becomes `no_enough_data`, never an exception.

Example:
    >>> parse_answer('{"status": "suspicious", "confidence": 0.8, "reason": "item into jacket"}').status
    'suspicious'
    >>> parse_answer('{"status": "suspic').status
    'no_enough_data'
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Status(StrEnum):
    SUSPICIOUS = "suspicious"
    NO_MATCH = "no_match"
    NO_ENOUGH_DATA = "no_enough_data"


class Verdict(BaseModel):
    """One behavioural-analysis answer."""

    model_config = ConfigDict(use_enum_values=True)

    status: Status
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str = ""


DEFAULT_PROMPT = (
    "These are the last {k} frames, oldest first, of one shopper in a high-value area of a retail store "
    "(zone {zone}). Did the shopper conceal merchandise: put an item into a pocket, a bag, under clothing "
    "or behind the waistband, instead of holding it openly or putting it back? A pose check flagged these "
    "movements: {motions}. Answer `suspicious` only if the frames show an item being hidden, `no_match` if "
    "they show normal shopping, `no_enough_data` if the frames do not allow a decision. Give a confidence "
    "between 0 and 1 and a one-sentence reason."
)


def answer_schema(reason_max_chars: int = 160) -> dict[str, Any]:
    """JSON schema of the answer (guided decoding). No free whitespace, bounded strings: it always ends."""
    return {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": [s.value for s in Status]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": reason_max_chars},
        },
        "required": ["status", "confidence", "reason"],
        "additionalProperties": False,
    }


def answer_regex(reason_max_chars: int = 160) -> str:
    """The same answer as a regular expression, for guided decoding: every part bounded (status from the
    enum, confidence with at most two decimals, reason without quotes, backslashes or control
    characters), so the answer always ends within `max_answer_tokens` and is valid JSON of
    `answer_schema`. Why not the JSON schema itself: a schema bounds a number's value, not its digits,
    and a weak model can spend its whole token budget on `0.0000...`."""
    status = "|".join(s.value for s in Status)
    return (rf'\{{"status":"({status})","confidence":(0(\.[0-9]{{1,2}})?|1(\.00?)?),'
            rf'"reason":"[^"\\\x00-\x1f]{{0,{reason_max_chars}}}"\}}')


def max_answer_tokens(reason_max_chars: int) -> int:
    """Tokens the longest answer can take (one token per reason character at worst, plus the frame)."""
    return reason_max_chars + 48


def build_prompt(k: int, zone: str, motions: list[str], template: str | None = None) -> str:
    return (template or DEFAULT_PROMPT).format(k=k, zone=zone, motions=", ".join(motions) or "none")


def chat_messages(k: int, text: str) -> list[dict[str, Any]]:
    """One user turn: K images then the instruction (the model's own chat template renders it)."""
    return [{"role": "user", "content": [*({"type": "image"} for _ in range(k)), {"type": "text", "text": text}]}]


def parse_answer(text: str) -> Verdict:
    """The model's JSON text -> a Verdict; anything unusable is `no_enough_data` with why."""
    try:
        doc = json.loads(text)
        return Verdict.model_validate(doc)
    except (json.JSONDecodeError, ValidationError, TypeError) as e:
        return Verdict(status=Status.NO_ENOUGH_DATA, confidence=0.0,
                       reason=f"unusable model answer ({type(e).__name__})")
