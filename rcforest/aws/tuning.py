"""Hyperparameter tuning jobs of ``rcforest aws``: random search over Random Cut Forest's tunable ranges.

A tuning job never has a thread of its own. CreateHyperParameterTuningJob
puts as many turns in the job queue as the job may run training jobs at
once (``MaxParallelTrainingJobs``, at most the queue's job threads); a turn
starts the next training job, runs it, scores the tuning job and puts a turn
back at the end of the queue while training jobs remain, so tuning jobs and
other jobs take turns. The best training job is the one with the best final
value of the objective metric (``test:f1`` and the other ``test:`` metrics).
"""

import copy
import functools
import random
import zlib

from rcforest.aws import jobs
from rcforest.aws.resources import ApiError, Job, copy_description, timestamp

__all__ = ["TuningActions"]


class TuningActions:
    """The tuning actions of :class:`rcforest.aws.sagemaker_api.SageMakerApi`."""

    def create_hyper_parameter_tuning_job(self, request, region):
        name = request["HyperParameterTuningJobName"]
        config = request["HyperParameterTuningJobConfig"]
        definition = request["TrainingJobDefinition"]
        self.check_training(definition, region)
        objective = config.get("HyperParameterTuningJobObjective") or {}
        known = [d["Name"] for d in jobs.METRIC_DEFINITIONS]
        if objective.get("MetricName") not in known:
            raise ApiError(
                "ValidationException",
                f"the objective metric {objective.get('MetricName')!r} is not one Random Cut Forest emits: "
                f"{', '.join(known)}",
            )
        if config["Strategy"] not in ("Bayesian", "Random"):
            raise ApiError("ValidationException", "rcforest aws tunes with the Random or Bayesian strategy")
        ranges = _parameter_ranges(config.get("ParameterRanges") or {})
        limits = config["ResourceLimits"]
        total = limits.get("MaxNumberOfTrainingJobs", 1)
        turns = min(limits["MaxParallelTrainingJobs"], total, self._jobs.workers)
        now = timestamp()
        description = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": self._arn(region, "hyper-parameter-tuning-job", name),
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
            "TrainingJobStatusCounters": _counters([]),
            "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        }
        job = Job(description)
        job.training = []
        job.total, job.turns, job.region, job.ranges, job.objective = total, turns, region, ranges, objective
        job.sampler = random.Random(zlib.crc32(name.encode()))  # a tuning job's samples follow from its name
        arn = description["HyperParameterTuningJobArn"]
        with self._state:
            self._jobs.room(turns)
            self._register(self._tuning, name, "tuning job", job, arn, request)
            for _ in range(turns):
                self._jobs.submit(functools.partial(self._tuning_turn, job), force=True)
        return {"HyperParameterTuningJobArn": arn}

    def _tuning_turn(self, job):
        """Start, run and score the tuning job's next training job; queue the next turn. Never raises."""
        description = job.description
        with self._state:
            if description["HyperParameterTuningJobStatus"] != "InProgress" or len(job.training) >= job.total:
                return self._end_turn(job)
            try:
                training, tuned = self._next_training(job)
            except Exception as error:  # the tuning job fails with the reason
                description.update(HyperParameterTuningJobStatus="Failed", FailureReason=self._reason(error))
                return self._end_turn(job)
        self._run_training(training)
        with self._state:
            self._score_tuning(job, job.objective)
            if description["HyperParameterTuningJobStatus"] == "InProgress" and len(job.training) < job.total:
                self._jobs.submit(functools.partial(self._tuning_turn, job), force=True)
            else:
                self._end_turn(job)

    def _next_training(self, job):
        """Register the tuning job's next training job (under the state lock); return it and its sample."""
        description = job.description
        definition = description["TrainingJobDefinition"]
        number = len(job.training) + 1
        tuned = {key: sample(job.sampler) for key, sample in job.ranges.items()}
        job_name = f"{description['HyperParameterTuningJobName'][:23]}-{number:03d}-{job.sampler.getrandbits(32):08x}"
        hyperparameters = {**(definition.get("StaticHyperParameters") or {}), **tuned}
        request = {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": definition.get("AlgorithmSpecification", {}),
            "RoleArn": definition.get("RoleArn", ""),
            "InputDataConfig": definition.get("InputDataConfig", []),
            "OutputDataConfig": definition.get("OutputDataConfig", {}),
            "ResourceConfig": definition.get("ResourceConfig", {}),
            "StoppingCondition": definition.get("StoppingCondition", {}),
            "HyperParameters": {k: v for k, v in hyperparameters.items() if not k.startswith("_")},
        }
        training = self._training_job(request, job.region, tuning_arn=description["HyperParameterTuningJobArn"])
        self._register(self._training, job_name, "training job", training, training.arn, request)
        job.training.append((training, tuned))
        return training, tuned

    def _end_turn(self, job):
        """A turn of the tuning job is over (under the state lock); the last one ends the job."""
        job.turns -= 1
        if job.turns > 0 or job.done.is_set():
            return
        description = job.description
        status = description["HyperParameterTuningJobStatus"]
        if status in ("InProgress", "Stopping"):
            description["HyperParameterTuningJobStatus"] = "Completed" if status == "InProgress" else "Stopped"
        description["HyperParameterTuningEndTime"] = description["LastModifiedTime"] = timestamp()
        job.done.set()

    def stop_hyper_parameter_tuning_job(self, request, region):
        """Stop a tuning job: no training job starts, the running ones are stopped."""
        with self._state:
            job = self._tuning.get(request["HyperParameterTuningJobName"])
            if job is None:
                raise _no_tuning_job(request["HyperParameterTuningJobName"])
            description = job.description
            status = description["HyperParameterTuningJobStatus"]
            if status != "InProgress":
                raise ApiError(
                    "ValidationException", f"The hyperparameter tuning job is in status {status} and cannot be stopped."
                )
            description.update(HyperParameterTuningJobStatus="Stopping", LastModifiedTime=timestamp())
            running = [t for t, _ in job.training if t.description["TrainingJobStatus"] == "InProgress"]
            for training in running:
                self._stop_training(training)
            if not running:  # nothing to wait for: the turns still queued end without starting a job
                description["HyperParameterTuningJobStatus"] = "Stopped"
                description["HyperParameterTuningEndTime"] = description["LastModifiedTime"] = timestamp()
                job.done.set()
        return {}

    def _score_tuning(self, job, objective):
        """Update the counters and the best training job of a tuning job."""
        description = job.description
        summaries = [self._tuning_summary(training, tuned, objective) for training, tuned in job.training]
        description["TrainingJobStatusCounters"] = _counters(summaries)
        scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        description["ObjectiveStatusCounters"] = {
            "Succeeded": len(scored),
            "Pending": 0,
            "Failed": len(summaries) - len(scored),
        }
        if scored:
            sign = -1.0 if objective.get("Type", "Maximize") == "Maximize" else 1.0
            best = min(scored, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
            description["BestTrainingJob"] = best
        description["LastModifiedTime"] = timestamp()

    def _tuning_summary(self, training, tuned, objective):
        d = training.description
        summary = {
            "TrainingJobName": d["TrainingJobName"],
            "TrainingJobArn": d["TrainingJobArn"],
            "TuningJobName": d["TuningJobArn"].rsplit("/", 1)[1],
            "CreationTime": d["CreationTime"],
            "TrainingStartTime": d.get("TrainingStartTime"),
            "TrainingEndTime": d.get("TrainingEndTime"),
            "TrainingJobStatus": d["TrainingJobStatus"],
            "TunedHyperParameters": dict(tuned),
        }
        for metric in d.get("FinalMetricDataList", []):
            if metric["MetricName"] == objective.get("MetricName"):
                summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                    "MetricName": metric["MetricName"],
                    "Value": metric["Value"],
                }
                summary["ObjectiveStatus"] = "Succeeded"
        if "FailureReason" in d:
            summary["FailureReason"] = d["FailureReason"]
            summary["ObjectiveStatus"] = "Failed"
        return copy_description(summary)

    def describe_hyper_parameter_tuning_job(self, request, region):
        with self._state:
            job = self._tuning.get(request["HyperParameterTuningJobName"])
            if job is None:
                raise _no_tuning_job(request["HyperParameterTuningJobName"])
            return copy_description(copy.deepcopy(job.description))

    def list_training_jobs_for_hyper_parameter_tuning_job(self, request, region):
        with self._state:
            job = self._tuning.get(request["HyperParameterTuningJobName"])
            if job is None:
                raise _no_tuning_job(request["HyperParameterTuningJobName"])
            summaries = [self._tuning_summary(training, tuned, job.objective) for training, tuned in job.training]
        if request.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == request["StatusEquals"]]
        return {"TrainingJobSummaries": summaries[: int(request.get("MaxResults") or 100)]}


def _no_tuning_job(name):
    return ApiError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job named {name}.")


def _counters(summaries):
    statuses = [s["TrainingJobStatus"] for s in summaries]
    return {
        "Completed": statuses.count("Completed"),
        "InProgress": statuses.count("InProgress"),
        "RetryableError": 0,
        "NonRetryableError": statuses.count("Failed"),
        "Stopped": statuses.count("Stopped"),
    }


def _parameter_ranges(ranges):
    """Return {name: sample(rng) -> str} for a ParameterRanges object, checking RCF's tunable names."""
    import math

    from rcforest.sagemaker.hyperparameters import RANGES

    samplers = {}
    for kind in ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges"):
        for item in ranges.get(kind) or []:
            name = item.get("Name")
            if name not in ("num_samples_per_tree", "num_trees"):
                raise ApiError(
                    "ValidationException",
                    f"{name!r} is not a tunable hyperparameter of Random Cut Forest (num_samples_per_tree, num_trees)",
                )
            low, high = RANGES[name]
            if kind == "CategoricalParameterRanges":
                values = [str(v) for v in item.get("Values") or []]
                if not values:
                    raise ApiError("ValidationException", f"the categorical range of {name} has no values")
                samplers[name] = lambda rng, values=values: rng.choice(values)
                continue
            try:
                first, last = float(item["MinValue"]), float(item["MaxValue"])
            except (KeyError, ValueError):
                raise ApiError(
                    "ValidationException", f"the range of {name} needs numeric MinValue and MaxValue"
                ) from None
            if not low <= first <= last <= high:
                raise ApiError(
                    "ValidationException", f"the range of {name} must lie in [{low}, {high}], got [{first}, {last}]"
                )
            if item.get("ScalingType") in ("Logarithmic", "ReverseLogarithmic"):
                samplers[name] = lambda rng, a=first, b=last: str(
                    round(math.exp(rng.uniform(math.log(a), math.log(b))))
                )
            else:
                samplers[name] = lambda rng, a=first, b=last: str(round(rng.uniform(a, b)))
    return samplers
