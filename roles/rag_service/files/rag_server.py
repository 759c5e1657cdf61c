"""The platform's RAG service: documents into pgvector, questions answered by the platform's LLM.

Ingest splits a document into overlapping chunks of the embedding model's tokens, embeds them in
batches and writes them with one COPY in one transaction: a document whose content is unchanged is
skipped (its sha256), a changed one replaces its chunks, so a re-ingest never duplicates rows.
A query embeds the question, takes the nearest chunks by cosine distance (the HNSW index) and the
best lexical matches (PostgreSQL full text), fuses the two rankings (reciprocal rank fusion, or a
cross-encoder when configured), and asks the OpenAI-compatible LLM to answer from the top passages,
citing them by number.

Configuration: the JSON file named by RAG_SERVICE_CONFIG (written by the rag_service role); the
database password is read from the platform's secret file it names (standalone), or from the AWS
Secrets Manager secret it names with the pod's IRSA credentials (eks), never from the command line.
"""

import hashlib
import json
import math
import os
import re
import threading
import time
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import httpx
import numpy as np
import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType
from pgvector.psycopg import register_vector
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from tokenizers import Tokenizer

CONFIG = json.loads(Path(os.environ["RAG_SERVICE_CONFIG"]).read_text())
# The embedding model's position limit (BERT: 512) minus its two special tokens; a question longer than
# query_max_tokens is refused rather than silently cut.
EMBEDDING_MAX_TOKENS = 510
RRF_K = 60

STAGE_SECONDS = Histogram(
    "rag_stage_duration_seconds",
    "Time of one stage of a request: embed, search, rerank, generate (the LLM), ingest (the database write).",
    ["stage"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60),
)
REQUESTS = Counter("rag_requests_total", "Requests by route and status code.", ["route", "code"])
DOCUMENTS = Counter("rag_ingested_documents_total", "Documents ingested, by result.", ["result"])
CHUNKS_WRITTEN = Counter("rag_ingested_chunks_total", "Chunks embedded and written.")
CHUNKS = Gauge("rag_chunks", "Chunks in the documents table (as of this process' last write or start).")
LLM_TOKENS = Counter("rag_llm_tokens_total", "LLM tokens of the answers, prompt and completion.", ["kind"])
RETRIEVED = Histogram("rag_retrieved_chunks", "Passages given to the LLM per answer.", buckets=(0, 1, 2, 3, 5, 8, 13))


class Embedder:
    """all-MiniLM-L6-v2 (ONNX) through fastembed, from local files only."""

    def __init__(self, model_dir: str, threads: int):
        name = "local/" + CONFIG["embedding_model"]
        if name not in {model["model"] for model in TextEmbedding.list_supported_models()}:
            TextEmbedding.add_custom_model(
                model=name,
                pooling=PoolingType.MEAN,
                normalization=True,
                sources=ModelSource(hf="local/none"),
                dim=CONFIG["embedding_dim"],
                model_file="model.onnx",
            )
        self.model = TextEmbedding(
            model_name=name, specific_model_path=model_dir, local_files_only=True, threads=threads or None
        )
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        """Embeddings in the order of `texts`. A batch is padded to its longest text, so batches are made of
        texts of similar length (sorted), which keeps batching from costing more than it saves on a CPU."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        # One ONNX session; its own threads do the parallel work.
        with self.lock:
            vectors = list(self.model.embed([texts[i] for i in order], batch_size=CONFIG["embedding_batch_size"]))
        result = [None] * len(texts)
        for position, index in enumerate(order):
            result[index] = vectors[position]
        return result

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def windows(self, text: str, size: int, overlap: int) -> list[str]:
        """Overlapping windows of `size` tokens, widened to whole words."""
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        spans, step = [], max(1, size - overlap)
        for first in range(0, len(offsets), step):
            last = min(first + size, len(offsets)) - 1
            start, end = offsets[first][0], offsets[last][1]
            while start > 0 and not text[start - 1].isspace():
                start -= 1
            while end < len(text) and not text[end].isspace():
                end += 1
            spans.append(text[start:end].strip())
            if last == len(offsets) - 1:
                break
        return [span for span in spans if span]


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) pairs of a Markdown document; headings inside code fences do not count."""
    found, heading, lines, fenced = [], "", [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and re.match(r"#{1,6} \S", line):
            found.append((heading, "\n".join(lines)))
            heading, lines = line.lstrip("#").strip(), []
        else:
            lines.append(line)
    found.append((heading, "\n".join(lines)))
    return [(title, body) for title, body in found if body.strip() or title]


def chunk(text: str) -> list[tuple[str, dict]]:
    """The chunks of one document, each starting with its section's heading (which the lexical side
    and the embedding both read), with the heading in its metadata."""
    pieces = []
    for title, body in sections(text):
        windows = EMBEDDER.windows(body, CONFIG["chunk_tokens"], CONFIG["chunk_overlap_tokens"]) if body.strip() else []
        for window in windows or [""]:
            content = f"{title}\n{window}".strip() if title else window
            if content:
                pieces.append((content, {"section": title}))
    return pieces


def password() -> str:
    db = CONFIG["database"]
    if db.get("password_secret"):
        import boto3  # only in the eks image: standalone reads a file

        client = boto3.client("secretsmanager", region_name=db.get("region") or None)
        return json.loads(client.get_secret_value(SecretId=db["password_secret"])["SecretString"])["password"]
    return json.loads(Path(db["password_file"]).read_text())["password"]


def conninfo() -> str:
    db = CONFIG["database"]
    extra = {"sslmode": db["sslmode"]} if db.get("sslmode") else {}
    return psycopg.conninfo.make_conninfo(
        host=db["host"], port=db["port"], dbname=db["name"], user=db["user"], connect_timeout=5, **extra
    )


EMBEDDER: Embedder
POOL: ConnectionPool
LLM: httpx.Client
RERANKER = None


def cross_encoder():
    """A cross-encoder (fastembed's TextCrossEncoder, e.g. Xenova/ms-marco-MiniLM-L-6-v2) when configured."""
    from fastembed.rerank.cross_encoder import TextCrossEncoder

    path = CONFIG.get("cross_encoder_path") or None
    return TextCrossEncoder(
        model_name=CONFIG["cross_encoder_model"],
        specific_model_path=path,
        local_files_only=bool(path),
        cache_dir=CONFIG.get("model_cache_dir"),
    )


def count_chunks() -> int:
    with POOL.connection() as conn:
        count = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        conn.rollback()
    CHUNKS.set(count)
    return count


@asynccontextmanager
async def lifespan(_app):
    global EMBEDDER, POOL, LLM, RERANKER
    EMBEDDER = Embedder(CONFIG["embedding_model_dir"], CONFIG["embedding_threads"])
    # The pool opens in the background: the service starts, and /health says 503, while the database is down.
    POOL = ConnectionPool(
        conninfo(),
        kwargs={"password": password(), "autocommit": False},
        min_size=1,
        max_size=CONFIG["database"]["pool_size"],
        timeout=5,
        configure=lambda conn: (register_vector(conn), conn.commit()),
        # A connection the server dropped (a restart) is replaced on checkout instead of failing a request.
        check=ConnectionPool.check_connection,
        open=False,
    )
    POOL.open(wait=False)
    LLM = httpx.Client(base_url=CONFIG["llm"]["base_url"], timeout=CONFIG["llm"]["timeout_seconds"])
    if CONFIG["reranker"] == "cross-encoder":
        RERANKER = cross_encoder()
    # The chunk gauge starts from the table; with the database down it stays at 0 until the first write.
    with suppress(psycopg.Error, PoolTimeout):
        count_chunks()
    yield
    POOL.close()
    LLM.close()


app = FastAPI(title="argoeks RAG service", lifespan=lifespan)


@app.exception_handler(psycopg.OperationalError)
@app.exception_handler(PoolTimeout)
async def database_unavailable(_request: Request, error: Exception):
    return JSONResponse(status_code=503, content={"detail": f"database unavailable: {str(error).splitlines()[0]}"})


@app.middleware("http")
async def count_requests(request: Request, call_next):
    response = await call_next(request)
    route = request.scope.get("route")
    REQUESTS.labels(route.path if route else "unmatched", str(response.status_code)).inc()
    return response


class Document(BaseModel):
    source: str = Field(min_length=1, max_length=1024)
    content: str
    metadata: dict = Field(default_factory=dict)


class Documents(BaseModel):
    documents: list[Document] = Field(min_length=1)


class Query(BaseModel):
    question: str = Field(min_length=1)
    top_k: int = Field(default=5, ge=1, le=50)
    # none (dense order), hybrid (dense + lexical, fused), cross-encoder; default: the service's.
    rerank: str | None = None
    answer: bool = True
    max_tokens: int = Field(default=128, ge=1, le=1024)


def check_text(source: str, content: str):
    if not content.strip():
        raise HTTPException(422, f"document {source!r} is empty: nothing to ingest")


def ingest(documents: list[Document]) -> list[dict]:
    """Validate and embed everything first, then write in one transaction: a failure writes nothing."""
    for document in documents:
        check_text(document.source, document.content)
    digests = [hashlib.sha256(d.content.encode()).hexdigest() for d in documents]
    with POOL.connection() as conn:
        known = dict(
            conn.execute(
                "SELECT source, sha256 FROM sources WHERE source = ANY(%s)", ([d.source for d in documents],)
            ).fetchall()
        )
        conn.rollback()
    todo = [(d, digest) for d, digest in zip(documents, digests, strict=True) if known.get(d.source) != digest]
    chunked = [(d, digest, chunk(d.content)) for d, digest in todo]
    started = time.perf_counter()
    texts = [content for _d, _digest, pieces in chunked for content, _meta in pieces]
    vectors = iter(EMBEDDER.embed(texts)) if texts else iter(())
    STAGE_SECONDS.labels("embed").observe(time.perf_counter() - started)
    started = time.perf_counter()
    results = {d.source: {"source": d.source, "result": "unchanged", "chunks": None} for d in documents}
    with POOL.connection() as conn, conn.transaction():
        for document, digest, pieces in chunked:
            # One writer per source at a time: two ingests of a new source would both insert its chunks.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (document.source,))
            current = conn.execute("SELECT sha256 FROM sources WHERE source = %s", (document.source,)).fetchone()
            if current and current[0] == digest:
                continue
            conn.execute("DELETE FROM documents WHERE source = %s", (document.source,))
            with conn.cursor().copy(
                "COPY documents (source, chunk_index, content, metadata, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "int4", "text", "jsonb", "vector"])
                for index, (content, meta) in enumerate(pieces):
                    copy.write_row(
                        (document.source, index, content, Jsonb({**document.metadata, **meta}), next(vectors))
                    )
            conn.execute(
                "INSERT INTO sources (source, sha256, chunks, metadata) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (source) DO UPDATE SET sha256 = EXCLUDED.sha256, chunks = EXCLUDED.chunks,"
                " metadata = EXCLUDED.metadata, ingested_at = now()",
                (document.source, digest, len(pieces), Jsonb(document.metadata)),
            )
            results[document.source] = {
                "source": document.source,
                "result": "replaced" if current else "created",
                "chunks": len(pieces),
            }
            CHUNKS_WRITTEN.inc(len(pieces))
    STAGE_SECONDS.labels("ingest").observe(time.perf_counter() - started)
    for result in results.values():
        DOCUMENTS.labels(result["result"]).inc()
    count_chunks()
    return list(results.values())


@app.post("/v1/documents")
def post_documents(body: Documents):
    return {"documents": ingest(body.documents)}


@app.put("/v1/sources/{source:path}")
async def put_source(source: str, request: Request):
    """One document as the raw bytes of a file (what rag_ingest.yml sends): it must be UTF-8 text."""
    raw = await request.body()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HTTPException(
            422, f"document {source!r} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})"
        ) from None
    check_text(source, content)
    try:
        metadata = json.loads(request.headers.get("x-rag-metadata", "{}"))
    except json.JSONDecodeError:
        metadata = None
    if not isinstance(metadata, dict):
        raise HTTPException(422, "header X-RAG-Metadata must be a JSON object")
    return (await run_in_threadpool(ingest, [Document(source=source, content=content, metadata=metadata)]))[0]


@app.get("/v1/sources")
def list_sources():
    with POOL.connection() as conn:
        rows = conn.execute("SELECT source, sha256, chunks, ingested_at FROM sources ORDER BY source").fetchall()
    return {
        "sources": [
            {"source": s, "sha256": digest, "chunks": n, "ingested_at": at.isoformat()} for s, digest, n, at in rows
        ]
    }


@app.delete("/v1/sources/{source:path}")
def delete_source(source: str):
    with POOL.connection() as conn, conn.transaction():
        deleted = conn.execute("DELETE FROM documents WHERE source = %s", (source,)).rowcount
        known = conn.execute("DELETE FROM sources WHERE source = %s", (source,)).rowcount
    if not known:
        raise HTTPException(404, f"no source {source!r}")
    count_chunks()
    return {"source": source, "deleted_chunks": deleted}


def dense_and_lexical(vector: np.ndarray, question: str, candidates: int, lexical_too: bool):
    with POOL.connection() as conn:
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(40, candidates)),))
        dense = conn.execute(
            "SELECT id, source, chunk_index, content, metadata, embedding <=> %s AS distance"
            " FROM documents ORDER BY embedding <=> %s LIMIT %s",
            (vector, vector, candidates),
        ).fetchall()
        lexical = []
        if lexical_too:
            # Any of the question's stemmed words (plainto_tsquery would demand all of them).
            lexical = conn.execute(
                "WITH q AS (SELECT to_tsquery('english', coalesce(nullif(array_to_string("
                " tsvector_to_array(to_tsvector('english', %s)), ' | '), ''), 'a')) AS q)"
                " SELECT id, source, chunk_index, content, metadata, embedding <=> %s AS distance"
                " FROM documents, q WHERE content_tsv @@ q.q ORDER BY ts_rank(content_tsv, q.q) DESC, id LIMIT %s",
                (question, vector, candidates),
            ).fetchall()
        conn.rollback()
    return dense, lexical


def passage(row, score):
    _id, source, index, content, metadata, distance = row
    return {
        "source": source,
        "chunk_index": index,
        "section": metadata.get("section", ""),
        "content": content,
        "distance": round(float(distance), 6),
        "score": round(float(score), 6),
    }


def retrieve(question: str, top_k: int, rerank: str) -> tuple[list[dict], dict]:
    tokens = EMBEDDER.count_tokens(question)
    if tokens > CONFIG["query_max_tokens"]:
        raise HTTPException(
            422,
            f"question is {tokens} tokens; the embedding model reads at most {CONFIG['query_max_tokens']}"
            " (rag_service_query_max_tokens): shorten it",
        )
    timings = {}
    started = time.perf_counter()
    vector = EMBEDDER.embed([question])[0]
    timings["embed_ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    candidates = max(top_k * 4, CONFIG["rerank_candidates"]) if rerank != "none" else top_k
    # The full-text side only feeds a reranker: cosine order alone does not query it.
    dense, lexical = dense_and_lexical(vector, question, candidates, lexical_too=rerank != "none")
    timings["search_ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    if rerank == "none":
        ranked = [(row, 1 - row[5]) for row in dense]
    elif rerank == "hybrid":
        # Reciprocal rank fusion: robust to the two scores' different scales; the lexical side weighs less
        # (on the evaluation set, weights 0.3-0.5 beat both 1.0 and the dense order alone).
        scores, rows = {}, {}
        for ranking, weight in ((dense, 1.0), (lexical, CONFIG["lexical_weight"])):
            for rank, row in enumerate(ranking):
                scores[row[0]] = scores.get(row[0], 0.0) + weight / (RRF_K + rank + 1)
                rows[row[0]] = row
        ranked = sorted(((rows[i], s) for i, s in scores.items()), key=lambda item: -item[1])
    else:
        if RERANKER is None:
            raise HTTPException(422, "rerank 'cross-encoder' needs rag_service_reranker: cross-encoder")
        rows = list({row[0]: row for row in dense + lexical}.values())
        scores = list(RERANKER.rerank(question, [row[3] for row in rows]))
        ranked = sorted(zip(rows, scores, strict=True), key=lambda item: -item[1])
    timings["rerank_ms"] = (time.perf_counter() - started) * 1000
    STAGE_SECONDS.labels("embed").observe(timings["embed_ms"] / 1000)
    STAGE_SECONDS.labels("search").observe(timings["search_ms"] / 1000)
    STAGE_SECONDS.labels("rerank").observe(timings["rerank_ms"] / 1000)
    return [passage(row, score) for row, score in ranked[:top_k]], timings


SYSTEM_PROMPT = (
    "You answer questions about the argoeks platform. Use only the numbered passages. "
    "Cite the passages you use by their number in brackets, like [1]. "
    "If the passages do not contain the answer, say so."
)


def answer(question: str, passages: list[dict], max_tokens: int) -> dict:
    used = passages[: CONFIG["answer_passages"]]
    context = "\n\n".join(f"[{n}] ({p['source']}) {p['content']}" for n, p in enumerate(used, 1))
    body = {
        "model": CONFIG["llm"]["model"],
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {question}"},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    started = time.perf_counter()
    try:
        response = LLM.post("/chat/completions", json=body)
    except httpx.HTTPError as error:
        raise HTTPException(503, f"LLM server unavailable at {CONFIG['llm']['base_url']}: {error}") from None
    if response.status_code != 200:
        raise HTTPException(502, f"LLM server answered {response.status_code}: {response.text[:300]}")
    elapsed = time.perf_counter() - started
    STAGE_SECONDS.labels("generate").observe(elapsed)
    RETRIEVED.observe(len(used))
    reply = response.json()
    usage = reply.get("usage", {})
    LLM_TOKENS.labels("prompt").inc(usage.get("prompt_tokens", 0))
    LLM_TOKENS.labels("completion").inc(usage.get("completion_tokens", 0))
    text = reply["choices"][0]["message"]["content"].strip()
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text) if 1 <= int(n) <= len(used)})
    return {
        "answer": text,
        # The passages the model was given, numbered as in its prompt; `cited` are those the answer names.
        "citations": [
            {"n": n, "source": p["source"], "chunk_index": p["chunk_index"], "section": p["section"]}
            for n, p in enumerate(used, 1)
        ],
        "cited": cited,
        "model": reply.get("model", CONFIG["llm"]["model"]),
        "usage": {k: usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
        "generate_ms": elapsed * 1000,
    }


@app.post("/v1/search")
def search(body: Query):
    """The roadmap's RAGService.query: the top_k passages and their cosine distance (no LLM)."""
    passages, timings = retrieve(body.question, body.top_k, body.rerank or CONFIG["reranker"])
    return {"question": body.question, "passages": passages, "timings_ms": rounded(timings)}


@app.post("/v1/query")
def query(body: Query):
    """Retrieve, then answer through the LLM from the top passages, citing them."""
    passages, timings = retrieve(body.question, body.top_k, body.rerank or CONFIG["reranker"])
    result = {"question": body.question, "passages": passages}
    if body.answer and passages:
        reply = answer(body.question, passages, body.max_tokens)
        timings["generate_ms"] = reply.pop("generate_ms")
        result.update(reply)
    return {**result, "timings_ms": rounded(timings)}


def rounded(timings: dict) -> dict:
    return {name: round(value, 2) for name, value in timings.items() if not math.isnan(value)}


@app.get("/health")
def health():
    try:
        with POOL.connection(timeout=2) as conn:
            chunks = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            conn.rollback()
    except (psycopg.Error, PoolTimeout) as error:
        return JSONResponse(status_code=503, content={"status": f"database unavailable: {str(error).splitlines()[0]}"})
    return {"status": "ok", "chunks": chunks}


@app.get("/metrics")
def metrics():
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
