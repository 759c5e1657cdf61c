"""Phase 3 Month 4 (LLM serving) on the standalone target, as a user sees it.

One platform for the module (own home and ports): phase1.yml then phase3.yml from nothing; the OpenAI
Python client gets a chat completion; the roadmap's "generate" request works as /v1/completions; the
server's token counters grow by exactly the tokens a request reported, and Prometheus scrapes them and
records their cost per 1000 tokens, shown on the status page; a killed server is restarted by
supervisord; the vector database (Month 5) is the platform's PostgreSQL with pgvector built from Debian's
source package, its documents table with vector(384) and an HNSW index, and a cosine nearest-neighbour
query answers; the RAG service (Month 5) has ingested the project's docs, answers a question about them
with the right passage first and an answer citing it, ranks the shipped evaluation set better with its
hybrid reranking than by cosine distance alone, re-ingests without duplicates, refuses bad documents and
questions by name without writing them, answers 503 while the database is down and recovers, keeps its
data across a restart of every service, and is scraped; a second run changes nothing and builds nothing;
teardown keeps the build cache and the documents. Bad settings fail in preflight before anything is
created.
"""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from openai import OpenAI

from tests.platform.standalone import SERVICES, assert_ok, traversable_platform
from tests.support import ROOT, wait_until

pytestmark = pytest.mark.platform

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUILD_CACHE = Path("/var/cache/argoeks/llama.cpp/11434.0.0/llama-server")
ALL_SERVICES = (*SERVICES, "llm-server", "postgresql", "postgresql-exporter", "rag-service")
EVALUATION = json.loads((ROOT / "roles/rag_service/files/evaluation/questions.json").read_text())["questions"]
BACKUP_QUESTION = EVALUATION[0]


@pytest.fixture(scope="module")
def platform():
    with traversable_platform("argoeks-phase3-") as platform:
        yield platform


def base_url(platform):
    return f"http://127.0.0.1:{platform.vars['llm_serving_port']}"


def client(platform):
    # The server on loopback takes no key; the client library insists on one.
    return OpenAI(base_url=base_url(platform) + "/v1", api_key="none", timeout=120, max_retries=0)


def post_json(url, body):
    assert url.startswith("http://127.0.0.1:"), url
    request = urllib.request.Request(  # noqa: S310 - loopback http only (asserted)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return json.loads(response.read())


def get_text(url):
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http only (asserted)
        return response.read().decode()


def server_counters(platform):
    """The server's own token counters from /metrics."""
    text = get_text(base_url(platform) + "/metrics")
    values = dict(re.findall(r"^llamacpp:(prompt_tokens_total|tokens_predicted_total) (\S+)$", text, re.MULTILINE))
    return {name: float(value) for name, value in values.items()}


def prometheus_value(platform, query):
    prometheus = platform.vars["observability_ports"]["prometheus"]
    url = f"http://127.0.0.1:{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    result = json.loads(get_text(url))["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def health_status(platform):
    """/health's HTTP status: 503 while the model loads, 0 while nothing listens."""
    try:
        with urllib.request.urlopen(base_url(platform) + "/health", timeout=5) as response:  # noqa: S310 - loopback
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def server_pid(platform):
    status = platform.ctl("pid", "llm-server")
    return int(status.stdout.strip()) if status.stdout.strip().isdigit() else 0


# ---- bad input --------------------------------------------------------------------------------------------


def test_bad_settings_fail_in_preflight_and_create_nothing(platform):
    result = platform.run(
        "phase3.yml",
        *("-e", "llm_serving_model=Mistral-7B", "-e", "llm_serving_max_model_len=100000"),
        *("-e", "rag_service_reranker=magic", "-e", "rag_service_chunk_overlap_tokens=160"),
    )
    assert result.rc != 0
    output = " ".join(result.output.split())
    assert "rag_service_reranker: 'magic' is not accepted (accepted: hybrid, none, cross-encoder)" in output
    assert "rag_service_chunk_overlap_tokens: '160' is out of range (accepted: a number >= 0 <= 159)" in output
    assert "llm_serving_model: 'Mistral-7B' is not a model name" in output, result.tail()
    too_long = "llm_serving_max_model_len: '100000' is out of range (accepted: a number >= 128 <= 8192)"
    assert too_long in output, result.tail()
    assert not platform.home.exists(), "preflight failed but the platform home was created"


# ---- bring-up ---------------------------------------------------------------------------------------------


def test_phase1_then_phase3_from_nothing(platform):
    assert_ok(platform.run("phase1.yml", timed="phase1 from nothing"), "phase1.yml")
    result = platform.run("phase3.yml", timed="phase3 from nothing")
    assert_ok(result, "phase3.yml")
    assert f"OpenAI API:      {base_url(platform)}/v1 (model {MODEL})" in result.output
    assert platform.healthy(ALL_SERVICES), platform.ctl("status").stdout + platform.log_tail("llm-server")
    assert BUILD_CACHE.is_file()


def test_the_openai_client_gets_a_chat_completion(platform):
    llm = client(platform)
    assert MODEL in [model.id for model in llm.models.list()]
    answer = llm.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=16,
        temperature=0,
    )
    text = answer.choices[0].message.content
    assert text.strip(), answer
    assert "paris" in text.lower(), text
    assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens <= 16


def test_the_roadmaps_generate_request_works_as_a_completion(platform):
    # The roadmap's `curl .../generate -d '{"prompt": ..., "max_tokens": 50}'`, on the OpenAI route both
    # targets serve (README, Phase 3).
    request = {"model": MODEL, "prompt": "Explain MLOps in one sentence:", "max_tokens": 50}
    answer = post_json(base_url(platform) + "/v1/completions", request)
    assert answer["choices"][0]["text"].strip(), answer
    assert 0 < answer["usage"]["completion_tokens"] <= 50


def test_token_counters_grow_by_the_tokens_a_request_reported(platform):
    before = server_counters(platform)
    # A prompt no earlier request began with, and no prompt cache: every prompt token is processed.
    answer = post_json(
        base_url(platform) + "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Count from one to five. ({os.getpid()})"}],
            "max_tokens": 24,
            "cache_prompt": False,
        },
    )
    after = server_counters(platform)
    assert after["tokens_predicted_total"] - before["tokens_predicted_total"] == answer["usage"]["completion_tokens"]
    assert after["prompt_tokens_total"] - before["prompt_tokens_total"] == answer["usage"]["prompt_tokens"]

    # Prometheus scrapes the same numbers from the target it was given.
    wait_until(
        lambda: prometheus_value(platform, 'up{job="llm-server",component="llm-serving"}') == 1,
        timeout=90,
        what="the llm-server target UP in Prometheus",
    )
    wait_until(
        lambda: (
            prometheus_value(platform, 'llamacpp:tokens_predicted_total{job="llm-server"}')
            == after["tokens_predicted_total"]
        ),
        timeout=90,
        what="Prometheus to scrape the token counter after the request",
    )


def test_the_load_benchmark_runs_and_reports_every_level(platform):
    few = ["--concurrency", "1", "2", "--requests", "1", "--max-tokens", "8", "--json"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/llm_load.py"), "--url", base_url(platform), *few],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    levels = json.loads(proc.stdout)["levels"]
    assert [(level["concurrency"], level["requests"], level["errors"]) for level in levels] == [(1, 1, 0), (2, 2, 0)]
    assert all(0 < level["completion_tokens"] <= 8 * level["requests"] for level in levels), levels
    assert all(level["ttft_p50_ms"] > 0 and level["latency_p99_s"] >= level["latency_p50_s"] for level in levels)


def test_tokens_and_their_cost_are_recorded_and_shown_on_the_status_page(platform):
    # The requests above are in the 5-minute window of the recording rules.
    server = 'component="llm-serving"'
    wait_until(
        lambda: (prometheus_value(platform, f"llm:cost_usd_per_1k_tokens{{{server}}}") or 0) > 0,
        timeout=120,
        what="Prometheus to record the LLM server's cost per 1000 tokens",
    )
    assert prometheus_value(platform, f"llm:completion_tokens:rate5m{{{server}}}") > 0
    # The price model at one evaluation: 1.006 USD/h over (prompt + completion tokens/s) * 3600 / 1000.
    spread = (
        f"llm:cost_usd_per_1k_tokens{{{server}}} * (llm:prompt_tokens:rate5m{{{server}}}"
        f" + llm:completion_tokens:rate5m{{{server}}}) * 3.6"
    )
    assert abs(prometheus_value(platform, spread) - 1.006) < 1e-6
    page = get_text(platform.url("prometheus", "/consoles/platform.html"))
    table = page.split('<table id="llm">', 1)[1].split("</table>", 1)[0]
    assert "<td>llm-serving</td>" in table, table
    assert "- (no request counter)" in table, table


def test_supervisord_restarts_a_killed_server_and_a_rerun_converges(platform):
    old = server_pid(platform)
    assert old > 0, platform.ctl("status").stdout
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: server_pid(platform) not in (0, old), timeout=60, what="supervisord to restart llm-server")
    wait_until(lambda: health_status(platform) == 200, timeout=60, what="the restarted server's /health")
    result = platform.run("phase3.yml", timed="phase3 after a killed server")
    assert_ok(result, "phase3.yml after a killed server")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def rag_sql(platform, sql):
    """psql as the RAG database's owner, with the generated password: unaligned rows."""
    secret = json.loads((platform.home / "secrets/postgresql-db-rag.json").read_text())
    port = str(platform.vars["postgresql_port"])
    proc = subprocess.run(
        ["psql", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port, "-U", "rag", "rag", "-c", sql],
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": secret["password"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_vector_database_has_pgvector_the_documents_schema_and_answers_a_nearest_neighbour_query(platform):
    assert rag_sql(platform, "SELECT extversion FROM pg_extension WHERE extname = 'vector'") == "0.8.0"
    column = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'documents'::regclass"
    assert rag_sql(platform, f"{column} AND attname = 'embedding'") == "vector(384)"
    index = rag_sql(platform, "SELECT indexdef FROM pg_indexes WHERE indexname = 'documents_embedding_idx'")
    assert "USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64')" in index
    assert rag_sql(platform, "SELECT string_agg(version::text, ',') FROM schema_migrations") == "1"

    def vector(hot):
        return "[" + ",".join("1" if i == hot else "0.01" for i in range(384)) + "]"

    rows = ", ".join(f"('test-knn', {i}, 'chunk {i}', '{vector(i)}')" for i in range(3))
    nearest = rag_sql(
        platform,
        f"INSERT INTO documents (source, chunk_index, content, embedding) VALUES {rows};"  # noqa: S608 - the test's own rows
        f" SELECT content FROM documents ORDER BY embedding <=> '{vector(2)}' LIMIT 1;"
        " DELETE FROM documents WHERE source = 'test-knn';",
    )
    assert nearest.splitlines()[0] == "chunk 2", nearest
    with pytest.raises(AssertionError, match="expected 384 dimensions, not 1"):
        rag_sql(platform, "INSERT INTO documents (source, chunk_index, content, embedding) VALUES ('x', 0, 'x', '[1]')")


def test_the_eks_migration_jobs_sql_builds_the_same_schema_on_a_real_postgresql(platform, tmp_path):
    """vector_db's eks Job (psql against RDS) run here against the platform's PostgreSQL with pgvector, into a
    database of its own: first run, rerun (nothing applied again), and a changed dimension refused by name."""
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    render = platform.run(str(ROOT / "tests/platform/playbooks/vector_db_eks_sql.yml"), "-e", f"dest={sql_dir}")
    assert_ok(render, "rendering the Job's SQL")
    superuser = json.loads((platform.home / "secrets/postgresql.json").read_text())["superuser_password"]
    base = {"PATH": "/usr/bin:/bin", "PGHOST": "127.0.0.1", "PGPORT": str(platform.vars["postgresql_port"])}

    def job():
        """The Job's two psql runs, as its container runs them: (returncode, output)."""
        env = base | {"OWNER_PASSWORD": "eks-owner-pw-0", "PGUSER": "postgres", "PGPASSWORD": superuser}
        first = ["psql", "-X", "-d", "postgres", "-v", "owner=rag_eks", "-v", "database=rag_eks"]
        steps = [([*first, "-f", "bootstrap.sql"], env)]
        owner = base | {"PGUSER": "rag_eks", "PGPASSWORD": "eks-owner-pw-0"}
        steps.append((["psql", "-X", "-d", "rag_eks", "-f", "migrate.sql"], owner))
        output = ""
        for command, step_env in steps:
            proc = subprocess.run(
                command, cwd=sql_dir, env=step_env, capture_output=True, text=True, timeout=120, check=False
            )
            output += proc.stdout + proc.stderr
            if proc.returncode:
                return proc.returncode, output
        return 0, output

    def owner_sql(sql):
        proc = subprocess.run(
            ["psql", "-qAtX", "-d", "rag_eks", "-c", sql],
            env=base | {"PGUSER": "rag_eks", "PGPASSWORD": "eks-owner-pw-0"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return proc.stdout.strip()

    try:
        rc, output = job()
        assert rc == 0, output
        assert "applied migration 001_documents.sql" in output and "built the embedding index" in output, output
        assert owner_sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'") == "0.8.0"
        column = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'documents'::regclass"
        assert owner_sql(f"{column} AND attname = 'embedding'") == "vector(384)"
        index = "SELECT indexdef FROM pg_indexes WHERE indexname = 'documents_embedding_idx'"
        assert owner_sql(index) == rag_sql(platform, index)  # what the standalone role made
        assert owner_sql("SELECT tableowner FROM pg_tables WHERE tablename = 'documents'") == "rag_eks"
        rc, output = job()
        assert rc == 0, output
        assert "applied migration" not in output and "built the embedding index" not in output, output
        again = platform.run(
            str(ROOT / "tests/platform/playbooks/vector_db_eks_sql.yml"),
            "-e",
            f"dest={sql_dir}",
            "-e",
            "vector_db_embedding_dim=768",
        )
        assert_ok(again, "rendering with another dimension")
        rc, output = job()
        assert rc != 0
        assert "vector_db_embedding_dim is 768 but documents.embedding in rag holds vector(384)" in output, output
    finally:
        cleanup = base | {"PGUSER": "postgres", "PGPASSWORD": superuser}
        for sql in ("DROP DATABASE IF EXISTS rag_eks", "DROP ROLE IF EXISTS rag_eks"):
            subprocess.run(["psql", "-qX", "-d", "postgres", "-c", sql], env=cleanup, timeout=60, check=False)


def rag(platform, method, path, body=None, raw=None):
    """(status, JSON) of a request to the RAG service; errors are answers too."""
    url = f"http://127.0.0.1:{platform.vars['rag_service_port']}{path}"
    assert url.startswith("http://127.0.0.1:"), url
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=180) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def rag_health(platform):
    """/health's status code, 0 while nothing listens (a service just started)."""
    try:
        return rag(platform, "GET", "/health")[0]
    except (urllib.error.URLError, ConnectionError):
        return 0


def rag_sources(platform):
    status, body = rag(platform, "GET", "/v1/sources")
    assert status == 200, body
    return {source["source"]: source for source in body["sources"]}


def rag_ingest(platform, directory):
    return platform.run("rag_ingest.yml", "-e", json.dumps({"rag_service_ingest_dirs": [str(directory)]}))


def test_the_sample_corpus_is_ingested_and_a_question_gets_its_passage_first_and_an_answer_citing_it(platform):
    sources = rag_sources(platform)
    shipped = {f"docs/{path.relative_to(ROOT / 'docs')}" for path in (ROOT / "docs").rglob("*.md")}
    assert shipped == set(sources), sorted(shipped ^ set(sources))
    chunks = sum(source["chunks"] for source in sources.values())
    assert rag_sql(platform, "SELECT count(*) FROM documents") == str(chunks)

    status, reply = rag(platform, "POST", "/v1/query", {"question": BACKUP_QUESTION["question"], "top_k": 5})
    assert status == 200, reply
    first = reply["passages"][0]
    assert (first["source"], first["section"]) == (BACKUP_QUESTION["source"], BACKUP_QUESTION["section"]), reply
    assert "pg_restore" in first["content"] or "restore" in first["content"].lower(), first
    assert reply["answer"].strip(), reply
    assert reply["citations"][0] == {"n": 1, **{k: first[k] for k in ("source", "chunk_index", "section")}}
    assert reply["usage"]["completion_tokens"] > 0 and reply["usage"]["prompt_tokens"] > 0, reply
    assert set(reply["timings_ms"]) == {"embed_ms", "search_ms", "rerank_ms", "generate_ms"}, reply


def test_the_roadmaps_query_returns_the_nearest_passages_by_cosine_distance(platform):
    status, reply = rag(
        platform, "POST", "/v1/search", {"question": "rotate a leaked key", "top_k": 5, "rerank": "none"}
    )
    assert status == 200, reply
    distances = [passage["distance"] for passage in reply["passages"]]
    assert len(distances) == 5 and distances == sorted(distances), distances
    assert "answer" not in reply


def mean_reciprocal_rank(platform, rerank):
    total = 0.0
    for item in EVALUATION:
        status, reply = rag(
            platform, "POST", "/v1/search", {"question": item["question"], "top_k": 10, "rerank": rerank}
        )
        assert status == 200, reply
        ranks = [
            rank
            for rank, passage in enumerate(reply["passages"], 1)
            if (passage["source"], passage["section"]) == (item["source"], item["section"])
        ]
        total += 1 / ranks[0] if ranks else 0.0
    return total / len(EVALUATION)


def test_hybrid_reranking_ranks_the_evaluation_set_better_than_cosine_distance_alone(platform):
    dense, hybrid = mean_reciprocal_rank(platform, "none"), mean_reciprocal_rank(platform, "hybrid")
    print(f"evaluation set MRR: cosine {dense:.3f}, hybrid {hybrid:.3f}")
    assert hybrid > dense, (dense, hybrid)


def test_reingest_writes_nothing_and_a_changed_document_replaces_its_chunks(platform):
    before = rag_sql(platform, "SELECT count(*), max(id) FROM documents")
    result = rag_ingest(platform, ROOT / "docs")
    assert_ok(result, "rag_ingest.yml of the unchanged docs")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert rag_sql(platform, "SELECT count(*), max(id) FROM documents") == before

    corpus = platform.base / "corpus"
    corpus.mkdir()
    note = corpus / "note.md"
    note.write_text("# Zebra protocol\n\n" + "The zebra protocol rotates the quokka keys every night. " * 60)
    result = rag_ingest(platform, corpus)
    assert_ok(result, "rag_ingest.yml of a new document")
    assert result.changed == 1 and "1 documents: 1 new, 0 replaced, 0 unchanged, 0 refused" in " ".join(
        result.output.split()
    )
    first = int(rag_sources(platform)["corpus/note.md"]["chunks"])
    assert first > 1

    note.write_text("# Zebra protocol\n\nThe zebra protocol was retired; the wombat protocol replaces it.\n")
    result = rag_ingest(platform, corpus)
    assert_ok(result, "rag_ingest.yml of a changed document")
    assert "1 new" not in result.output and "0 new, 1 replaced" in " ".join(result.output.split())
    # One chunk now, the new text only.
    rows = rag_sql(
        platform,
        "SELECT count(*), bool_and(content LIKE 'Zebra protocol%'), bool_or(content LIKE '%wombat%'),"
        " bool_or(content LIKE '%quokka%') FROM documents WHERE source = 'corpus/note.md'",
    )
    assert rows == "1|t|t|f", rows
    status, reply = rag(platform, "POST", "/v1/search", {"question": "Which protocol replaces the zebra protocol?"})
    assert status == 200, reply
    assert reply["passages"][0]["source"] == "corpus/note.md", reply


def test_bad_documents_and_questions_are_refused_by_name_and_nothing_of_them_is_written(platform):
    corpus = platform.base / "bad-corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text("The capybara runbook explains the capybara restart.\n")
    (corpus / "empty.md").write_text("  \n\n")
    (corpus / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    result = rag_ingest(platform, corpus)
    assert result.rc != 0
    output = " ".join(result.output.split())
    assert "refused 2 of 3 documents (the others are ingested)" in output, result.tail()
    assert "document 'bad-corpus/empty.md' is empty: nothing to ingest" in output
    assert "document 'bad-corpus/latin1.txt' is not UTF-8 text (byte 0xe9 at offset 3)" in output
    sources = rag_sources(platform)
    assert "bad-corpus/good.md" in sources
    assert "bad-corpus/empty.md" not in sources and "bad-corpus/latin1.txt" not in sources

    # One request with a good and an empty document writes neither.
    documents = [{"source": "mixed/good", "content": "fine text"}, {"source": "mixed/empty", "content": " "}]
    status, reply = rag(platform, "POST", "/v1/documents", {"documents": documents})
    assert status == 422 and reply["detail"] == "document 'mixed/empty' is empty: nothing to ingest", reply
    assert rag_sql(platform, "SELECT count(*) FROM documents WHERE source LIKE 'mixed/%'") == "0"

    status, reply = rag(platform, "POST", "/v1/query", {"question": "why " * 300})
    assert status == 422, reply
    assert reply["detail"].startswith("question is 300 tokens; the embedding model reads at most 256"), reply


def test_the_database_down_gives_503_and_the_service_recovers(platform):
    assert platform.ctl("stop", "postgresql").returncode == 0
    try:
        status, reply = rag(platform, "GET", "/health")
        assert status == 503 and reply["status"].startswith("database unavailable"), reply
        status, reply = rag(platform, "POST", "/v1/query", {"question": BACKUP_QUESTION["question"]})
        assert status == 503 and reply["detail"].startswith("database unavailable"), reply
        result = rag_ingest(platform, ROOT / "docs")
        assert result.rc != 0
        assert "is not ready (database unavailable" in " ".join(result.output.split()), result.tail()
    finally:
        assert platform.ctl("start", "postgresql").returncode == 0
    wait_until(lambda: rag_health(platform) == 200, timeout=60, what="the RAG service's /health")
    status, reply = rag(platform, "POST", "/v1/search", {"question": BACKUP_QUESTION["question"]})
    assert status == 200 and reply["passages"][0]["source"] == BACKUP_QUESTION["source"], reply


def test_the_documents_survive_a_restart_of_every_service(platform):
    before = rag_sources(platform)
    pids = platform.pids()
    assert platform.ctl("restart", "all").returncode == 0
    wait_until(lambda: platform.healthy(ALL_SERVICES), timeout=120, what="every service after a restart")
    assert not set(pids.items()) & set(platform.pids().items()), "a service kept its pid"
    wait_until(lambda: rag_health(platform) == 200, timeout=60, what="the RAG service's /health")
    assert rag_sources(platform) == before
    status, reply = rag(platform, "POST", "/v1/query", {"question": BACKUP_QUESTION["question"], "max_tokens": 16})
    assert status == 200 and reply["passages"][0]["section"] == BACKUP_QUESTION["section"], reply
    assert reply["answer"].strip()


def test_the_rag_service_is_measured_and_scraped(platform):
    text = get_text(f"http://127.0.0.1:{platform.vars['rag_service_port']}/metrics")
    generated = re.search(r'^rag_stage_duration_seconds_count\{stage="generate"\} (\S+)$', text, re.M)
    assert generated and float(generated.group(1)) >= 1, text[:2000]
    assert re.search(r'^rag_llm_tokens_total\{kind="completion"\} [1-9]', text, re.M), text[:2000]
    wait_until(
        lambda: prometheus_value(platform, 'up{job="rag-service", component="rag-service"}') == 1.0,
        timeout=90,
        what="Prometheus to scrape rag-service",
    )


def test_the_rag_benchmark_runs_and_reports_every_part(platform):
    proc = subprocess.run(
        [
            str(platform.home / "venvs/rag_service/bin/python"),
            str(ROOT / "benchmarks/rag.py"),
            *("--home", str(platform.home), "--url", f"http://127.0.0.1:{platform.vars['rag_service_port']}"),
            *("--chunks", "300", "--queries", "10", "--ingest-docs", "1", "--cache", str(platform.base / "bench")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^ingest  1 documents, \d+ chunks: batched \(service\) [\d.]+ s", proc.stdout, re.M), proc.stdout
    assert re.search(r"one COPY [\d.]+ ms = \d+x$", proc.stdout, re.M), proc.stdout
    recalls = [float(r) for r in re.findall(r"recall@10 vs exact ([\d.]+) \(10 queries\)", proc.stdout)]
    assert len(recalls) == 2 and all(0 <= r <= 1 for r in recalls), proc.stdout
    assert re.search(
        r"^quality rerank hybrid: hit@1 [\d.]+, hit@3 [\d.]+, MRR [\d.]+ \(20 questions\)$", proc.stdout, re.M
    )
    # Its scratch tables and sources are gone.
    assert rag_sql(platform, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_%'") == "0"
    assert not [source for source in rag_sources(platform) if source.startswith("bench-ingest/")]


def test_second_run_changes_and_builds_nothing(platform):
    built = BUILD_CACHE.stat().st_mtime_ns
    installed = (platform.home / "llm-serving/bin/llama-server").stat().st_mtime_ns
    result = platform.run("phase3.yml", timed="phase3 rerun")
    assert_ok(result, "second phase3.yml")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert "Compile llama-server" not in result.output
    assert BUILD_CACHE.stat().st_mtime_ns == built
    assert (platform.home / "llm-serving/bin/llama-server").stat().st_mtime_ns == installed


def test_check_mode_changes_nothing(platform):
    result = platform.run("phase3.yml", "--check", timed="phase3 check mode")
    assert_ok(result, "phase3.yml --check")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_teardown_removes_the_server_and_keeps_the_build(platform):
    result = platform.run("teardown.yml", "--tags", "phase3", timed="teardown phase3")
    assert_ok(result, "teardown.yml --tags phase3")
    assert "llm-server" not in platform.ctl("status").stdout
    assert not (platform.home / "llm-serving").exists()
    assert "vector_db: the database rag (documents and embeddings) is kept" in " ".join(result.output.split())
    assert rag_sql(platform, "SELECT count(*) FROM schema_migrations") == "1"
    assert "rag-service" not in platform.ctl("status").stdout
    assert not (platform.home / "rag_service").exists() and not (platform.home / "venvs/rag_service").exists()
    assert int(rag_sql(platform, "SELECT count(*) FROM documents WHERE source LIKE 'docs/%'")) > 100
    assert BUILD_CACHE.is_file(), "teardown removed the shared build cache"
    # The model package stays unless llm_serving_delete_data=true.
    assert (platform.home / "venvs/llm-model").is_dir()
