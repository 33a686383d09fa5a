"""Training jobs of ``rcforest aws``: CreateTrainingJob and the calls that follow and stop one.

A training job waits in the server's bounded job queue; when its turn comes
it trains in a child process (:func:`rcforest.aws.jobs.run_training`) in a
folder the server names, and its description moves through AWS's statuses
and secondary statuses as the job's steps go. A job stopped while it waits
ends at once; a running one ends when its training returns.
"""

import copy
import functools
import os
import shutil
import uuid

from rcforest.aws import jobs
from rcforest.aws.access import check_image_location
from rcforest.aws.resources import ApiError, Job, copy_description, inside, timestamp

__all__ = ["TrainingActions"]


class TrainingActions:
    """The training-job actions of :class:`rcforest.aws.sagemaker_api.SageMakerApi`."""

    def create_training_job(self, request, region):
        self.check_training(request, region)
        job = self._training_job(request, region)
        with self._state:
            self._jobs.room()
            self._register(self._training, job.description["TrainingJobName"], "training job", job, job.arn, request)
            self._jobs.submit(functools.partial(self._run_training, job))
        return {"TrainingJobArn": job.arn}

    def check_training(self, definition, region):
        """Refuse, as AWS does, a training job (or definition) whose image or role SageMaker cannot use."""
        role = definition["RoleArn"]
        image = (definition.get("AlgorithmSpecification") or {}).get("TrainingImage") or ""
        check_image_location(image, region, role)
        self.check_role(role)

    def _training_job(self, request, region, tuning_arn=None):
        """A new training job (not registered yet) for a CreateTrainingJob request."""
        name = request["TrainingJobName"]
        now = timestamp()
        description = {
            "TrainingJobName": name,
            "TrainingJobArn": self._arn(region, "training-job", name),
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "AlgorithmSpecification": {
                "TrainingInputMode": "File",
                **request["AlgorithmSpecification"],
                "MetricDefinitions": jobs.METRIC_DEFINITIONS,
            },
            "RoleArn": request["RoleArn"],
            "InputDataConfig": request.get("InputDataConfig", []),
            # AWS's defaults for what the request leaves out, as DescribeTrainingJob shows them.
            "OutputDataConfig": {"KmsKeyId": "", **request["OutputDataConfig"]},
            "ResourceConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
                **request.get("ResourceConfig", {}),
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400, **request.get("StoppingCondition", {})},
            "HyperParameters": request.get("HyperParameters", {}),
            "ModelArtifacts": {"S3ModelArtifacts": ""},
            "CreationTime": now,
            "LastModifiedTime": now,
            "SecondaryStatusTransitions": [
                {"Status": "Starting", "StartTime": now, "StatusMessage": "Starting the training job"}
            ],
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
        }
        if tuning_arn is not None:
            description["TuningJobArn"] = tuning_arn
        job = Job(description)
        job.arn = description["TrainingJobArn"]
        job.request = request
        job.started = False
        return job

    def _transition(self, description, status, message):
        now = timestamp()
        transitions = description["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        description["SecondaryStatus"] = status
        description["LastModifiedTime"] = now

    def _end_training(self, job):
        """Set a training job's end times (under the state lock) and wake who waits for it."""
        description = job.description
        now = timestamp()
        description["TrainingEndTime"] = now
        description.setdefault("TrainingStartTime", now)
        description["TrainingTimeInSeconds"] = int(now - description["TrainingStartTime"])
        description["BillableTimeInSeconds"] = description["TrainingTimeInSeconds"]
        description["SecondaryStatusTransitions"][-1].setdefault("EndTime", now)
        job.done.set()

    def _run_training(self, job):
        """Run a training job in this job thread (its training in a child process); never raises."""
        description = job.description
        with self._state:
            if description["TrainingJobStatus"] != "InProgress":
                return  # stopped while it waited
            job.started = True
            description["TrainingStartTime"] = timestamp()

        def status(secondary, message):  # the job's steps, with AWS's status messages
            with self._state:
                if description["TrainingJobStatus"] == "InProgress":
                    self._transition(description, secondary, message)

        job_dir = inside(self.work_dir, "training-jobs", uuid.uuid4().hex)
        try:
            try:
                os.makedirs(job_dir)
            except OSError as error:
                raise jobs.JobFailed(f"InternalServerError: cannot make the job's folder: {error.strerror}") from None
            model_uri, metrics = jobs.run_training(job.request, self.clients, job_dir, self._train, status)
            with self._state:
                if description["TrainingJobStatus"] == "Stopping":
                    description["TrainingJobStatus"] = "Stopped"
                    self._transition(description, "Stopped", "The job was stopped")
                    return
                now = timestamp()
                description["ModelArtifacts"] = {"S3ModelArtifacts": model_uri}
                description["FinalMetricDataList"] = [
                    {"MetricName": key, "Value": float(value), "Timestamp": now} for key, value in metrics.items()
                ]
                description["TrainingJobStatus"] = "Completed"
                self._transition(description, "Completed", "Training job completed")
        except Exception as error:  # every failure ends the job with its reason
            reason = self._reason(error)
            with self._state:
                description["TrainingJobStatus"] = "Failed"
                description["FailureReason"] = reason
                self._transition(description, "Failed", reason)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
            with self._state:
                self._end_training(job)

    def describe_training_job(self, request, region):
        with self._state:
            job = self._training.get(request["TrainingJobName"])
            if job is None:
                raise ApiError("ValidationException", "Requested resource not found.")
            return copy_description(copy.deepcopy(job.description))

    def list_training_jobs(self, request, region):
        return {"TrainingJobSummaries": self._list(self._training, request, "TrainingJob")}

    def stop_training_job(self, request, region):
        with self._state:
            job = self._training.get(request["TrainingJobName"])
            if job is None:
                raise ApiError("ValidationException", "Requested resource not found.")
            self._stop_training(job)
        return {}

    def _stop_training(self, job):
        """Stop a training job (under the state lock): a waiting one at once, a running one when its training ends."""
        description = job.description
        status = description["TrainingJobStatus"]
        if status != "InProgress":
            raise ApiError(
                "ValidationException",
                f"The request was rejected because the training job is in status {status}.",
            )
        if job.started:
            description["TrainingJobStatus"] = "Stopping"
            self._transition(description, "Stopping", "Stopping the job")
        else:
            description["TrainingJobStatus"] = "Stopped"
            self._transition(description, "Stopped", "The job was stopped before it started")
            self._end_training(job)
