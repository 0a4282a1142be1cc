"""Load on the chat demo: N concurrent gradio_client sessions for D seconds, beside one session alone.

Each session sends chat messages (English and Chinese, alternating, a fresh conversation each) in a
loop through the Gradio API (or `--via api`: the OpenAI-compatible /v1 API) and reads the streamed
reply: errors, time to first token (the first non-empty piece, looked for every 5 ms; the full text
is the job's result), reply time. Tokens come from the demo's own counter (GET /dsllm/version, exact
in total); a session's tokens/s is its characters/s times the run's tokens per character.
The baseline is one session alone for the same model and settings, in the same process, in rounds
(one alone, then N, `--repeats` times: this machine's speed drifts by 10-30% within minutes, so a
single baseline measured once could be caught in a slow or a fast spell); the headline is the median over
the rounds of the ratio of total tokens/s (N sessions / one), the worst round's p95 time to first token and
the errors, printed against issue 15's targets (0 errors, TTFT p95 <= 1 s, >= 8x one session).
The demo decodes concurrent replies together (continuous batching), which is where the ratio comes from.

Against a running demo: `--url http://127.0.0.1:7860`. Without --url it starts one (a background
process, `python -m ui.app`) in a temporary home on a random model of the `small` preset's shape
(`--shape small`, its vocabulary filled with word tokens so every id decodes) or a tiny one
(`--shape tiny`: 2 layers, d 64), and stops it afterwards. The load generator runs on the same
machine: its sessions stand in for users on their own machines, so with the demo's engine on cores of its
own (`--pin`, the demo's default) they run on the web server's cores (`--clients-on any`: on any core).
`--quick`: one round, 4 sessions for 10 s (one alone for 5 s), 32 new tokens.
`--stream-interval-s 0` serves the chat as it was before updates were coalesced (one per decoded piece).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, machine, summary  # noqa: E402

MESSAGES = ("Tell me about the sea.", "请介绍一下长城。", "What is 7 plus 5?", "今天天气怎么样？")
SYSTEM = "You are a helpful assistant."
FIRST_TEXT_POLL_S = 0.005  # resolution of the time to first token through gradio_client


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running demo (default: start one on a tiny model)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load in each round")
    parser.add_argument("--single", type=float, default=10.0, help="seconds of one session alone in each round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (one alone, then --clients)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--concurrency", type=int, default=32, help="of the demo this script starts")
    parser.add_argument("--port", type=int, default=0, help="of the demo this script starts (0: a free one)")
    parser.add_argument("--shape", choices=("small", "tiny"), default="small", help="model the script serves")
    parser.add_argument("--stream-interval-s", type=float, dest="stream_interval_s",
                        help="of the demo this script starts: least seconds between chat updates (default: the "
                             "demo's default; 0 = one update per decoded piece)")
    parser.add_argument("--threads", type=int, default=0, help="of the demo this script starts: torch threads of "
                        "its engine (0: the demo's default)")
    parser.add_argument("--dtype", default="auto", help="of the demo this script starts: weights dtype")
    parser.add_argument("--engine", choices=("process", "thread"), default="process",
                        help="of the demo this script starts: decode in a child process or a server thread")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="of the demo this script starts: its engine process and web server on separate cores")
    parser.add_argument("--clients-on", choices=("server", "any"), default="server", dest="clients_on",
                        help="with the demo this script starts pinned: the sessions on the web server's cores "
                             "(they stand in for users' own machines, so off the engine's) or on any core")
    parser.add_argument("--via", choices=("gradio", "api"), default="gradio",
                        help="sessions through the Gradio chat API or the OpenAI-compatible /v1 API")
    parser.add_argument("--api-key", default="none", help="for --via api against a demo with DSLLM_API_KEY")
    parser.add_argument("--out", type=Path, help="write <out>/demo_load.json")
    parser.add_argument("--quick", action="store_true", help="4 sessions, 10 s")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.duration, args.single, args.max_tokens, args.repeats = 4, 10.0, 5.0, 32, 1
    return args


def session(url: str, until: float, args: argparse.Namespace, index: int, records: list[dict]) -> None:
    """One client: messages back to back until `until`; a record per message."""
    if args.via == "api":
        return api_session(url, until, args, index, records)
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, ssl_verify=shared_tls_context())
    except Exception as exc:
        records.append({"error": f"connect: {exc}"})
        return
    n = index
    while time.monotonic() < until:
        records.append(one_message(client, MESSAGES[n % len(MESSAGES)], args))
        wait_for_stream_end(client)
        client.reset_session()  # a fresh conversation: prompts stay short
        n += 1


def wait_for_stream_end(client, timeout_s: float = 10.0) -> None:
    """Let the session's event stream end (the server closes it after the reply) before a fresh session starts.
    gradio_client 2.7 reads a new session's events from a stream still open for the old one, and when that
    stream ends it cancels the new job (`CancelledError`, ~1 in 4,000 replies when the server was slow to
    close it): a race in the client, not an error of the demo."""
    future = getattr(client, "streaming_future", None)
    if future is not None:
        with contextlib.suppress(Exception):
            future.result(timeout=timeout_s)


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """One TLS context for every connection of the load generator. gradio_client opens a new httpx client
    for each message and each stream, and each builds a context and loads the CA bundle (~10 ms of CPU):
    at 20 sessions that took more CPU than the demo server. It verifies as the default one would."""
    return ssl.create_default_context()


def one_message(client, message: str, args: argparse.Namespace) -> dict:
    start = time.monotonic()
    try:
        job = client.submit(message, SYSTEM, args.temperature, 0.95, args.max_tokens, api_name="/chat")
        first = first_text_at(job)
        text = job.result() or ""
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    end = time.monotonic()
    return {"ttft_s": (first or end) - start, "seconds": end - start, "chars": len(text)}


def first_text_at(job) -> float | None:
    """When the job's first non-empty text arrived (None: it ended first); the rest is read from its result.

    Iterating a Job instead polls its outputs every 1 ms until the reply ends: 20 sessions of that took
    a good share of a core from the demo. gradio_client hands events over every 50 ms at most anyway."""
    while not job.done():
        if any(job.outputs()):
            return time.monotonic()
        time.sleep(FIRST_TEXT_POLL_S)
    return None


def api_session(url: str, until: float, args: argparse.Namespace, index: int, records: list[dict]) -> None:
    """The same load through the OpenAI-compatible API (/v1/chat/completions, streamed)."""
    import openai

    client, n = openai.OpenAI(base_url=f"{url}/v1", api_key=args.api_key, max_retries=0, timeout=300), index
    name = client.models.list().data[-1].id  # the bare name: whatever version is served
    while time.monotonic() < until:
        start, first, text = time.monotonic(), None, ""
        try:
            stream = client.chat.completions.create(
                model=name, stream=True, max_tokens=args.max_tokens, temperature=args.temperature, top_p=0.95,
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": MESSAGES[n % 4]}])
            for chunk in stream:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece and first is None:
                    first = time.monotonic()
                text += piece or ""
            end = time.monotonic()
            records.append({"ttft_s": (first or end) - start, "seconds": end - start, "chars": len(text)})
        except Exception as exc:
            records.append({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        n += 1


def counters(url: str) -> dict:
    return httpx.get(f"{url}/dsllm/version", timeout=30).json()


def phase(url: str, clients: int, duration: float, args: argparse.Namespace) -> dict:
    """`clients` sessions for `duration` seconds; errors, TTFT, tokens/s per session and in total."""
    before, per_client = counters(url), [[] for _ in range(clients)]
    t0 = time.monotonic()
    threads = [threading.Thread(target=session, args=(url, t0 + duration, args, i, per_client[i]))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, after = time.monotonic() - t0, counters(url)
    result = summarise(per_client, after["tokens"] - before["tokens"], wall)
    steps = after.get("steps", 0) - before.get("steps", 0)  # decode steps (first tokens come from prefills)
    return result | {"decode_steps": steps, "tokens_per_decode_step": result["tokens"] / steps if steps else None}


def summarise(per_client: list[list[dict]], tokens: int, wall: float) -> dict:
    done = [r for rs in per_client for r in rs if "error" not in r]
    errors = [r["error"] for rs in per_client for r in rs if "error" in r]
    chars = sum(r["chars"] for r in done) or 1
    per_char = tokens / chars
    ttft = sorted(r["ttft_s"] for r in done) or [float("nan")]
    rates = [sum(r["chars"] for r in rs if "error" not in r) * per_char / wall for rs in per_client]
    return {"sessions": len(per_client), "seconds": wall, "replies": len(done), "errors": len(errors),
            "error_samples": errors[:3], "ttft_p50_s": percentile(ttft, 50), "ttft_p95_s": percentile(ttft, 95),
            "reply_p50_s": statistics.median([r["seconds"] for r in done]) if done else None,
            "tokens": tokens, "tokens_per_char": per_char, "tokens_per_s_total": tokens / wall,
            "tokens_per_s_per_session": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}}


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def small_model(out: Path) -> Path:
    """A random model of the `small` preset's shape with the toy chat tokenizer, its vocabulary filled
    up to the preset's size with word tokens (a random model emits any id; each must decode)."""
    from components.evaluate.toy import toy_tokenizer
    from components.model.build import build_model
    from components.presets import preset

    shape = preset("small").model
    tok = toy_tokenizer(shape.vocab_size, chat=True)
    tok.add_tokens([f" w{i}" for i in range(shape.vocab_size - len(tok))])
    model = build_model(shape, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def start_demo(root: Path, args: argparse.Namespace):
    """A demo process on a random chat model in a temporary home (--shape, --port, --concurrency, --threads,
    --dtype, --engine, --stream-interval-s); returns (url, stop)."""
    import os

    from components.evaluate.toy import toy_model
    from components.home import Home
    from components.services import demo as demo_proc
    from components.services import procs
    from components.serving.config import DemoConfig

    home = Home.resolve(root / "home")
    model = (small_model(root / "model") if args.shape == "small"
             else toy_model(root / "model", chat=True, n_layer=2, d_model=64, max_len=512))
    port = args.port or next(p for p in range(23000, 24000) if procs.port_free(p))
    os.environ.update(DSLLM_HOME=str(home.root), MLFLOW_TRACKING_URI=f"sqlite:///{home.mlflow_db}")
    interval = {} if args.stream_interval_s is None else {"stream_interval_s": args.stream_interval_s}
    cfg = DemoConfig(model=str(model), port=port, poll_s=0, concurrency=args.concurrency, queue_size=1000,
                     threads=args.threads, dtype=args.dtype, engine=args.engine, pin=args.pin, **interval)
    demo_proc.up(cfg=cfg, home=home)
    keep_clients_off_the_engine(cfg, args)
    return cfg.url, lambda: demo_proc.down(home=home, cfg=cfg)


def keep_clients_off_the_engine(cfg, args: argparse.Namespace) -> None:
    """This process (the sessions' threads) onto the demo's web server cores, as the demo splits them
    (`--clients-on server`, with the demo pinned); otherwise nothing changes."""
    from components.serving.cores import pin_process

    split = cfg.core_split()
    args.clients_on = args.clients_on if split else "any"  # recorded in the JSON as it ran
    if split and args.clients_on == "server":
        pin_process(split.server)


def main() -> None:
    args = parse()
    with tempfile.TemporaryDirectory(prefix="dsllm-demo-load-") as tmp:
        url, stop = (args.url, lambda: None) if args.url else start_demo(Path(tmp), args)
        try:
            served = counters(url)
            phase(url, 1, 2.0, args)  # warm-up: first requests pay for lazy initialisation
            rounds = [(phase(url, 1, args.single, args), phase(url, args.clients, args.duration, args))
                      for _ in range(args.repeats)]
        finally:
            stop()
    report(args, served, rounds)


def report(args: argparse.Namespace, served: dict, rounds: list[tuple[dict, dict]]) -> None:
    ratios = [load["tokens_per_s_total"] / single["tokens_per_s_total"] for single, load in rounds]
    errors, worst_ttft = sum(load["errors"] for _, load in rounds), max(load["ttft_p95_s"] for _, load in rounds)
    ratio = statistics.median(ratios)
    targets = {"errors == 0": errors == 0, "ttft p95 <= 1 s (worst round)": worst_ttft <= 1.0,
               "total tok/s >= 8x one session (median round)": ratio >= 8.0}
    result = {"benchmark": "demo_load", "machine": machine(), "served": served.get("label"),
              "config": {k: v for k, v in vars(args).items() if k != "out"} | {"out": None},
              "rounds": [{"single": single, "load": load} for single, load in rounds],
              "ratios": {"total_tokens_per_s_load_over_single": summary(ratios)},
              "errors": errors, "worst_ttft_p95_s": worst_ttft, "targets_met": targets}
    rows = [[f"{i + 1}: {name}", p["sessions"], p["replies"], p["errors"], f"{p['ttft_p50_s']:.3f}",
             f"{p['ttft_p95_s']:.3f}", f"{p['tokens_per_s_per_session']['median']:.1f}",
             f"{p['tokens_per_s_total']:.1f}", f"{p['tokens_per_decode_step'] or float('nan'):.2f}",
             f"{ratios[i]:.2f}" if name != "one" else ""]
            for i, (single, load) in enumerate(rounds) for name, p in (("one", single), (f"{args.clients}", load))]
    header = ["round: sessions", "sessions", "replies", "errors", "ttft p50 s", "ttft p95 s", "tok/s/session",
              "tok/s total", "tok/step", "ratio"]
    emit("demo_load", result, rows, header, args.out)
    print(f"\n{args.clients} sessions, {len(rounds)} rounds: {errors} errors, TTFT p95 {worst_ttft:.2f} s at worst, "
          f"total tok/s {ratio:.1f}x one session alone (median; rounds {min(ratios):.1f}-{max(ratios):.1f}x)")
    print("targets (issue 15): " + ", ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in targets.items()))


if __name__ == "__main__":
    main()
