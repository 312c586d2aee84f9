"""``iapo-bench``: run agents × a suite × seeds into a results folder, and render its leaderboard."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .errors import BenchmarkError
from .leaderboard import PICTURES_PER_FAMILY
from .runner import BACKENDS, run_benchmark
from .store import DB_NAME, StoreError
from .suites import SuiteError, builtin_suites, load_suite

_EPILOG_MAIN = """\
examples:
  iapo-bench run --agents random no-tool oracle --suite six --out results/six
  iapo-bench report results/six                      # re-render the leaderboard from results/six/results.sqlite
  iapo-bench show results/six --agent oracle --family HBar --episode 0 --out ep.png   # draw one stored episode
  iapo-bench suites                                  # list the built-in suites and their seeds
  iapo-bench fixtures --out data/fixtures            # small copies of the public test sets, published formats

An agent is a built-in name (random, no-tool, oracle, ...), a checkpoint folder (config.json +
model.safetensors, loaded with iapo_gym.agents.checkpoint.load_agent; its hash is recorded), a
'package.module:Class' or 'path/to/file.py:Class' spec; prefix NAME= to choose its leaderboard name.
A class named inside a file (a checkpoint's agent_class, a suite's teacher) is imported only when it is
part of iapo_gym or registered, unless you pass --trust-remote-code: loading a checkpoint runs no code.
"""

_EPILOG_RUN = f"""\
examples:
  # the three built-in agents on the six headline families, the suite's published seeds (0 1 2)
  iapo-bench run --agents random no-tool oracle --suite six --out results/six

  # a trained checkpoint and your own agent class, 2 worker processes, 5 episodes per seed per family
  iapo-bench run --agents runs/iapo/ckpt my_pkg.agents:MyAgent mine=agents/my_agent.py:MyAgent \\
      --suite six --seeds 0 1 2 --episodes 5 --workers 2 --out results/mine

  # the same cells as Ray tasks (pip install 'iapo-gym[ray]'; RAY_ADDRESS joins a cluster)
  iapo-bench run --agents oracle --suite zoom --backend ray --workers 2 --out results/zoom

  # the IAPO paper's six public test sets, from local copies in their published layout
  iapo-bench run --agents oracle no-tool --suite paper-six --data-dir ~/data/iapo --out results/paper-six

  # a suite of your own: a YAML file (see iapo-bench suites, and benchmarks/suites/*.yaml)
  iapo-bench run --agents oracle --suite my_suite.yaml --out results/mine

Results go to OUT/{DB_NAME} (one row per episode; each finished cell committed at once) and the
leaderboard to OUT/leaderboard.{{md,csv,json,png}} with OUT/submissions/<agent>/{{summary.json,metadata.yaml}}.
Rerunning a command resumes it: finished cells are skipped, never duplicated. A folder keeps one setting
per suite (episodes, difficulty, OCR...): other settings need another --out.
"""

_EPILOG_REPORT = """\
examples:
  iapo-bench report results/six
  iapo-bench report results/six --to docs/leaderboard     # write the leaderboard files elsewhere
  iapo-bench report results/six --pictures 0              # no episode pictures on the page (faster)

Besides leaderboard.{md,csv,json,png}: leaderboard.html, one self-contained page (open it in a browser, no
network needed) with the sortable tables and, per agent, episode pictures in episodes/.
"""

_EPILOG_SHOW = """\
examples:
  iapo-bench show results/six --agent oracle --family HBar --episode 0 --out ep.png
  iapo-bench show results/six --agent iapo --family TableQA --seed 1 --episode 3 --out ep.png

Draws the stored episode from the results store alone (the agent is not run): the full image with each
tool call's box numbered by step, each crop, each tool's text, the answer against the accepted answers, and
for agents that attribute their decisions (on suites with a teacher) their attribution maps beside the
teacher's. --episode is the index within the cell (agent, family, seed); --seed defaults to the smallest.
"""


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="iapo-bench",
        formatter_class=fmt,
        epilog=_EPILOG_MAIN,
        description="Benchmark tool-using VQA agents on iapo-gym suites: agents x suite x seeds -> a SQLite "
        "results store -> a leaderboard (Markdown, CSV, JSON, PNG) with 95% bootstrap CIs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{run,report,show,suites,fixtures}")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="run agents on a suite (resumes an interrupted run)",
        formatter_class=fmt,
        epilog=_EPILOG_RUN,
        description="Run every (agent, family, seed) cell of a suite that OUT does not hold yet, then render the leaderboard.",
    )
    run.add_argument(
        "--agents",
        nargs="+",
        required=True,
        metavar="AGENT",
        help="built-in name, checkpoint folder, 'module:Class' or 'file.py:Class'; NAME=AGENT sets the leaderboard name",
    )
    run.add_argument(
        "--suite", required=True, metavar="SUITE", help=f"built-in suite ({', '.join(builtin_suites())}) or a suite .yaml file"
    )
    run.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds to run (default: the suite's published seeds)")
    run.add_argument("--out", required=True, metavar="DIR", help=f"results folder (holds {DB_NAME} and the leaderboard)")
    run.add_argument("--backend", choices=BACKENDS, default="local", help="local worker processes (default) or Ray tasks")
    run.add_argument("--workers", type=int, default=1, metavar="N", help="parallel cells (processes, or Ray CPUs); default 1")
    run.add_argument("--episodes", type=int, metavar="K", help="episodes per seed per family (default: the suite's)")
    run.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding local copies of the public test sets a suite reads (paper-six, refocus-hbar, "
        "charxiv...), in their published layout",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    served = run.add_argument_group("served models (agents given as openai:MODEL@URL, and --judge)")
    served.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY; the key is never written anywhere)",
    )
    served.add_argument("--temperature", type=float, help="sampling temperature (default 0)")
    served.add_argument("--max-tokens", type=int, metavar="N", help="completion tokens per request (default 512)")
    served.add_argument("--gen-seed", type=int, metavar="S", help="the seed sent to servers that take one")
    served.add_argument("--max-in-flight", type=int, metavar="N", help="requests in flight at once (default 8)")
    served.add_argument("--request-timeout", type=float, metavar="SEC", help="seconds per request before a retry (default 60)")
    served.add_argument("--retries", type=int, metavar="N", help="retries of a failed request (default 4)")
    served.add_argument(
        "--backoff",
        type=float,
        metavar="SEC",
        help="base of the exponential backoff between retries, in seconds (default 0.5; a server's Retry-After wins)",
    )
    served.add_argument(
        "--prices", type=float, nargs=2, metavar=("IN", "OUT"), help="USD per 1M input and output tokens (shows a cost)"
    )
    served.add_argument(
        "--no-function-calling",
        action="store_true",
        help="for servers without tool calling: the tools go in the system prompt and the reply text is the action",
    )
    served.add_argument(
        "--judge",
        metavar="openai:MODEL@URL",
        help="score every answer of the suite with an LLM judge and the set's published judging rules",
    )
    run.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a checkpoint's config or the suite file to name a class outside iapo_gym (its code "
        "runs); classes you name in --agents are always allowed",
    )

    report = sub.add_parser(
        "report",
        help="re-render the leaderboard from a results folder",
        formatter_class=fmt,
        epilog=_EPILOG_REPORT,
        description="Render the leaderboard files from DIR/results.sqlite (read-only).",
    )
    report.add_argument("dir", metavar="DIR", help="a results folder written by `iapo-bench run`")
    report.add_argument("--to", metavar="FOLDER", help="write the leaderboard files here instead of DIR")
    report.add_argument(
        "--pictures",
        type=int,
        default=PICTURES_PER_FAMILY,
        metavar="N",
        help=f"episode pictures per agent per family on the page (default {PICTURES_PER_FAMILY}; 0: none)",
    )

    show = sub.add_parser(
        "show",
        help="draw one stored episode as a PNG",
        formatter_class=fmt,
        epilog=_EPILOG_SHOW,
        description="Draw one episode of DIR/results.sqlite as a picture, without running the agent.",
    )
    show.add_argument("dir", metavar="DIR", help="a results folder written by `iapo-bench run`")
    show.add_argument("--agent", required=True, help="the agent's leaderboard name")
    show.add_argument("--family", required=True, help="the task family (a column of the leaderboard)")
    show.add_argument("--episode", type=int, default=0, metavar="K", help="episode index within the cell (default 0)")
    show.add_argument("--seed", type=int, help="the cell's seed (default: the smallest)")
    show.add_argument("--suite", help="the suite (needed only when DIR holds several with this agent and family)")
    show.add_argument("--out", required=True, metavar="PNG", help="where to write the picture")

    sub.add_parser(
        "suites", help="list the built-in suites", description="List the built-in suites with their seeds and settings."
    )

    fx = sub.add_parser(
        "fixtures",
        help="build small local copies of the public test sets, in their published formats",
        description="Build small sets in the published formats of ReFocus, VTool-R1 and CharXiv from real data "
        "shipped in vega_datasets, drawn with matplotlib (pip install 'iapo-gym[fixtures]'), for "
        "--data-dir: iapo-bench run --suite paper-six --data-dir OUT.",
    )
    fx.add_argument("--out", required=True, metavar="DIR", help="folder to create (or an earlier fixtures build to replace)")
    fx.add_argument("--items", type=int, default=12, metavar="N", help="items per set (default 12)")
    fx.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fx.add_argument("--sets", metavar="A,B", help="comma-separated subset of the sets (default: all)")
    return parser


_SERVED_FLAGS = {
    "api_key_env": "api_key_env",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "gen_seed": "seed",
    "max_in_flight": "max_in_flight",
    "request_timeout": "timeout",
    "retries": "retries",
    "backoff": "backoff",
    "prices": "prices",
}


def served_options(args: argparse.Namespace) -> dict[str, Any]:
    """The served-model flags given on the command line, as ``OpenAIAgent`` keyword arguments."""
    options = {key: getattr(args, flag) for flag, key in _SERVED_FLAGS.items() if getattr(args, flag) is not None}
    if args.no_function_calling:
        options["function_calling"] = False
    if "prices" in options:
        options["prices"] = tuple(options["prices"])
    return options


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            out = run_benchmark(
                args.agents,
                args.suite,
                args.seeds,
                args.out,
                backend=args.backend,
                workers=args.workers,
                episodes=args.episodes,
                data_dir=args.data_dir,
                served=served_options(args),
                judge=args.judge,
                progress=not args.quiet,
                trust_remote_code=args.trust_remote_code,
            )
            if not args.quiet:
                print(f"leaderboard: {out / 'leaderboard.md'}")
        elif args.command == "report":
            from .leaderboard import render_leaderboard

            if args.pictures < 0:
                raise BenchmarkError(f"--pictures must be 0 or more; got {args.pictures}")
            target = render_leaderboard(args.dir, args.to, pictures=args.pictures)
            print((target / "leaderboard.md").read_text(encoding="utf-8"), end="")
            print(f"web page: {target / 'leaderboard.html'}", file=sys.stderr)
        elif args.command == "show":
            from .episodes import draw_stored_episode

            if not args.out.lower().endswith(".png"):
                raise BenchmarkError(f"--out {args.out!r}: episode pictures are PNG files; give a path ending in .png")
            draw_stored_episode(args.dir, args.agent, args.family, args.episode, suite=args.suite, seed=args.seed, out=args.out)
            print(f"episode picture: {args.out}")
        elif args.command == "fixtures":
            from . import fixtures

            return fixtures.main(
                [
                    "--out",
                    args.out,
                    "--items",
                    str(args.items),
                    "--seed",
                    str(args.seed),
                    *(["--sets", args.sets] if args.sets else []),
                ]
            )
        else:
            for name in builtin_suites():
                s = load_suite(name)
                episodes = "all items" if s.episodes is None else f"{s.episodes} episodes"
                print(
                    f"{name:10s} seeds {list(s.seeds)}, {episodes}/seed/family, "
                    + ("" if s.datasets else f"difficulty {s.difficulty}, ")
                    + f"OCR {s.ocr}, view {s.view_size}: {', '.join(s.families)}"
                    + (" (needs --data-dir)" if s.datasets else "")
                    + f"\n{'':10s} {s.description}"
                )
    except (BenchmarkError, SuiteError, StoreError) as exc:
        print(f"iapo-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iapo-bench: interrupted; finished cells are saved, rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
