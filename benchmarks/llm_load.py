#!/usr/bin/env python3
"""Load test of the OpenAI-compatible LLM server: time to first token, tokens/s and request latency.

    .venv/bin/python benchmarks/llm_load.py                           # standalone server, 1, 4 and 8 clients
    .venv/bin/python benchmarks/llm_load.py --url http://vllm.vllm.svc.cluster.local:8000 \
        --model mistralai/Mistral-7B-Instruct-v0.2 --concurrency 1 8 16 --requests 8 --json

For each concurrency, that many clients each send --requests streamed chat completions one after the other
(closed loop), with --max-tokens tokens to generate. Per request the client measures the time to the first
content token and to the end of the stream; per level it prints request latency P50/P99, TTFT P50/P99, and
generated tokens per second (per request while decoding, and for the whole level). The roadmap's success
metric is LLM P99 < 2 s. The clients share the host's CPUs with a standalone server, so there the numbers are a
pessimistic bound. Exit status 1 when any request failed.
"""

import argparse
import http.client
import json
import math
import sys
import threading
import time
import urllib.parse

DEFAULT_URL = "http://127.0.0.1:8001"
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPTS = [
    "Explain MLOps in one sentence.",
    "What does a feature store do?",
    "Name three ways to monitor a machine learning model in production.",
    "Why version datasets?",
]


def percentile(values, q):
    """Nearest-rank percentile; nan when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def one_request(connection, model, prompt, max_tokens, api_key):
    """(latency s, ttft s, completion tokens, decode seconds) of one streamed chat completion."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    start = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    first = None
    chunks = 0
    usage_tokens = None
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        event = json.loads(data)
        if event.get("usage"):
            usage_tokens = event["usage"].get("completion_tokens")
        for choice in event.get("choices", []):
            if choice.get("delta", {}).get("content"):
                chunks += 1
                if first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    tokens = usage_tokens if usage_tokens is not None else chunks
    ttft = (first or end) - start
    return end - start, ttft, tokens, end - (first or end)


def run_level(args, clients):
    parsed = urllib.parse.urlsplit(args.url)
    results, errors, lock = [], [], threading.Lock()

    def client(index):
        # A connection per request: llama-server closes a streamed response's connection.
        for n in range(args.requests):
            prompt = f"{PROMPTS[(index + n) % len(PROMPTS)]} (client {index}, request {n})"
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=args.timeout)
            try:
                measured = one_request(connection, args.model, prompt, args.max_tokens, args.api_key)
            except Exception as error:  # every failure is counted and shown
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
                continue
            finally:
                connection.close()
            with lock:
                results.append(measured)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    latencies = [r[0] for r in results]
    ttfts = [r[1] for r in results]
    tokens = sum(r[2] for r in results)
    decode_rates = [(r[2] - 1) / r[3] for r in results if r[2] > 1 and r[3] > 0]
    return {
        "concurrency": clients,
        "requests": len(results),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "seconds": round(seconds, 2),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p99_s": round(percentile(latencies, 99), 3),
        "ttft_p50_ms": round(percentile(ttfts, 50) * 1000, 1),
        "ttft_p99_ms": round(percentile(ttfts, 99) * 1000, 1),
        "tokens_per_s_per_request": round(percentile(decode_rates, 50), 1),
        "tokens_per_s_total": round(tokens / seconds, 1) if seconds > 0 else math.nan,
        "completion_tokens": tokens,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="base URL of the server (no /v1)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--api-key", default="", help="sent as a bearer token when set")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=4, help="requests per client and level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args()

    levels = [run_level(args, clients) for clients in args.concurrency]
    if args.json:
        print(json.dumps({"url": args.url, "model": args.model, "max_tokens": args.max_tokens, "levels": levels}))
    else:
        print(f"{args.url}  model {args.model}  max_tokens {args.max_tokens}  {args.requests} requests per client")
        print("clients  requests errors  p50 s   p99 s   ttft p50 ms  ttft p99 ms  tok/s/req  tok/s total")
        for level in levels:
            print(
                f"{level['concurrency']:>7}  {level['requests']:>8} {level['errors']:>6}  {level['latency_p50_s']:>5}  "
                f"{level['latency_p99_s']:>6}  {level['ttft_p50_ms']:>11}  {level['ttft_p99_ms']:>11}  "
                f"{level['tokens_per_s_per_request']:>9}  {level['tokens_per_s_total']:>11}"
            )
            for example in level["error_examples"]:
                print(f"         error: {example}")
        worst = max(level["latency_p99_s"] for level in levels)
        print(f"roadmap target LLM P99 < 2 s: worst P99 {worst} s -> {'met' if worst < 2 else 'not met'}")
    return 1 if any(level["errors"] for level in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
