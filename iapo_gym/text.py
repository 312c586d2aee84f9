"""Text observations: the character set, a Gymnasium ``Text`` space that survives async vectorisation,
and the word tokenizer that array-based agents use.

Gymnasium's ``AsyncVectorEnv`` (shared memory, the default of ``make_vec(..., "async")``) reads each
observation key from shared memory once, at construction, and returns that object on every step. For a
``Box`` the object is a view, so it stays current; for a ``Text`` it is a tuple of strings, a snapshot,
so every later step returns the first strings again (Gymnasium issue #1164). :class:`TextSpace` is a plain
``Text`` whose shared-memory reader returns a live view instead; deep-copying the view (as
``AsyncVectorEnv`` does before returning) yields a tuple of the current strings.
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils import read_from_shared_memory

CHARSET = "".join(c for c in string.printable if c not in "\x0b\x0c\r\t")
"""Characters allowed in ``question`` and ``tool_output`` (printable ASCII, space and newline)."""

QUERY_LENGTH = 32
"""Question token slots (the default of every token-id view: the compact policy, the token wrapper, the
attribution layout the teacher and student are compared in)."""
OUTPUT_LENGTH = 48
"""Tool-output token slots (the same consumers as :data:`QUERY_LENGTH`)."""
VOCAB_SIZE = 4096
"""Token ids of :func:`encode` by default: ``[1, VOCAB_SIZE)``, 0 for padding."""

_OUTSIDE_CHARSET = re.compile(f"[^{re.escape(CHARSET)}]")


def clean_text(text: str, max_length: int) -> str:
    """Map ``text`` into :data:`CHARSET` (others become ``?``) and cut it to ``max_length`` characters."""
    out = _OUTSIDE_CHARSET.sub("?", str(text))
    if len(out) > max_length:
        out = out[: max_length - 3] + "..."
    return out


class TextSpace(Text):
    """``gymnasium.spaces.Text`` over :data:`CHARSET` whose async shared-memory reads stay current."""

    def __init__(self, max_length: int, *, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(max_length=max_length, min_length=0, charset=CHARSET, seed=seed)


class _LiveTexts(Sequence[str]):
    """The strings in a shared-memory ``Text`` buffer, decoded at each access rather than once."""

    def __init__(self, space: Text, buffer: Any, n: int) -> None:
        self._space, self._buffer, self._n = space, buffer, n

    def _decode(self) -> tuple[str, ...]:
        data = np.frombuffer(self._buffer.get_obj(), dtype=np.int32).reshape(self._n, self._space.max_length)
        chars, size = self._space.character_list, len(self._space.character_set)
        return tuple("".join(chars[v] for v in row if v < size) for row in data)

    def __getitem__(self, index: Any) -> Any:
        return self._decode()[index]

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        return iter(self._decode())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __repr__(self) -> str:
        return repr(self._decode())

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return self._decode()


@read_from_shared_memory.register(TextSpace)
def _read_live_text(space: TextSpace, shared_memory: Any, n: int = 1) -> _LiveTexts:
    return _LiveTexts(space, shared_memory, n)


WORD_PATTERN = re.compile(r"(?<![a-z0-9.])-[0-9]+(?:\.[0-9]+)?|[a-z0-9]+(?:\.[0-9]+)?|[^\sa-z0-9]")
"""A token: a number (a leading minus sign kept when it follows no word or digit, so ``-5`` is one token), a
lower-case word, or one punctuation mark."""


def tokenize(text: str) -> list[str]:
    """Lower-cased words, numbers (``-5`` one token) and single punctuation marks, in order."""
    return WORD_PATTERN.findall(str(text).lower())


def _known_tokens() -> tuple[str, ...]:
    """Every token of every answer and label the families can produce, in a fixed order (exact ids)."""
    from .vocab import ANSWER_VOCAB, CATEGORY_LABELS, COLUMN_LABELS, ROW_LABELS, SERIES_LABELS, TAGS, WORDS

    words = [*ANSWER_VOCAB, *CATEGORY_LABELS, *ROW_LABELS, *COLUMN_LABELS, *SERIES_LABELS, *WORDS, *TAGS]
    return tuple(dict.fromkeys(t for w in words for t in tokenize(w)))


KNOWN_TOKENS: tuple[str, ...] = _known_tokens()
"""Tokens with an exact id of their own: ids ``1 .. len(KNOWN_TOKENS)``, in this order. Every other token is
hashed into the ids above them, so an answer or a label never shares an id with another one."""

_KNOWN_IDS = {t: i + 1 for i, t in enumerate(KNOWN_TOKENS)}


def token_id(token: str, vocab_size: int) -> int:
    """The id of ``token`` in ``[1, vocab_size)`` (0 is padding).

    Tokens in :data:`KNOWN_TOKENS` (every answer and label of the procedural families) get their own exact
    id; any other token a stable crc32 hash into the ids above them. ``vocab_size`` must leave room for the
    known tokens and at least one hashed id.
    """
    n = len(KNOWN_TOKENS)
    if vocab_size < n + 2:
        raise ValueError(
            f"vocab_size must be at least {n + 2} (the {n} exact answer/label tokens, padding and "
            f"one hashed id); got {vocab_size}"
        )
    known = _KNOWN_IDS.get(token)
    if known is not None:
        return known
    return n + 1 + zlib.crc32(token.encode("utf-8")) % (vocab_size - n - 1)


def encode(text: str, length: int, vocab_size: int) -> np.ndarray:
    """Fixed-length int64 token ids of ``text`` (see :func:`token_id`; zero-padded, cut to ``length``)."""
    ids = np.zeros(length, dtype=np.int64)
    toks = tokenize(text)[:length]
    ids[: len(toks)] = [token_id(t, vocab_size) for t in toks]
    return ids
