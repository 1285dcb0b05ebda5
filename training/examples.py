"""Records to token ids, the same way the embedded backend builds its prompts.

Markup is converted as control tokens, message text is tokenized on its own, and only the
assistant's words (and its end-of-turn token) carry a training label.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from serving.templates import ChatTemplate, Segment
from serving.types import Message
from training.formats import ChatRecord

IGNORE = -100  # label value the loss skips


def segment_ids(tokenizer: Any, segment: Segment) -> list[int]:
    if segment.special:
        token_id = tokenizer.convert_tokens_to_ids(segment.text)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(
                f"the tokenizer has no {segment.text!r} token: the base model does not match the "
                f"{segment.text!r}-using chat template; set `template` in the config"
            )
        return [token_id]
    return tokenizer(segment.text, add_special_tokens=False)["input_ids"]


def encode_chat(tokenizer: Any, template: ChatTemplate, messages: Sequence[Message],
                max_length: int) -> dict[str, list[int]] | None:
    """input_ids and labels for one conversation (None when nothing trainable fits)."""
    ids: list[int] = []
    labels: list[int] = []
    for segment in template.render(messages, add_generation_prompt=False):
        piece = segment_ids(tokenizer, segment)
        ids += piece
        labels += piece if segment.role == "assistant" else [IGNORE] * len(piece)
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def chat_messages(record: ChatRecord) -> list[Message]:
    return [Message(role=m.role, content=m.content) for m in record.messages]


def encode_all(tokenizer: Any, template: ChatTemplate, records: Iterable[ChatRecord],
               max_length: int) -> tuple[list[dict[str, list[int]]], int]:
    """Encoded examples and how many records were dropped for not fitting."""
    encoded, dropped = [], 0
    for record in records:
        example = encode_chat(tokenizer, template, chat_messages(record), max_length)
        if example is None:
            dropped += 1
        else:
            encoded.append(example)
    return encoded, dropped
