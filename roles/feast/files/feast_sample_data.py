"""Writes the example feature view's sample data into the offline store, once.

Reads the data lake's sample users (user_id, age, country, event_timestamp) and writes them as Parquet to
--dest (s3://bucket/key or a local path) with event timestamps within the last day, so that the 1-day TTL of
user_features materialises them. Every tenth user also gets an older row (30 hours earlier, a year younger),
which point-in-time joins must pick for times before the newer row. An existing file is left alone.
Prints one JSON line: {"changed": bool, "path": ..., "rows": n, "anchor": ISO time of the newest row}.
"""

import argparse
import json
import sys

import pandas as pd


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="CSV with user_id, age, country, event_timestamp")
    parser.add_argument("--dest", required=True, help="where the Parquet file goes (s3://bucket/key or a path)")
    parser.add_argument("--endpoint", default="", help="S3 endpoint other than AWS")
    parser.add_argument("--check", action="store_true", help="only say whether the file would be written")
    args = parser.parse_args()

    storage = {"client_kwargs": {"endpoint_url": args.endpoint}} if args.endpoint else {}
    if args.dest.startswith("s3://"):
        import s3fs

        exists = s3fs.S3FileSystem(**storage).exists(args.dest)
    else:
        import os

        exists = os.path.exists(args.dest)
    if exists or args.check:
        print(json.dumps({"changed": not exists, "path": args.dest, "rows": None, "anchor": None}))
        return 0

    users = pd.read_csv(args.source)
    missing = {"user_id", "age", "country"} - set(users.columns)
    if missing:
        sys.exit(f"{args.source} lacks the columns {sorted(missing)}")
    anchor = pd.Timestamp.now(tz="UTC").floor("min") - pd.Timedelta(minutes=1)
    # Spread over the last 20 hours: user n is (n mod 20) hours and (n mod 60) minutes old.
    offsets = pd.to_timedelta(users.index % 20, unit="h") + pd.to_timedelta(users.index % 60, unit="m")
    current = pd.DataFrame(
        {
            "user_id": users["user_id"].astype("int64"),
            "age": users["age"].astype("int64"),
            "country": users["country"].astype(str),
            "event_timestamp": anchor - offsets,
        }
    )
    older = current[current["user_id"] % 10 == 0].copy()
    older["age"] = older["age"] - 1
    older["event_timestamp"] = older["event_timestamp"] - pd.Timedelta(hours=30)
    rows = pd.concat([older, current]).sort_values(["user_id", "event_timestamp"]).reset_index(drop=True)
    rows.to_parquet(args.dest, index=False, storage_options=storage or None)
    print(json.dumps({"changed": True, "path": args.dest, "rows": len(rows), "anchor": anchor.isoformat()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
