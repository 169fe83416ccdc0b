"""Journal events as MLflow runs: a parent run per study, nested runs for trials and retrain seeds.

Runs are found by a `snakesweep.key` tag, never remembered across processes, so every event can
be applied twice (a shipper killed between logging and saving its progress) without a trace:
metrics carry the event's timestamp and step, and MLflow drops an exact duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

from snakesweep.tracking.target import Target

KEY = "snakesweep.key"
PARENT = "mlflow.parentRunId"
# Optuna's states as MLflow run statuses: a pruned trial was stopped early by the sweep.
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
STATE = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
_MAX_VALUE = 5000  # MLflow's smallest limit on a param or tag value


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_VALUE]


def _params(values: Mapping[str, Any]) -> list[Param]:
    return [Param(str(key), _text(value)) for key, value in values.items()]


def _tags(values: Mapping[str, Any]) -> list[RunTag]:
    return [RunTag(f"snakesweep.{key}", _text(value)) for key, value in values.items() if value is not None]


def _metrics(values: Mapping[str, float], at: int, step: int = 0) -> list[Metric]:
    return [Metric(key, float(value), at, step) for key, value in values.items()]


class Runs:
    """The runs of one study in one MLflow experiment."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.client = MlflowClient(target.uri())
        self._experiment: str | None = None
        self._ids: dict[str, str] = {}

    def apply(self, event: Mapping[str, Any]) -> None:
        getattr(self, "_on_" + event["event"])(event)

    # -- events ---------------------------------------------------------------------------
    def _on_study(self, event: Mapping[str, Any]) -> None:
        self.client.log_batch(self.parent(), params=_params(event["params"]), tags=_tags(event["tags"]))

    def _on_trial_started(self, event: Mapping[str, Any]) -> None:
        number = event["number"]
        run = self.run(f"trial:{number}", f"trial {number}", event["at"])
        tags = {"trial": number, "worker": event["worker"], "trial_dir": event["dir"],
                "retry_of": event.get("retry_of")}
        self.client.log_batch(run, params=_params(event["params"]), tags=_tags(tags))

    def _on_epoch(self, event: Mapping[str, Any]) -> None:
        run = self.run(f"trial:{event['number']}", f"trial {event['number']}", event["at"])
        self.client.log_batch(run, metrics=_metrics(event["metrics"], event["at"], event["epoch"]))

    def _on_trial_finished(self, event: Mapping[str, Any]) -> None:
        run = self.run(f"trial:{event['number']}", f"trial {event['number']}", event["at"])
        tags = {"state": STATE.get(event["state"], "failed"), "reason": event.get("reason"),
                "resume_dir": event["resume"]["dir"], "resume_epoch": event["resume"]["epoch"]}
        self.client.log_batch(run, metrics=_metrics(event["metrics"], event["at"]), tags=_tags(tags))
        self.client.set_terminated(run, STATUS.get(event["state"], "FAILED"), end_time=event["at"])

    def _on_seed_tested(self, event: Mapping[str, Any]) -> None:
        seed = event["seed"]
        for old in self._search(f"tags.`snakesweep.seed` = '{seed}' and tags.`snakesweep.role` = 'retrain'"):
            if old.data.tags.get(KEY) != self._key(f"seed:{seed}:{event['id']}"):
                self.client.delete_run(old.info.run_id)  # one run per seed: the latest retraining
        run = self.run(f"seed:{seed}:{event['id']}", f"retrain seed {seed}", event["at"], role="retrain")
        metrics = [m for epoch, values in event["epochs"].items() for m in _metrics(values, event["at"], int(epoch))]
        metrics += _metrics(event["metrics"], event["at"])
        self.client.log_batch(run, metrics=metrics, params=_params({**event["params"], "seed": seed}),
                              tags=_tags({"seed": seed, "model_dir": event["dir"]}))
        self.client.set_terminated(run, "FINISHED", end_time=event["at"])

    def _on_selected(self, event: Mapping[str, Any]) -> None:
        parent = self.parent(merge=True)
        self.client.log_batch(parent, metrics=_metrics(event["metrics"], event["at"]), tags=_tags(event["tags"]))
        # Trials whose worker died before it could say how they ended: the study knows.
        for run in self._search("tags.`snakesweep.role` = 'trial' and attributes.status = 'RUNNING'"):
            state = event["states"].get(run.data.tags.get("snakesweep.trial", ""), "RUNNING")
            if state in STATUS:
                self.client.set_tag(run.info.run_id, "snakesweep.state", STATE[state])
                self.client.set_terminated(run.info.run_id, STATUS[state], end_time=event["at"])

    def _on_tested(self, event: Mapping[str, Any]) -> None:
        parent = self.parent()
        self.client.log_batch(parent, metrics=_metrics(event["metrics"], event["at"]))
        self.client.set_terminated(parent, "FINISHED", end_time=event["at"])

    # -- finding runs ---------------------------------------------------------------------
    def experiment(self) -> str:
        if self._experiment is None:
            found = self.client.get_experiment_by_name(self.target.experiment)
            if found is None:
                try:
                    self._experiment = self.client.create_experiment(self.target.experiment)
                except Exception:  # another shipper created it first
                    found = self.client.get_experiment_by_name(self.target.experiment)
                    if found is None:
                        raise
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                self._experiment = found.experiment_id
        return self._experiment

    def _key(self, name: str) -> str:
        return f"{self.target.study}/{name}"

    def _search(self, where: str) -> list[Any]:
        runs = self.client.search_runs([self.experiment()], f"tags.`snakesweep.study` = '{self.target.study}' and {where}",
                                       run_view_type=ViewType.ACTIVE_ONLY, max_results=50000)
        return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))

    def _by_key(self, name: str) -> list[Any]:
        return self._search(f"tags.`{KEY}` = '{self._key(name)}'")

    def parent(self, merge: bool = False) -> str:
        """The study's run: found by its key, or created. Workers that raced to create it each made one:
        all agree on the oldest, and `merge` (the single select step) moves the others' children to it."""
        if "study" in self._ids and not merge:
            return self._ids["study"]
        found = self._by_key("study")
        if not found:
            self._create("study", self.target.study, "study", None)
            found = self._by_key("study")
        keeper, *others = found
        if merge:
            for other in others:
                for child in self._search(f"tags.`{PARENT}` = '{other.info.run_id}'"):
                    self.client.set_tag(child.info.run_id, PARENT, keeper.info.run_id)
                self.client.delete_run(other.info.run_id)
        if keeper.info.status != "RUNNING" and "study" not in self._ids:
            self.client.update_run(keeper.info.run_id, status="RUNNING")  # trials are added to a finished study
        self._ids["study"] = keeper.info.run_id
        return keeper.info.run_id

    def run(self, name: str, title: str, at: int, role: str = "trial") -> str:
        """The run named `name` in this study, nested under the study's run; created when missing."""
        if name not in self._ids:
            found = self._by_key(name)
            self._ids[name] = found[0].info.run_id if found else self._create(name, title, role, self.parent(), at)
        return self._ids[name]

    def _create(self, name: str, title: str, role: str, parent: str | None, at: int | None = None) -> str:
        tags = {KEY: self._key(name), "snakesweep.study": self.target.study, "snakesweep.role": role,
                **({PARENT: parent} if parent else {})}
        return self.client.create_run(self.experiment(), start_time=at, tags=tags, run_name=title).info.run_id
