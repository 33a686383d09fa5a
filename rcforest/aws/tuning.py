"""Hyperparameter tuning jobs of ``rcforest aws``: random search over Random Cut Forest's tunable ranges.

The training jobs of a tuning job run one after another through the API's
own CreateTrainingJob; the best is the one with the best final value of the
objective metric (``test:f1`` and the other ``test:`` metrics).
"""

import threading
import zlib

from rcforest.aws import jobs
from rcforest.aws.resources import ApiError, Job, copy_description, require, timestamp

__all__ = ["TuningActions"]


class TuningActions:
    """The tuning actions of :class:`rcforest.aws.sagemaker_api.SageMakerApi`."""

    def create_hyper_parameter_tuning_job(self, request, region):
        require(request, "HyperParameterTuningJobName", "HyperParameterTuningJobConfig", "TrainingJobDefinition")
        name = request["HyperParameterTuningJobName"]
        config = request["HyperParameterTuningJobConfig"]
        definition = request["TrainingJobDefinition"]
        objective = config.get("HyperParameterTuningJobObjective") or {}
        known = [d["Name"] for d in jobs.METRIC_DEFINITIONS]
        if objective.get("MetricName") not in known:
            raise ApiError(
                "ValidationException",
                f"the objective metric {objective.get('MetricName')!r} is not one Random Cut Forest emits: "
                f"{', '.join(known)}",
            )
        if config.get("Strategy", "Bayesian") not in ("Bayesian", "Random"):
            raise ApiError("ValidationException", "rcforest aws tunes with the Random or Bayesian strategy")
        ranges = _parameter_ranges(config.get("ParameterRanges") or {})
        limits = config.get("ResourceLimits") or {}
        total = int(limits.get("MaxNumberOfTrainingJobs", 1))
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
        arn = description["HyperParameterTuningJobArn"]
        self._register(self._tuning, name, "tuning job", job, arn, request)
        seed = zlib.crc32(name.encode())  # a tuning job's samples follow from its name
        thread = threading.Thread(
            target=self._run_tuning, args=(job, region, ranges, total, objective, seed), daemon=True
        )
        thread.start()
        job.done.wait(self.job_wait * max(1, total))
        return {"HyperParameterTuningJobArn": description["HyperParameterTuningJobArn"]}

    def _run_tuning(self, job, region, ranges, total, objective, seed):
        """Run the tuning job's training jobs one after another, sampling the ranges at random."""
        import random

        description = job.description
        definition = description["TrainingJobDefinition"]
        sampler = random.Random(seed)
        name = description["HyperParameterTuningJobName"]
        try:
            for number in range(1, total + 1):
                tuned = {key: sample(sampler) for key, sample in ranges.items()}
                job_name = f"{name[:23]}-{number:03d}-{sampler.getrandbits(32):08x}"
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
                    "TuningJobArn": description["HyperParameterTuningJobArn"],
                }
                self.create_training_job(request, region)
                with self._state:
                    training = self._training[job_name]
                training.done.wait()
                job.training.append((training, tuned))
                self._score_tuning(job, objective)
            description["HyperParameterTuningJobStatus"] = "Completed"
        except Exception as error:  # the tuning job fails with the reason
            description.update(HyperParameterTuningJobStatus="Failed", FailureReason=str(error))
        finally:
            description["HyperParameterTuningEndTime"] = description["LastModifiedTime"] = timestamp()
            job.done.set()

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
        require(request, "HyperParameterTuningJobName")
        with self._state:
            job = self._tuning.get(request["HyperParameterTuningJobName"])
        if job is None:
            raise _no_tuning_job(request["HyperParameterTuningJobName"])
        return copy_description(job.description)

    def list_training_jobs_for_hyper_parameter_tuning_job(self, request, region):
        require(request, "HyperParameterTuningJobName")
        with self._state:
            job = self._tuning.get(request["HyperParameterTuningJobName"])
        if job is None:
            raise _no_tuning_job(request["HyperParameterTuningJobName"])
        objective = job.description["HyperParameterTuningJobConfig"].get("HyperParameterTuningJobObjective", {})
        summaries = [self._tuning_summary(training, tuned, objective) for training, tuned in job.training]
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
