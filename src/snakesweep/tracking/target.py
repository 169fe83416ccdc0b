"""Where the runs go: the MLflow tracking URI (credentials from the environment, masked) and the experiment."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snakesweep import storage as storages
from snakesweep.errors import UserError
from snakesweep.paths import Paths

FIELD = "tracking.mlflow.tracking_uri"
# MLflow reads these itself; their values are masked like a password in the URL.
SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@dataclass(frozen=True)
class Target:
    """The tracking URI as configured (it may name `${VARIABLES}`), the experiment, and the study's name."""

    uri_template: str
    experiment: str
    study: str

    def uri(self, environ: Mapping[str, str] = os.environ) -> str:
        return storages.expand_url(self.uri_template, field=FIELD, environ=environ)

    def mask(self, text: str, environ: Mapping[str, str] = os.environ) -> str:
        """`text` without the URL's password or a token: the only form we print, log or write."""
        text = storages.mask_text(text, self.uri(environ))
        for name in SECRET_VARIABLES:
            if environ.get(name):
                text = text.replace(environ[name], "***")
        return text

    def masked_uri(self, environ: Mapping[str, str] = os.environ) -> str:
        return self.mask(self.uri(environ), environ)

    def as_dict(self) -> dict[str, str]:
        return {"uri": self.uri_template, "experiment": self.experiment, "study": self.study}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Target:
        return cls(data["uri"], data["experiment"], data["study"])


def target(config: Mapping[str, Any], study: str) -> Target | None:
    """Where `study` is tracked, or None when `tracking.mlflow` is off; a user error if it cannot be."""
    settings = config["tracking"]["mlflow"]
    if settings is None:
        return None
    if importlib.util.find_spec("mlflow") is None:
        raise UserError(
            "MLflow tracking is on, but the mlflow package is not installed",
            file="config",
            field="tracking.mlflow",
            fix="pip install -e '.[tracking]' (or set tracking.mlflow: null)",
        )
    default = f"sqlite:///{Paths.of(config).mlflow_db.resolve()}"
    result = Target(settings.get("tracking_uri") or default, settings.get("experiment") or config["study"]["name"], study)
    result.uri()  # every variable it names is set
    return result
