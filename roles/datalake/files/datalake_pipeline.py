"""The data lake's quality gate: bronze -> checks -> silver -> gold.

    python datalake_pipeline.py --spec SPEC.json --dataset users --source batch.csv \
        --bronze B --silver S --gold G [--report-dir DIR]

1. The batch (a CSV file) is identified by its content (sha256). A batch whose report already
   exists in bronze is not processed again: the run reports `changed: false`.
2. The raw file lands in bronze: <dataset>/ingest_date=<YYYY-MM-DD>/<batch>.csv.
3. It is checked against the dataset's declared rules with pandera (types, nulls, ranges,
   allowed values, patterns, uniqueness; every failure is collected, not just the first).
   The report goes to bronze (_reports/<dataset>/<batch>.json) and to --report-dir.
4. A passing batch is written to silver as Parquet (<dataset>/batch=<batch>/part-0.parquet),
   then every gold aggregate of the dataset is rebuilt from all silver batches (latest row per
   key wins) and written to gold (<aggregate>/part-0.parquet; gold keeps versions).
   A failing batch never reaches silver: exit code 3, with the report.

Prints one JSON object: changed, status (promoted | rejected | already-promoted |
already-rejected), batch, rows, report, failures. S3 endpoints and credentials come from the
usual AWS environment (AWS_ENDPOINT_URL_S3, ...).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import sys
from pathlib import Path

import boto3
import pandas as pd
import pandera.pandas as pa
from botocore.exceptions import ClientError

REJECTED = 3
TYPES = {"int": "Int64", "float": "Float64", "str": "string", "bool": "boolean", "datetime": "datetime64[ns, UTC]"}
AGGREGATIONS = {"count", "sum", "mean", "min", "max", "nunique"}


def schema_for(spec: dict) -> pa.DataFrameSchema:
    """The pandera schema of a dataset's declared columns (strict: no undeclared columns)."""
    columns = {}
    for name, rules in spec["columns"].items():
        checks = []
        if rules.get("min") is not None:
            checks.append(pa.Check.ge(rules["min"]))
        if rules.get("max") is not None:
            checks.append(pa.Check.le(rules["max"]))
        if rules.get("allowed"):
            checks.append(pa.Check.isin(rules["allowed"]))
        if rules.get("pattern"):
            checks.append(pa.Check.str_matches(rules["pattern"]))
        columns[name] = pa.Column(
            TYPES[rules["type"]],
            checks=checks,
            nullable=bool(rules.get("nullable", True)),
            unique=bool(rules.get("unique", False)),
            coerce=True,
        )
    return pa.DataFrameSchema(columns, strict=True, ordered=False)


def check(frame: pd.DataFrame, spec: dict) -> tuple[pd.DataFrame | None, list[dict]]:
    """(validated frame, []) when the batch passes; (None, failures) when it does not."""
    try:
        return schema_for(spec).validate(frame, lazy=True), []
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        failures = []
        for (column, rule), group in cases.groupby(["column", "check"], dropna=False, sort=True):
            examples = [None if pd.isna(v) else str(v) for v in group["failure_case"].head(5)]
            rows = [int(i) for i in group["index"].dropna().head(5)]
            failures.append(
                {
                    "column": None if pd.isna(column) else str(column),
                    "check": str(rule),
                    "failed_rows": len(group),
                    "examples": examples,
                    "row_numbers": rows,
                }
            )
        return None, failures


class Lake:
    def __init__(self, bronze: str, silver: str, gold: str):
        self.s3 = boto3.client("s3")
        self.bronze, self.silver, self.gold = bronze, silver, gold

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def rebuild_gold(lake: Lake, spec: dict) -> list[str]:
    """Every gold aggregate of the dataset, from all silver batches; returns the keys written."""
    if not spec.get("gold"):
        return []
    parts = [
        pd.read_parquet(io.BytesIO(lake.get(lake.silver, key))) for key in lake.keys(lake.silver, f"{spec['name']}/")
    ]
    if not parts:
        return []
    rows = pd.concat(parts, ignore_index=True)
    if spec.get("key"):
        rows = rows.drop_duplicates(subset=[spec["key"]], keep="last")
    written = []
    for aggregate in spec["gold"]:
        named = {out: pd.NamedAgg(column=col, aggfunc=func) for out, (col, func) in aggregate["aggregations"].items()}
        table = rows.groupby(aggregate["group_by"], dropna=False).agg(**named).reset_index()
        key = f"{aggregate['name']}/part-0.parquet"
        lake.put(lake.gold, key, parquet(table), "application/vnd.apache.parquet")
        written.append(f"s3://{lake.gold}/{key}")
    return written


def run(args: argparse.Namespace) -> tuple[int, dict]:
    specs = {spec["name"]: spec for spec in json.loads(Path(args.spec).read_text())}
    if args.dataset not in specs:
        return 2, {"failed": True, "msg": f"unknown dataset {args.dataset!r} (declared: {', '.join(sorted(specs))})"}
    spec = specs[args.dataset]
    raw = Path(args.source).read_bytes()
    batch = hashlib.sha256(raw).hexdigest()[:16]
    lake = Lake(args.bronze, args.silver, args.gold)
    report_key = f"_reports/{spec['name']}/{batch}.json"

    previous = lake.get(lake.bronze, report_key)
    if previous is not None:
        report = json.loads(previous)
        already = {"status": f"already-{report['status']}", "changed": False}
        return (REJECTED if report["status"] == "rejected" else 0), _result(report, already, args, report_key, lake)

    today = dt.datetime.now(dt.UTC)
    raw_key = f"{spec['name']}/ingest_date={today:%Y-%m-%d}/{batch}.csv"
    lake.put(lake.bronze, raw_key, raw, "text/csv")

    frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=True)
    valid, failures = check(frame, spec)
    report = {
        "dataset": spec["name"],
        "batch": batch,
        "source": str(args.source),
        "bronze": f"s3://{lake.bronze}/{raw_key}",
        "rows": len(frame),
        "checked_at": today.isoformat(timespec="seconds"),
        "rules": spec["columns"],
        "status": "promoted" if valid is not None else "rejected",
        "failures": failures,
        "silver": None,
        "gold": [],
    }
    if valid is not None:
        silver_key = f"{spec['name']}/batch={batch}/part-0.parquet"
        lake.put(lake.silver, silver_key, parquet(valid), "application/vnd.apache.parquet")
        report["silver"] = f"s3://{lake.silver}/{silver_key}"
        report["gold"] = rebuild_gold(lake, spec)
    # The report is written last: a batch interrupted half-way is processed again on the next run.
    lake.put(lake.bronze, report_key, json.dumps(report, indent=2).encode(), "application/json")
    code = 0 if valid is not None else REJECTED
    return code, _result(report, {"status": report["status"], "changed": True}, args, report_key, lake)


def _result(report: dict, outcome: dict, args: argparse.Namespace, report_key: str, lake: Lake) -> dict:
    if args.report_dir:
        local = Path(args.report_dir) / report["dataset"] / f"{report['batch']}.json"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(json.dumps(report, indent=2))
    return {
        **outcome,
        "dataset": report["dataset"],
        "batch": report["batch"],
        "rows": report["rows"],
        "report": f"s3://{lake.bronze}/{report_key}",
        "silver": report["silver"],
        "gold": report["gold"],
        "failures": report["failures"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON list of dataset specs (datalake_datasets)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--source", required=True, help="CSV file of the batch")
    parser.add_argument("--bronze", required=True)
    parser.add_argument("--silver", required=True)
    parser.add_argument("--gold", required=True)
    parser.add_argument("--report-dir", default="")
    args = parser.parse_args(argv)
    try:
        code, result = run(args)
    except (ClientError, OSError, ValueError, KeyError) as error:
        code, result = 1, {"failed": True, "msg": f"{type(error).__name__}: {error}"}
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
