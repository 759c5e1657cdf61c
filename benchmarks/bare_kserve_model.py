#!/usr/bin/env python3
"""The baseline benchmarks/model_load.py compares the platform's model server with.

The plainest KServe custom model for the same MLflow model files: load the scikit-learn model once,
answer ``{"instances": [...]}`` with ``model.predict(numpy.asarray(instances))``, nothing else (no
signature checks, batching, metrics or version swaps). Run it with the model server's virtualenv
(it has kserve, mlflow-skinny and scikit-learn); the access log is off, as on the platform's server.

    <platform_home>/venvs/model-server/bin/python benchmarks/bare_kserve_model.py \
        --model_dir <platform_home>/model-serving/models/iris-classifier/1 --model_name iris-classifier --http_port 8090
"""

import argparse
import logging
import sys
import warnings
from pathlib import Path

import kserve
import mlflow.sklearn
import numpy as np

# The platform server's own listen_on(): KServe binds every interface otherwise.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "roles/model_serving/files"))
from argoeks_model_server import listen_on


class BareModel(kserve.Model):
    def __init__(self, name, model_dir):
        super().__init__(name)
        self.model_dir = model_dir

    def load(self):
        self.model = mlflow.sklearn.load_model(self.model_dir)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        return {"predictions": self.model.predict(np.asarray(payload["instances"])).tolist()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    args, _ = parser.parse_known_args()
    listen_on(args.bind)
    model = BareModel(args.model_name, args.model_dir)
    model.load()
    server = kserve.ModelServer(http_port=args.http_port, enable_grpc=False, workers=1, enable_latency_logging=False)
    # As on the platform's server: no per-request log lines, no FastAPI deprecation note per answer.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("kserve.trace").disabled = True
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    server.start([model])


if __name__ == "__main__":
    main()
