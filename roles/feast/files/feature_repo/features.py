"""The platform's example features (roadmap Phase 2, Week 5): what is known about a user, by user_id.

Written with the current Feast API: `Field` with types from `feast.types`, `schema=` and `timestamp_field=`
(the roadmap's `Feature`, `ValueType` features and `event_timestamp_column` were removed from Feast).

Where the data lives comes from the environment, which the platform sets (feast.env next to this
repository; on eks, the ConfigMap of the Job and the feature server):
  ARGOEKS_FEAST_USER_FEATURES  the Parquet file, e.g. s3://argoeks-feast-offline-dev/user_features.parquet
  ARGOEKS_FEAST_S3_ENDPOINT    an S3 endpoint other than AWS (the local object store); empty for AWS
Without them the file is data/user_features.parquet in this repository, for trying it out on a laptop.
"""

import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource
from feast.types import Int64, String
from feast.value_type import ValueType

user = Entity(
    name="user_id",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="A user of the platform's products",
)

user_source = FileSource(
    name="user_features_source",
    path=os.environ.get("ARGOEKS_FEAST_USER_FEATURES") or "data/user_features.parquet",
    timestamp_field="event_timestamp",
    s3_endpoint_override=os.environ.get("ARGOEKS_FEAST_S3_ENDPOINT") or None,
    description="One row per user and change: user_id, age, country, event_timestamp",
)

user_features = FeatureView(
    name="user_features",
    entities=[user],
    ttl=timedelta(days=1),
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="country", dtype=String),
    ],
    online=True,
    source=user_source,
    tags={"team": "mlops", "roadmap": "phase2-week5"},
)
