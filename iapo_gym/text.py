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


_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words, numbers and single punctuation marks, in order."""
    return _WORD.findall(str(text).lower())


def token_id(token: str, vocab_size: int) -> int:
    """A stable hashed id in ``[1, vocab_size)`` for a token (0 is padding)."""
    return 1 + zlib.crc32(token.encode("utf-8")) % (vocab_size - 1)


def encode(text: str, length: int, vocab_size: int) -> np.ndarray:
    """Fixed-length int64 token ids of ``text`` (hashed, zero-padded, cut to ``length``)."""
    ids = np.zeros(length, dtype=np.int64)
    toks = tokenize(text)[:length]
    ids[: len(toks)] = [token_id(t, vocab_size) for t in toks]
    return ids
