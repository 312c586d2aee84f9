"""An LLM judge for benchmark answers, as the published pipelines grade them (``openai:MODEL@URL``).

ReFocus grades with GPT-4o, VTool-R1 with a served Qwen2.5-7B, CharXiv with GPT-4o per answer category. Each
rule set has a prompt here, in our own words, stating the same rules and the same few-shot examples:
``refocus-chart``, ``refocus-table`` (also VWTQ and VWTQ_syn), ``vtabfact`` (the table judge, for true/false
statements), ``vtool-r1``, ``charxiv`` (by ``context["inst_category"]`` 1-4), and a generic one for ``exact``,
``relaxed`` and any other registered scorer. Every prompt asks for one reply form, a JSON object
``{"extracted_answer": "...", "correct": 0|1}``; :func:`parse_verdict` also reads it inside code fences or text,
CharXiv's ``"score"`` key, a bare ``1``/``0``/``yes``/``no``/``true``/``false``, and VTool-R1's ``<|YES|>``/``<|NO|>``.

A verdict that could not be had (the request failed after retries, or the reply is unreadable) is
``correct=None``: unjudged, never wrong. The API key stays in the client: it is not in a verdict, a config or an
error (a server echoing it is redacted). Verdicts go through the client's response cache, so a rerun asks
nothing twice; :data:`PROMPT_VERSION` names the prompts that judged.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iapo_gym.agents.served.agent import parse_spec
from iapo_gym.agents.served.client import ChatClient, ResponseCache, ServedError
from iapo_gym.scoring import SCORERS

from .store import Judgement, RequestCache, ResultsStore

__all__ = ["PROMPT_VERSION", "RULES", "Judge", "Verdict", "judge_rules", "parse_verdict"]

PROMPT_VERSION = 1
"""Bumped whenever a judge prompt's text changes (stored with results; old cache entries then miss)."""

NO_ANSWER = "no published answer"

_FORM = (
    'Reply with one JSON object and nothing else: {"extracted_answer": "<the final answer the response '
    'gives, or an empty string if it gives none>", "correct": 1 or 0}. Do not explain. If the response is '
    'empty or gives no final answer, "correct" is 0.'
)
_LEAD = (
    "You grade a model's response to a question about {what} against the ground truth. Take the final "
    "answer out of the response (it may reason first, or write 'ANSWER:', 'FINAL ANSWER:' or 'TERMINATE'; "
    "those markers are not part of the answer), then decide whether it is correct."
)


def _ex(question: str, response: str, truth: str, extracted: str, correct: int) -> str:
    reply = json.dumps({"extracted_answer": extracted, "correct": correct}, ensure_ascii=False)
    return f"Example\nQuestion: {question}\nResponse: {response}\nGround truth: {truth}\nVerdict: {reply}"


_CHART = "\n".join(
    [
        _LEAD.format(what="a chart"),
        "Rules (from ReFocus's chart judge):",
        "- Judge the content only, never the format: correct means it says the same as the ground truth.",
        "- A percent sign on one side only does not matter: 69% matches 69.",
        "- A percentage matches the same value written as a fraction: 3% matches 0.03.",
        "- A number matches when rounding it to the ground truth's precision gives the ground truth: 1.541 matches 1.54.",
        _ex(
            "What is the height of the tower?",
            "ANSWER: The tower is built in China from 200 years ago. The total height of the tower is 180 Meters. TERMINATE",
            "80 Meters",
            "180 Meters",
            0,
        ),
        _ex("What is the difference?", "ANSWER: 69%. TERMINATE", "69", "69%", 1),
        _ex("What is the increase?", "ANSWER: 3%. TERMINATE", "0.03", "3%", 1),
        _ex("What is the ratio?", "ANSWER: 1.541. TERMINATE", "1.54", "1.541", 1),
    ]
)
_TABLE_RULES = [
    "Rules (from ReFocus's table judge):",
    "- Correct means the prediction gives the same answer as the ground truth, whatever its format.",
    "- Several answers are written separated by || (or |||, or as a list): the prediction must give the same items.",
]
_TABLE = "\n".join([_LEAD.format(what="a table"), *_TABLE_RULES])
_TABFACT = "\n".join(
    [
        _LEAD.format(what="a table"),
        *_TABLE_RULES,
        "- The question is a statement about the table; the ground truth says whether it is true or false. The "
        "prediction is correct when it gives the same truth value (yes/true/entailed/1, no/false/refuted/0).",
    ]
)
_VTOOL = "\n".join(
    [
        _LEAD.format(what="a chart or a table"),
        "Rules (from VTool-R1's judge):",
        "- The ground truth may be a list with items separated by |||; the response should then give the same "
        "list with items separated by ||. The order of the items does not matter.",
        "- For example the answer cherry||Pears||Apples matches the ground truth apple|||pear|||cherry.",
    ]
)
_CHARXIV_LEAD = "\n".join(
    [
        _LEAD.format(what="a chart from a scientific paper"),
        "Give a binary verdict; if there is no response, leave the extracted answer empty and give 0.",
        "Rules (from CharXiv's grading instructions for this kind of answer):",
    ]
)
_CHARXIV = {
    1: "\n".join(
        [
            "- 1 only when the final answer and the ground truth name the same term(s). Another grammar or way of "
            "writing the same term is fine (α and alpha; $R^2_{t,h,v,m}$ and R^2_t,h,v,m), and so is another order "
            "when the question asks for several terms.",
            "- 0 when any term differs between them (e.g. ACC+ and ACC; P-101 and P=101).",
            _ex("Which protein is shown?", "The protein shown is P55762.", "P56962", "P55762", 0),
            _ex("Which subplot shows the largest gap?", "The largest gap is in subplot b.", "(b)", "b", 1),
        ]
    ),
    2: "\n".join(
        [
            "- When the question lists options: 1 only when the final answer matches the ground truth exactly, else 0.",
            '- When it lists none: 1 when the final answer means the same as the ground truth ("increasing then '
            'decreasing" and "moving up then down"; "converge" and "move closer together"); 0 when the '
            'meaning differs ("increasing then decreasing" and "remain constant"; "converge" and "diverge").',
            _ex("How does the curve change?", "The curve is increasing.", "increasing then decreasing", "increasing", 0),
            _ex("What range does the x-axis cover?", "The x-axis covers [50, 100].", "[50, 100]", "[50, 100]", 1),
        ]
    ),
    3: "\n".join(
        [
            "- 1 only when the two numbers have exactly the same value; any notation is fine (0.01 and 10^-2; 1500 and 1.5e3).",
            "- 0 when the values differ.",
            _ex("What is the learning rate?", "The learning rate is 0.012.", "0.01", "0.012", 0),
            _ex("How many samples are used?", "It uses 1.5e3 samples.", "1500", "1.5e3", 1),
        ]
    ),
}
_CHARXIV[4] = _CHARXIV[3]
_GENERIC = "\n".join(
    [
        _LEAD.format(what="an image"),
        "Rules:",
        "- Correct means it says the same as the ground truth; case, articles, punctuation, thousands separators "
        "and units written or left out do not matter.",
        "- Numbers must have the same value, in any notation.",
    ]
)
_RELAXED = "- A number within 5% (relative) of the ground truth's value counts as correct (ChartQA's relaxed accuracy)."

RULES: dict[str, str] = {
    "refocus-chart": _CHART,
    "refocus-table": _TABLE,
    "vtabfact": _TABFACT,
    "vtool-r1": _VTOOL,
    "exact": _GENERIC,
    "relaxed": _GENERIC + "\n" + _RELAXED,
}
"""The judging rules by scorer name (``charxiv`` is by category: :func:`judge_rules`)."""


def judge_rules(scorer: str, context: Mapping[str, Any] | None = None) -> str:
    """The rules part of the judge prompt for ``scorer`` (a registered scorer without rules of its own gets
    the generic ones).

    Raises:
        ValueError: an unknown scorer, or ``charxiv`` without ``context["inst_category"]`` in 1-4.
    """
    if scorer == "charxiv":
        category: Any = (context or {}).get("inst_category")  # any JSON value: int() decides
        try:
            category = int(category) if not isinstance(category, bool) else None
        except (TypeError, ValueError):
            category = None
        if category not in _CHARXIV:
            raise ValueError(
                f"charxiv judging needs context['inst_category'] in 1-4 (CharXiv's answer type); got "
                f"{(context or {}).get('inst_category')!r}"
            )
        return _CHARXIV_LEAD + "\n" + _CHARXIV[category]
    if scorer in RULES:
        return RULES[scorer]
    if scorer in SCORERS:
        return _GENERIC
    raise ValueError(f"unknown scorer {scorer!r} to judge for; known: {', '.join(sorted({*RULES, *SCORERS}))}")


_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_TOKEN = re.compile(r"<\|\s*(YES|NO)\s*\|>", re.I)
_WORDS = {
    "1": True,
    "yes": True,
    "true": True,
    "correct": True,
    "0": False,
    "no": False,
    "false": False,
    "incorrect": False,
    "wrong": False,
}


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return _WORDS.get(value.strip().lower()) if isinstance(value, str) else None


def parse_verdict(text: str) -> tuple[bool | None, str]:
    """``(correct, extracted_answer)`` from a judge's reply; ``(None, "")`` when it cannot be read.

    Read, in order: the last JSON object with a ``correct`` (or CharXiv's ``score``) of 0/1/true/false/"yes"/
    "no" (in code fences or among text; ``extracted_answer`` or ``extract_answer`` gives the answer); else the
    last ``<|YES|>``/``<|NO|>``; else a reply that is just ``1``, ``0``, ``yes``, ``no``, ``true``, ``false``,
    ``correct``, ``incorrect`` or ``wrong`` (quotes, asterisks, backticks and a final period allowed).
    A ``<think>`` block is skipped.
    """
    s = _THINK.sub("", text if isinstance(text, str) else "")
    decoder, found = json.JSONDecoder(), None
    for i in [m.start() for m in re.finditer(r"\{", s)]:
        try:
            obj, _ = decoder.raw_decode(s, i)
        except ValueError:
            continue
        if isinstance(obj, dict):
            flag = _flag(obj["correct"] if "correct" in obj else obj.get("score"))
            if flag is not None:
                answer = obj.get("extracted_answer", obj.get("extract_answer", ""))
                found = (flag, "" if answer is None else str(answer))
    if found is not None:
        return found
    tokens = _TOKEN.findall(s)
    if tokens:
        return tokens[-1].upper() == "YES", ""
    word = s.strip().strip("`*\"' \n").rstrip(".!").strip("`*\"' ").lower()
    flag = _WORDS.get(word)
    return (flag, "") if flag is not None else (None, "")


@dataclass(frozen=True)
class Verdict:
    """A judge's verdict on one response.

    Attributes:
        correct: True/False; ``None`` when unjudged (no published answer, the request failed after retries,
            or the reply could not be read): never count it as wrong.
        extracted: the final answer the judge took from the response ("" when it gave none).
        raw: the judge's reply text ("" when there was none).
        error: why it is unjudged (``None`` when judged).
        prompt_tokens, completion_tokens: what the server counted (cached replies included).
        cached: the reply came from the cache, without a request.
    """

    correct: bool | None
    extracted: str = ""
    raw: str = ""
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False

    @property
    def judged(self) -> bool:
        """Whether there is a verdict (``correct`` is not None)."""
        return self.correct is not None

    def to_json(self) -> dict[str, Any]:
        """The verdict as a JSON-safe dict."""
        return asdict(self)


def _text(content: Any) -> str:
    """A message's text (a string, or the text parts of a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class Judge:
    """An LLM judge served behind an OpenAI-compatible API.

    Args:
        spec: ``"openai:MODEL@URL"``, e.g. ``"openai:gpt-4o@https://api.openai.com/v1"``.
        api_key_env: the environment variable holding the API key (read once, by the client).
        temperature, max_tokens, seed: sampling settings (greedy, short replies and a fixed seed by default).
        timeout: seconds per request; retries: retries after the first attempt; backoff, max_backoff: the base
            and the cap of the waits between attempts, in seconds.
        max_in_flight: at most this many judge requests at once.
        cache: where replies are kept (e.g. the results store): the same prompt is never asked twice.
    """

    def __init__(
        self,
        spec: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 128,
        seed: int | None = 0,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_in_flight: int = 8,
        cache: ResponseCache | None = None,
    ) -> None:
        model, url = parse_spec(spec)
        self.client = ChatClient.for_model(
            url,
            model,
            api_key_env=api_key_env,
            max_in_flight=max_in_flight,
            cache=cache,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
        )
        self.settings = self.client.settings

    def __repr__(self) -> str:
        return f"Judge(model={self.settings.model!r}, url={self.client.url!r}, prompt_version={PROMPT_VERSION})"

    def config(self) -> dict[str, Any]:
        """The judge's settings, JSON-safe, to store with results (the URL without credentials; no key)."""
        return {
            "model": self.settings.model,
            "url": self.client.url,
            "api_key_env": self.client.api_key_env,
            **{k: v for k, v in self.settings.to_json().items() if k != "model"},
            "max_in_flight": self.client.max_in_flight,
            "prompt_version": PROMPT_VERSION,
        }

    @staticmethod
    def prompt(
        question: str,
        answers: Sequence[str] | str | None,
        response: str | None,
        scorer: str,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, str]]:
        """The chat that asks for a verdict: a system message with the rules of ``scorer`` and the reply form,
        and a user message with the question, the ground truth(s) and the response.

        Raises:
            ValueError: an unknown scorer, a charxiv item without its category, or inputs of the wrong type.
        """
        if not isinstance(question, str):
            raise ValueError(f"question must be a string; got {type(question).__name__}")
        if response is not None and not isinstance(response, str):
            raise ValueError(f"response must be the model's output text; got {type(response).__name__}")
        if context is not None and not isinstance(context, Mapping):
            raise ValueError(f"context must be a mapping or None; got {type(context).__name__}")
        truths = _accepted(answers)
        truth = truths[0] if len(truths) == 1 else "\n".join(["(any one of these is accepted)", *(f"- {a}" for a in truths)])
        user = f"Question: {question}\nGround truth: {truth}\nResponse: {response or ''}"
        return [{"role": "system", "content": judge_rules(scorer, context) + "\n\n" + _FORM}, {"role": "user", "content": user}]

    async def verdict(
        self,
        question: str,
        answers: Sequence[str] | str | None,
        response: str | None,
        scorer: str,
        context: Mapping[str, Any] | None = None,
    ) -> Verdict:
        """The judge's verdict on ``response`` (unjudged, ``correct=None``, when no answer was published, the
        request failed after retries, or the reply cannot be read; bad inputs raise ValueError)."""
        messages = self.prompt(question, answers, response, scorer, context)
        if not _accepted(answers):
            return Verdict(None, error=NO_ANSWER)
        try:
            result = await self.client.complete(messages)
        except ServedError as exc:
            return Verdict(None, error=f"judge request failed: {self.client._redact(str(exc))}")
        raw = self.client._redact(_text(result.message.get("content")))  # a server may echo the key
        correct, extracted = parse_verdict(raw)
        error = None
        if correct is None:
            cut = " (cut at max_tokens; raise it)" if result.finish_reason == "length" else ""
            error = (
                f'unreadable judge reply{cut}: expected {{"extracted_answer": ..., "correct": 0|1}}; '
                f"got {' '.join(raw.split())[:200]!r}"
            )
        return Verdict(correct, extracted, raw, error, result.prompt_tokens, result.completion_tokens, result.cached)

    async def aclose(self) -> None:
        """Close the current event loop's connections."""
        await self.client.aclose()

    async def __aenter__(self) -> Judge:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


def judge_suite(store_path: str | Path, suite: str, spec: str, *, progress: bool = True, **options: Any) -> int:
    """Judge every scored episode of ``suite`` in the results store that ``spec`` has not judged yet, or left
    unjudged (so a rerun resumes, and asks again where a request failed), with each set's published rules;
    returns how many verdicts were stored. ``options`` go to
    :class:`Judge` (``api_key_env``, ``timeout``, ``retries``, ``max_in_flight``...). Requests go through the
    store's request cache; verdicts are stored in one transaction at the end, and a verdict that could not be
    had is stored as unjudged."""
    with ResultsStore(store_path) as store:
        judged = store.judgements(suite)
        data = store.task_data(suite)
        name = spec_name(spec)
        # not judged yet, or unjudged (a failed request is asked again; an unreadable reply comes from the cache)
        todo = [
            e
            for e in store.episodes(suite)
            if e.scored
            and getattr(judged.get((e.agent, e.suite, e.family, e.seed, e.episode), {}).get(name), "verdict", None) is None
        ]
        work = [(e, store.trajectory(e), data.get(e.family, {}).get("scorer", "exact"), _context(store, e)) for e in todo]
    if not work:
        return 0
    cache = RequestCache(store_path)
    judge = Judge(spec, cache=cache, **options)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(work), unit="verdict", desc=f"judge {spec_name(spec)}", file=sys.stderr, dynamic_ncols=True)

    async def one(e: Any, traj: Any, scorer: str, context: Any) -> tuple[Any, Any]:
        final = traj.steps[-1].action if traj is not None and traj.steps else ""
        question = traj.question if traj is not None else ""
        v = await judge.verdict(question, list(traj.answers) if traj is not None else [], final, scorer, context)
        if bar is not None:
            bar.update(1)
        return e, Judgement(
            v.correct,
            v.extracted,
            v.error,
            {"prompt_tokens": v.prompt_tokens, "completion_tokens": v.completion_tokens, "cached": v.cached},
        )

    async def run() -> list[tuple[Any, Any]]:
        try:
            return list(await asyncio.gather(*(one(*w) for w in work)))
        finally:
            await judge.aclose()

    try:
        verdicts = asyncio.run(run())
    finally:
        cache.close()
        if bar is not None:
            bar.close()
    with ResultsStore(store_path) as store:
        store.insert_judgements(spec_name(spec), verdicts)
    return len(verdicts)


def spec_name(spec: str) -> str:
    """A judge's name on the leaderboard: ``openai:MODEL`` (the URL is the machine's, not the judge's)."""
    model, _ = parse_spec(spec)
    return f"openai:{model}"


def _context(store: Any, episode: Any) -> dict[str, Any] | None:
    """The scoring context of a stored episode's item (CharXiv's ``inst_category``), from its env."""
    task = store.task(episode.suite, episode.family)
    if task is None or task[0] != "RealVQA-v0":
        return None
    env = _real_env(task[0], json.dumps(task[1], sort_keys=True))
    items = env.unwrapped.items
    return dict(items[episode.item].context) if 0 <= episode.item < len(items) else None


@functools.lru_cache(maxsize=16)
def _real_env(env_id: str, kwargs: str) -> Any:
    import gymnasium as gym

    return gym.make(env_id, **json.loads(kwargs))


def _accepted(answers: Sequence[str] | str | None) -> list[str]:
    """The accepted answers as strings (a bare string is one; ``None`` and blank entries dropped)."""
    if isinstance(answers, str):
        answers = [answers]
    return [str(a) for a in answers or () if a is not None and str(a).strip()]
