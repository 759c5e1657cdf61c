#!/usr/bin/env python3
"""Benchmark of the RAG service: ingest, ANN search at scale, and retrieval quality.

    /var/lib/argoeks/venvs/rag_service/bin/python benchmarks/rag.py            # defaults below
    .../bin/python benchmarks/rag.py --chunks 2000 --queries 50 --ingest-docs 3  # a quick run

Run with the service's own virtualenv (fastembed, psycopg, pgvector) against a running standalone
platform (--home, --url). Three parts, each printing its numbers:

1. ingest: the same --ingest-docs documents of docs/ through the service (PUT /v1/sources: chunks
   embedded in batches, one COPY per document) against the roadmap's RAGService.ingest pattern (each
   chunk encoded alone, then one INSERT and commit per chunk): documents/s, chunks/s, and the ratio.
2. ann: --chunks sentences generated from the corpus' vocabulary, embedded for real by the service's
   model (cached in --cache, so only the first run pays for it), written to a scratch table with an
   HNSW index like documents'; --queries generated questions: embed + search latency P50/P99 through the
   index, and recall@10 against exact search (numpy over all vectors), at two hnsw.ef_search values.
3. quality: the shipped evaluation set (roles/rag_service/files/evaluation/questions.json) through
   POST /v1/search: hit@1, hit@3 and MRR with reranking none (cosine order) and hybrid.

The scratch tables (bench_*) are dropped at the end; the service's documents are not touched except for
the bench-ingest/ sources it adds and deletes. Goals (issue): batched ingest ≥ 20 times the per-row pattern;
embed + search P99 < 60 ms with recall ≥ 0.95 at 100k chunks.
"""

import argparse
import json
import math
import os
import random
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

ROOT = Path(__file__).resolve().parent.parent
EVALUATION = ROOT / "roles/rag_service/files/evaluation/questions.json"


def percentile(values, q):
    """Nearest-rank percentile; nan when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def call(url, method, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"--url must be http(s): {url}")
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})  # noqa: S310 - http(s) only (checked)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - http(s) only (checked)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def load_service(home):
    """The service's own module (its chunking and embedding), configured from the platform's home."""
    os.environ["RAG_SERVICE_CONFIG"] = str(home / "rag_service/config.json")
    sys.path.insert(0, str(home / "rag_service"))
    import rag_server  # importable only once the path is known

    rag_server.EMBEDDER = rag_server.Embedder(rag_server.CONFIG["embedding_model_dir"], 0)
    return rag_server


def connect(service):
    db = service.CONFIG["database"]
    conn = psycopg.connect(
        host=db["host"], port=db["port"], dbname=db["name"], user=db["user"], password=service.password()
    )
    register_vector(conn)
    return conn


def bench_ingest(args, service, conn):
    documents = sorted((ROOT / "docs").rglob("*.md"))[: args.ingest_docs]
    texts = {f"bench-ingest/{path.name}": path.read_text() for path in documents}
    for source in texts:
        call(f"{args.url}/v1/sources/{source}", "DELETE")
    start = time.perf_counter()
    chunks = 0
    for source, text in texts.items():
        status, reply = call(f"{args.url}/v1/sources/{source}", "PUT", raw=text.encode())
        if status != 200:
            raise SystemExit(f"ingest of {source} failed: HTTP {status} {reply}")
        chunks += reply["chunks"]
    batched = time.perf_counter() - start
    for source in texts:
        call(f"{args.url}/v1/sources/{source}", "DELETE")

    conn.execute(
        "CREATE TABLE bench_rowwise (id bigserial PRIMARY KEY, source text, chunk_index int, content text,"
        f" metadata jsonb, embedding vector({service.CONFIG['embedding_dim']}))"
    )
    conn.commit()
    rows, encode, write = [], 0.0, 0.0
    for source, text in texts.items():
        for index, (content, meta) in enumerate(service.chunk(text)):
            start = time.perf_counter()
            embedding = service.EMBEDDER.embed([content])[0]
            encode += time.perf_counter() - start
            row = (source, index, content, json.dumps(meta), embedding)
            start = time.perf_counter()
            conn.execute(
                "INSERT INTO bench_rowwise (source, chunk_index, content, metadata, embedding)"
                " VALUES (%s, %s, %s, %s, %s)",
                row,
            )
            conn.commit()
            write += time.perf_counter() - start
            rows.append(row)
    rowwise = encode + write
    # The write alone, the same rows: the service's one binary COPY in one transaction.
    conn.execute("TRUNCATE bench_rowwise")
    conn.commit()
    start = time.perf_counter()
    with conn.cursor().copy(
        "COPY bench_rowwise (source, chunk_index, content, metadata, embedding) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "int4", "text", "jsonb", "vector"])
        for row in rows:
            copy.write_row(row)
    conn.commit()
    copied = time.perf_counter() - start
    n = len(texts)
    print(
        f"ingest  {n} documents, {chunks} chunks: batched (service) {batched:.2f} s = {n / batched:.2f} docs/s,"
        f" {chunks / batched:.1f} chunks/s; per-row encode+INSERT {rowwise:.2f} s = {n / rowwise:.2f} docs/s,"
        f" {chunks / rowwise:.1f} chunks/s; batched/per-row {rowwise / batched:.2f}x"
    )
    print(
        f"ingest  of which embedding {encode:.2f} s ({chunks / encode:.1f} chunks/s one at a time);"
        f" writing: per-row INSERT+commit {write * 1000:.0f} ms, one COPY {copied * 1000:.1f} ms"
        f" = {write / copied:.0f}x"
    )


def generated_texts(count, seed, words, length):
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    return [" ".join(rng.choices(words, k=length)) for _ in range(count)]


def corpus_words():
    words = set()
    for path in (ROOT / "docs").rglob("*.md"):
        words.update(w.strip(".,:;()`*[]\"'").lower() for w in path.read_text().split())
    return sorted(w for w in words if w.isalpha() and 2 < len(w) < 16)


def embeddings(service, texts, cache):
    if cache.exists():
        return np.load(cache)
    start = time.perf_counter()
    vectors = np.empty((len(texts), service.CONFIG["embedding_dim"]), dtype=np.float32)
    for first in range(0, len(texts), 1024):
        batch = service.EMBEDDER.embed(texts[first : first + 1024])
        vectors[first : first + len(batch)] = np.asarray(batch)
        done = first + len(batch)
        rate = done / (time.perf_counter() - start)
        print(f"  embedded {done}/{len(texts)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def bench_ann(args, service, conn):
    words = corpus_words()
    cache = Path(args.cache) / f"chunks-{args.chunks}-seed1.npy"
    vectors = embeddings(service, generated_texts(args.chunks, 1, words, 14), cache)
    dim = vectors.shape[1]
    conn.execute(f"CREATE TABLE bench_ann (id integer PRIMARY KEY, embedding vector({dim}))")
    with conn.cursor().copy("COPY bench_ann (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for index, vector in enumerate(vectors):
            copy.write_row((index, vector))
    conn.commit()
    conn.execute("SET maintenance_work_mem = '1GB'")
    start = time.perf_counter()
    conn.execute(
        "CREATE INDEX ON bench_ann USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    conn.commit()
    print(f"ann     {args.chunks} chunks of real embeddings; HNSW build {time.perf_counter() - start:.1f} s")
    questions = generated_texts(args.queries, 2, words, 10)
    for ef_search in (40, 100):
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
        latencies, recalls = [], []
        for question in questions:
            start = time.perf_counter()
            query = service.EMBEDDER.embed([question])[0]
            rows = conn.execute("SELECT id FROM bench_ann ORDER BY embedding <=> %s LIMIT 10", (query,)).fetchall()
            latencies.append((time.perf_counter() - start) * 1000)
            exact = set(np.argsort(-(vectors @ query))[:10].tolist())
            recalls.append(len(exact & {row[0] for row in rows}) / 10)
        conn.rollback()
        print(
            f"ann     ef_search {ef_search}: embed+search P50 {percentile(latencies, 50):.1f} ms,"
            f" P99 {percentile(latencies, 99):.1f} ms; recall@10 vs exact {sum(recalls) / len(recalls):.3f}"
            f" ({len(questions)} queries)"
        )


def bench_quality(args):
    questions = json.loads(EVALUATION.read_text())["questions"]
    for rerank in ("none", "hybrid"):
        hit1 = hit3 = reciprocal = 0.0
        for item in questions:
            status, reply = call(
                f"{args.url}/v1/search", "POST", {"question": item["question"], "top_k": 10, "rerank": rerank}
            )
            if status != 200:
                raise SystemExit(f"search failed: HTTP {status} {reply}")
            ranks = [
                rank
                for rank, passage in enumerate(reply["passages"], 1)
                if (passage["source"], passage["section"]) == (item["source"], item["section"])
            ]
            rank = ranks[0] if ranks else None
            hit1 += rank == 1
            hit3 += bool(rank and rank <= 3)
            reciprocal += 1 / rank if rank else 0.0
        n = len(questions)
        print(
            f"quality rerank {rerank:6}: hit@1 {hit1 / n:.2f}, hit@3 {hit3 / n:.2f}, MRR {reciprocal / n:.3f}"
            f" ({n} questions)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--home", default="/var/lib/argoeks", help="platform_home of the standalone platform")
    parser.add_argument("--url", default="http://127.0.0.1:8002", help="the RAG service")
    parser.add_argument("--chunks", type=int, default=100000, help="generated chunks for the ANN part")
    parser.add_argument("--queries", type=int, default=200, help="generated questions for the ANN part")
    parser.add_argument("--ingest-docs", type=int, default=20, help="documents of docs/ for the ingest part")
    parser.add_argument("--cache", default="/var/cache/argoeks/benchmarks/rag", help="where embeddings are kept")
    parser.add_argument("--only", choices=["ingest", "ann", "quality"], action="append", help="run only these parts")
    args = parser.parse_args()
    parts = args.only or ["ingest", "ann", "quality"]
    service = load_service(Path(args.home))
    conn = connect(service)
    try:
        if "ingest" in parts:
            bench_ingest(args, service, conn)
        if "ann" in parts:
            bench_ann(args, service, conn)
        if "quality" in parts:
            bench_quality(args)
    finally:
        conn.rollback()
        conn.execute("DROP TABLE IF EXISTS bench_rowwise, bench_ann")
        conn.commit()
        conn.close()


if __name__ == "__main__":
    main()
