"""The SageMaker API (JSON protocol, ``X-Amz-Target: SageMaker.<Action>``) for the Random Cut Forest image.

:class:`SageMakerApi` keeps training jobs, models, endpoint configurations,
endpoints, transform jobs, tuning jobs and their tags, and answers each
action with the response shape of botocore's ``sagemaker`` service model, or
raises :class:`ApiError` with AWS's error code and a message. Jobs run one at
a time on a worker thread; a short job finishes before its Create call
answers (the SDK then needs no polling), a longer one is followed with the
Describe calls. Endpoints are ready when CreateEndpoint answers.
"""

import concurrent.futures
import os
import threading
import time

from rcforest.aws import jobs
from rcforest.aws.resources import ApiError, Job, copy_description, require, summaries, tags_of, timestamp
from rcforest.aws.tuning import TuningActions

__all__ = ["ACTIONS", "ApiError", "SageMakerApi"]


class SageMakerApi(TuningActions):
    """The SageMaker control plane of ``rcforest aws``.

    Parameters
    ----------
    clients : object
        ``s3``, ``logs`` and ``cloudwatch`` boto3 clients of the local services.
    work_dir : str
        Jobs' and endpoints' local folders.
    account : str
        The account in ARNs.
    lock : rcforest.sagemaker.server.FairLock
        Held around every numba call (training and scoring).
    create_app : callable
        ``create_app(forest)``: the ASGI scoring application of an endpoint.
    job_wait : float, default 20
        Seconds a Create call for a job waits for it to finish before answering.
    """

    def __init__(self, clients, work_dir, account, lock, create_app, job_wait=20.0):
        self.clients = clients
        self.work_dir = work_dir
        self.account = account
        self.lock = lock
        self.create_app = create_app
        self.job_wait = job_wait
        self._state = threading.RLock()
        self._training = {}
        self._transforms = {}
        self._tuning = {}
        self._models = {}
        self._configs = {}
        self._endpoints = {}
        self._apps = {}
        self._tags = {}
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rcforest-aws-job")

    def close(self):
        """Stop taking jobs; jobs already queued finish."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ dispatch

    def handle(self, action, request, region):
        """Answer one action.

        Parameters
        ----------
        action : str
            Such as ``"CreateTrainingJob"``.
        request : dict
            The JSON request body.
        region : str
            The region the request was signed for.

        Returns
        -------
        dict
            The response body.

        Raises
        ------
        ApiError
        """
        method = ACTIONS.get(action)
        if method is None:
            raise ApiError(
                "UnknownOperationException",
                f"rcforest aws does not serve SageMaker.{action}; it serves {', '.join(sorted(ACTIONS))}",
            )
        if not isinstance(request, dict):
            raise ApiError("SerializationException", "the request body must be a JSON object")
        return getattr(self, method)(request, region)

    def endpoint_app(self, name):
        """Return the scoring application of endpoint ``name``, or None."""
        return self._apps.get(name)

    def _arn(self, region, kind, name):
        return f"arn:aws:sagemaker:{region}:{self.account}:{kind}/{name.lower()}"

    def _get(self, table, name, what):
        with self._state:
            item = table.get(name)
        if item is None:
            raise ApiError("ValidationException", f'Could not find {what} "{name}".')
        return item

    def _unique(self, table, name, what):
        if name in table:
            raise ApiError("ValidationException", f'Cannot create already existing {what} "{name}".')

    def _register(self, table, name, what, item, arn, request):
        """Add a new resource and its tags; refuse an existing name."""
        with self._state:
            self._unique(table, name, what)
            table[name] = item
            self._tags[arn] = tags_of(request)

    def _describe(self, table, request, key, what):
        require(request, key)
        return copy_description(self._get(table, request[key], what))

    def _delete(self, table, request, key, what):
        require(request, key)
        self._get(table, request[key], what)
        with self._state:
            table.pop(request[key], None)
        return {}

    def _list(self, table, request, kind):
        with self._state:
            found = [getattr(item, "description", item) for item in table.values()]
        return summaries(found, request, kind)

    # ------------------------------------------------------------ training jobs

    def create_training_job(self, request, region):
        require(request, "TrainingJobName", "RoleArn", "OutputDataConfig", "AlgorithmSpecification")
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
            "SecondaryStatusTransitions": [{"Status": "Starting", "StartTime": now, "StatusMessage": "Starting"}],
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
        }
        if "TuningJobArn" in request:
            description["TuningJobArn"] = request["TuningJobArn"]
        job = Job(description)
        self._register(self._training, name, "training job", job, description["TrainingJobArn"], request)
        self._worker.submit(self._run_training, job, request)
        job.done.wait(self.job_wait)
        return {"TrainingJobArn": description["TrainingJobArn"]}

    def _transition(self, description, status, message):
        now = timestamp()
        transitions = description["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        description["SecondaryStatus"] = status
        description["LastModifiedTime"] = now

    def _run_training(self, job, request):
        description = job.description
        try:
            if description["TrainingJobStatus"] != "InProgress":
                return
            description["TrainingStartTime"] = timestamp()
            self._transition(description, "Training", "Training the Random Cut Forest")
            work_dir = os.path.join(self.work_dir, "training-jobs", description["TrainingJobName"])
            model_uri, metrics = jobs.run_training(request, self.clients, work_dir, self.lock)
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
            reason = str(error) if isinstance(error, jobs.JobFailed) else f"InternalServerError: {error!r}"
            description["TrainingJobStatus"] = "Failed"
            description["FailureReason"] = reason
            self._transition(description, "Failed", reason)
        finally:
            now = timestamp()
            description["TrainingEndTime"] = now
            description.setdefault("TrainingStartTime", now)
            description["TrainingTimeInSeconds"] = int(now - description["TrainingStartTime"])
            description["BillableTimeInSeconds"] = description["TrainingTimeInSeconds"]
            description["SecondaryStatusTransitions"][-1].setdefault("EndTime", now)
            job.done.set()

    def describe_training_job(self, request, region):
        require(request, "TrainingJobName")
        with self._state:
            job = self._training.get(request["TrainingJobName"])
        if job is None:
            raise ApiError("ValidationException", "Requested resource not found.")
        return copy_description(job.description)

    def list_training_jobs(self, request, region):
        return {"TrainingJobSummaries": self._list(self._training, request, "TrainingJob")}

    def stop_training_job(self, request, region):
        require(request, "TrainingJobName")
        with self._state:
            job = self._training.get(request["TrainingJobName"])
        if job is None:
            raise ApiError("ValidationException", "Requested resource not found.")
        if job.description["TrainingJobStatus"] == "InProgress":
            job.description["TrainingJobStatus"] = "Stopping"
            self._transition(job.description, "Stopping", "Stopping the job")
        return {}

    # ------------------------------------------------------------------- models

    def create_model(self, request, region):
        require(request, "ModelName")
        name = request["ModelName"]
        containers = request.get("Containers") or []
        container = request.get("PrimaryContainer") or (containers[0] if containers else None)
        if not container or not container.get("Image"):
            raise ApiError("ValidationException", "CreateModel needs PrimaryContainer with Image and ModelDataUrl")
        try:
            jobs.check_image(container["Image"])
        except jobs.JobFailed as error:
            raise ApiError("ValidationException", str(error).removeprefix("ClientError: ")) from None
        if not container.get("ModelDataUrl"):
            raise ApiError("ValidationException", "PrimaryContainer.ModelDataUrl is required for Random Cut Forest")
        description = {
            "ModelName": name,
            "ModelArn": self._arn(region, "model", name),
            "PrimaryContainer": container,
            "ExecutionRoleArn": request.get("ExecutionRoleArn", ""),
            "CreationTime": timestamp(),
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
        }
        self._register(self._models, name, "model", description, description["ModelArn"], request)
        return {"ModelArn": description["ModelArn"]}

    def describe_model(self, request, region):
        return self._describe(self._models, request, "ModelName", "model")

    def delete_model(self, request, region):
        return self._delete(self._models, request, "ModelName", "model")

    def list_models(self, request, region):
        return {"Models": self._list(self._models, request, "Model")}

    # ------------------------------------------------------- endpoint configs

    def create_endpoint_config(self, request, region):
        require(request, "EndpointConfigName", "ProductionVariants")
        name = request["EndpointConfigName"]
        variants = request["ProductionVariants"]
        for variant in variants:
            if not variant.get("ModelName"):
                raise ApiError("ValidationException", "each ProductionVariant needs a ModelName")
        description = {
            "EndpointConfigName": name,
            "EndpointConfigArn": self._arn(region, "endpoint-config", name),
            "ProductionVariants": variants,
            "CreationTime": timestamp(),
        }
        for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig"):
            if key in request:
                description[key] = request[key]
        arn = description["EndpointConfigArn"]
        self._register(self._configs, name, "endpoint configuration", description, arn, request)
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, request, region):
        return self._describe(self._configs, request, "EndpointConfigName", "endpoint configuration")

    def delete_endpoint_config(self, request, region):
        return self._delete(self._configs, request, "EndpointConfigName", "endpoint configuration")

    def list_endpoint_configs(self, request, region):
        return {"EndpointConfigs": self._list(self._configs, request, "EndpointConfig")}

    # ---------------------------------------------------------------- endpoints

    def _load_config(self, config_name, endpoint_name):
        """Load the model of a config's first variant; return (app, variants description)."""
        config = self._get(self._configs, config_name, "endpoint configuration")
        variant = config["ProductionVariants"][0]
        model = self._get(self._models, variant["ModelName"], "model")
        directory = os.path.join(self.work_dir, "endpoints", endpoint_name, f"{config_name}-{time.time_ns()}")
        forest = jobs.load_artefact(self.clients.s3, model["PrimaryContainer"]["ModelDataUrl"], directory)
        variants = [
            {
                "VariantName": variant.get("VariantName", "AllTraffic"),
                "CurrentWeight": float(variant.get("InitialVariantWeight", 1.0)),
                "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
                "CurrentInstanceCount": int(variant.get("InitialInstanceCount", 1)),
                "DesiredInstanceCount": int(variant.get("InitialInstanceCount", 1)),
                "DeployedImages": [{"SpecifiedImage": model["PrimaryContainer"]["Image"]}],
            }
        ]
        return self.create_app(forest), variants

    def create_endpoint(self, request, region):
        require(request, "EndpointName", "EndpointConfigName")
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        self._get(self._configs, config_name, "endpoint configuration")
        now = timestamp()
        description = {
            "EndpointName": name,
            "EndpointArn": self._arn(region, "endpoint", name),
            "EndpointConfigName": config_name,
            "EndpointStatus": "Creating",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        self._register(self._endpoints, name, "endpoint", description, description["EndpointArn"], request)
        try:
            app, variants = self._load_config(config_name, name)
        except (jobs.JobFailed, ApiError) as error:
            description.update(EndpointStatus="Failed", FailureReason=str(error), LastModifiedTime=timestamp())
        else:
            with self._state:
                if name in self._endpoints:
                    self._apps[name] = app
                    description.update(
                        EndpointStatus="InService", ProductionVariants=variants, LastModifiedTime=timestamp()
                    )
        return {"EndpointArn": description["EndpointArn"]}

    def update_endpoint(self, request, region):
        """Load the new configuration's model, then swap it in; requests in flight finish on the old one."""
        require(request, "EndpointName", "EndpointConfigName")
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        description = self._get(self._endpoints, name, "endpoint")
        if description["EndpointStatus"] not in ("InService", "Failed"):
            raise ApiError(
                "ValidationException", f'Cannot update endpoint "{name}" while it is {description["EndpointStatus"]}.'
            )
        self._get(self._configs, config_name, "endpoint configuration")
        description.update(EndpointStatus="Updating", LastModifiedTime=timestamp())
        try:
            app, variants = self._load_config(config_name, name)
        except (jobs.JobFailed, ApiError) as error:
            status = "InService" if name in self._apps else "Failed"
            description.update(EndpointStatus=status, FailureReason=str(error), LastModifiedTime=timestamp())
            return {"EndpointArn": description["EndpointArn"]}
        with self._state:
            self._apps[name] = app
            description.pop("FailureReason", None)
            description.update(
                EndpointStatus="InService",
                EndpointConfigName=config_name,
                ProductionVariants=variants,
                LastModifiedTime=timestamp(),
            )
        return {"EndpointArn": description["EndpointArn"]}

    def describe_endpoint(self, request, region):
        return self._describe(self._endpoints, request, "EndpointName", "endpoint")

    def delete_endpoint(self, request, region):
        """Forget the endpoint and stop routing to it; requests in flight finish."""
        with self._state:
            answer = self._delete(self._endpoints, request, "EndpointName", "endpoint")
            self._apps.pop(request["EndpointName"], None)
        return answer

    def list_endpoints(self, request, region):
        return {"Endpoints": self._list(self._endpoints, request, "Endpoint")}

    # ------------------------------------------------------------ transform jobs

    def create_transform_job(self, request, region):
        require(request, "TransformJobName", "ModelName", "TransformInput", "TransformOutput", "TransformResources")
        name = request["TransformJobName"]
        model = self._get(self._models, request["ModelName"], "model")
        now = timestamp()
        description = {
            "TransformJobName": name,
            "TransformJobArn": self._arn(region, "transform-job", name),
            "TransformJobStatus": "InProgress",
            "ModelName": request["ModelName"],
            "TransformInput": request["TransformInput"],
            "TransformOutput": request["TransformOutput"],
            "TransformResources": request["TransformResources"],
            "BatchStrategy": request.get("BatchStrategy", "MultiRecord"),
            "MaxPayloadInMB": request.get("MaxPayloadInMB", 6),
            "CreationTime": now,
        }
        job = Job(description)
        self._register(self._transforms, name, "transform job", job, description["TransformJobArn"], request)
        self._worker.submit(self._run_transform, job, request, model)
        job.done.wait(self.job_wait)
        return {"TransformJobArn": description["TransformJobArn"]}

    def _run_transform(self, job, request, model):
        description = job.description
        description["TransformStartTime"] = timestamp()
        try:
            directory = os.path.join(self.work_dir, "transform-jobs", description["TransformJobName"])
            forest = jobs.load_artefact(self.clients.s3, model["PrimaryContainer"]["ModelDataUrl"], directory)
            jobs.run_transform(request, forest, self.clients, self.lock)
            description["TransformJobStatus"] = "Completed"
        except Exception as error:  # every failure ends the job with its reason
            reason = str(error) if isinstance(error, jobs.JobFailed) else f"InternalServerError: {error!r}"
            description.update(TransformJobStatus="Failed", FailureReason=reason)
        finally:
            description["TransformEndTime"] = timestamp()
            job.done.set()

    def describe_transform_job(self, request, region):
        require(request, "TransformJobName")
        with self._state:
            job = self._transforms.get(request["TransformJobName"])
        if job is None:
            raise ApiError(
                "ValidationException", f"Could not find job to update with name {request['TransformJobName']}"
            )
        return copy_description(job.description)

    def list_transform_jobs(self, request, region):
        return {"TransformJobSummaries": self._list(self._transforms, request, "TransformJob")}

    # --------------------------------------------------------------------- tags

    def add_tags(self, request, region):
        require(request, "ResourceArn")
        with self._state:
            tags = self._tags.setdefault(request["ResourceArn"], [])
            for tag in request.get("Tags") or []:
                tags[:] = [t for t in tags if t.get("Key") != tag.get("Key")] + [dict(tag)]
            return {"Tags": list(tags)}

    def list_tags(self, request, region):
        require(request, "ResourceArn")
        with self._state:
            return {"Tags": list(self._tags.get(request["ResourceArn"], []))}

    def delete_tags(self, request, region):
        require(request, "ResourceArn")
        keys = set(request.get("TagKeys") or [])
        with self._state:
            tags = self._tags.get(request["ResourceArn"], [])
            tags[:] = [t for t in tags if t.get("Key") not in keys]
        return {}


# Each action and the method that answers it.
ACTIONS = {
    "".join(part.title() for part in name.split("_")): name
    for name in (
        "create_training_job",
        "describe_training_job",
        "list_training_jobs",
        "stop_training_job",
        "create_model",
        "describe_model",
        "delete_model",
        "list_models",
        "create_endpoint_config",
        "describe_endpoint_config",
        "delete_endpoint_config",
        "list_endpoint_configs",
        "create_endpoint",
        "update_endpoint",
        "describe_endpoint",
        "delete_endpoint",
        "list_endpoints",
        "create_transform_job",
        "describe_transform_job",
        "list_transform_jobs",
        "create_hyper_parameter_tuning_job",
        "describe_hyper_parameter_tuning_job",
        "list_training_jobs_for_hyper_parameter_tuning_job",
        "add_tags",
        "list_tags",
        "delete_tags",
    )
}
