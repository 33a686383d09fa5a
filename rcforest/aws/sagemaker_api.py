"""The SageMaker API (JSON protocol, ``X-Amz-Target: SageMaker.<Action>``) for the Random Cut Forest image.

:class:`SageMakerApi` keeps training jobs, models, endpoint configurations,
endpoints, transform jobs, tuning jobs and their tags, and answers each
action with the response shape of botocore's ``sagemaker`` service model, or
raises :class:`ApiError` with AWS's error code and a message.

Every request is first checked against the action's input shape
(:mod:`rcforest.aws.validation`): names, types, lengths and ranges as AWS
checks them; a request that fails changes nothing. Create calls for jobs
answer at once, as AWS's do: the job waits in a bounded
:class:`~rcforest.aws.workers.JobQueue` and is followed with the Describe
calls. No path is built from a client's string: a job's folder is named by
an id the server draws, under the server's own folder. Endpoints are ready
when CreateEndpoint answers.
"""

import copy
import functools
import logging
import os
import threading

from rcforest.aws import jobs
from rcforest.aws.access import RoleCheck, check_image_location
from rcforest.aws.resources import ApiError, Job, copy_description, inside, summaries, tags_of, timestamp
from rcforest.aws.training import TrainingActions
from rcforest.aws.tuning import TuningActions
from rcforest.aws.validation import check_request
from rcforest.aws.workers import JobQueue, TrainingProcesses

__all__ = ["ACTIONS", "MAX_RESOURCES", "ApiError", "SageMakerApi"]

logger = logging.getLogger(__name__)
# Models, endpoint configurations and endpoints one server keeps; beyond, Create answers ResourceLimitExceeded.
# Jobs are kept up to the same count, the oldest ended job forgotten to make room.
MAX_RESOURCES = 10_000
_ENDED = ("Completed", "Failed", "Stopped")


class SageMakerApi(TrainingActions, TuningActions):
    """The SageMaker control plane of ``rcforest aws``.

    Parameters
    ----------
    clients : object
        ``s3``, ``logs``, ``cloudwatch`` and ``iam`` boto3 clients of the local services.
    work_dir : str
        The server's folder for jobs' layouts and unpacked models.
    account : str
        The account in ARNs.
    lock : rcforest.sagemaker.server.FairLock
        Held around the numba calls of this process (endpoints' and transform jobs' scoring).
    create_app : callable
        ``create_app(forest)``: the ASGI scoring application of an endpoint.
    workers : int, default 1
        Jobs running at once (each training in a child process).
    backlog : int, default 100
        Jobs that may wait; beyond, Create calls answer ``ResourceLimitExceeded``.
    """

    def __init__(self, clients, work_dir, account, lock, create_app, workers=1, backlog=100):
        self.clients = clients
        self.work_dir = os.path.abspath(work_dir)
        self.account = account
        self.lock = lock
        self.create_app = create_app
        self.check_role = RoleCheck(clients.iam, account)
        self._state = threading.RLock()
        self._training = {}
        self._transforms = {}
        self._tuning = {}
        self._models = {}
        self._configs = {}
        self._endpoints = {}
        self._apps = {}
        self._tags = {}
        os.makedirs(self.work_dir, exist_ok=True)
        check_request("ListModels", {})  # reads the service model now, not in the first request
        self._jobs = JobQueue(workers, backlog)
        self._train = TrainingProcesses(workers)

    def close(self):
        """Stop taking jobs: waiting jobs are dropped, running ones end."""
        self._jobs.close()
        self._train.close()

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
            AWS's error for a bad request; ``InternalFailure`` (500) for a fault of the server.
        """
        method = ACTIONS.get(action)
        if method is None:
            shown = action if len(action) <= 64 else f"{action[:64]}..."
            raise ApiError(
                "UnknownOperationException",
                f"rcforest aws does not serve SageMaker.{shown}; it serves {', '.join(sorted(ACTIONS))}",
            )
        if not isinstance(request, dict):
            raise ApiError("SerializationException", "the request body must be a JSON object")
        try:
            check_request(action, request)
            return getattr(self, method)(request, region)
        except ApiError:
            raise
        except Exception:  # a fault of the server: logged, answered in AWS's shape
            logger.exception("SageMaker.%s failed", action)
            raise ApiError("InternalFailure", f"rcforest aws failed to answer SageMaker.{action}", 500) from None

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

    def _register(self, table, name, what, item, arn, request):
        """Add a new resource and its tags; refuse an existing name and a full table."""
        with self._state:
            if name in table:
                raise ApiError("ValidationException", f'Cannot create already existing {what} "{name}".')
            if len(table) >= MAX_RESOURCES:
                ended = [key for key, value in table.items() if isinstance(value, Job) and value.done.is_set()]
                if not ended:
                    raise ApiError(
                        "ResourceLimitExceeded", f"this server keeps at most {MAX_RESOURCES} of each resource"
                    )
                self._tags.pop(_arn_of(table.pop(ended[0])), None)
            table[name] = item
            self._tags[arn] = tags_of(request)

    def _describe(self, table, request, key, what):
        item = self._get(table, request[key], what)
        with self._state:
            return copy_description(copy.deepcopy(getattr(item, "description", item)))

    def _delete(self, table, request, key, what):
        with self._state:
            item = self._get(table, request[key], what)
            table.pop(request[key], None)
            self._tags.pop(_arn_of(item), None)
        return {}

    def _list(self, table, request, kind):
        with self._state:
            found = [dict(getattr(item, "description", item)) for item in table.values()]  # summaries keep scalars
        return summaries(found, request, kind)

    def _reason(self, error):
        """A job's FailureReason: the error's own text for a job failure or a refusal, never a path of the server."""
        if not isinstance(error, (jobs.JobFailed, ApiError)):
            logger.error("a job failed", exc_info=error)
            return f"InternalServerError: {type(error).__name__}"
        return str(error).replace(self.work_dir, "<server>")

    # ------------------------------------------------------------------- models

    def create_model(self, request, region):
        name = request["ModelName"]
        containers = request.get("Containers") or []
        container = request.get("PrimaryContainer") or (containers[0] if containers else None)
        if not container or not container.get("Image"):
            raise ApiError("ValidationException", "CreateModel needs PrimaryContainer with Image and ModelDataUrl")
        if not container.get("ModelDataUrl"):
            raise ApiError("ValidationException", "PrimaryContainer.ModelDataUrl is required for Random Cut Forest")
        role = request.get("ExecutionRoleArn")
        check_image_location(container["Image"], region, role or "", training=False)
        if role:
            self.check_role(role)
        try:
            jobs.check_image(container["Image"])
            jobs.parse_s3_uri(container["ModelDataUrl"])
        except jobs.JobFailed as error:
            raise ApiError("ValidationException", str(error).removeprefix("ClientError: ")) from None
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
        name = request["EndpointConfigName"]
        variants = request["ProductionVariants"]
        for variant in variants:
            if not variant.get("ModelName"):
                raise ApiError("ValidationException", "each ProductionVariant needs a ModelName")
            self._get(self._models, variant["ModelName"], "model")
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

    def _serving_model(self, config_name):
        """The first variant of a configuration and its model; ValidationException if either is gone."""
        config = self._get(self._configs, config_name, "endpoint configuration")
        variant = config["ProductionVariants"][0]
        return variant, self._get(self._models, variant["ModelName"], "model")

    def _load(self, variant, model):
        """Load a variant's model; return (app, variants description). Raises JobFailed."""
        scratch = inside(self.work_dir, "endpoints")
        forest = jobs.load_artefact(self.clients.s3, model["PrimaryContainer"]["ModelDataUrl"], scratch)
        weight = float(variant.get("InitialVariantWeight", 1.0))
        count = int(variant.get("InitialInstanceCount", 1))
        variants = [
            {
                "VariantName": variant.get("VariantName", "AllTraffic"),
                "CurrentWeight": weight,
                "DesiredWeight": weight,
                "CurrentInstanceCount": count,
                "DesiredInstanceCount": count,
                "DeployedImages": [{"SpecifiedImage": model["PrimaryContainer"]["Image"]}],
            }
        ]
        return self.create_app(forest), variants

    def create_endpoint(self, request, region):
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        variant, model = self._serving_model(config_name)
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
            app, variants = self._load(variant, model)
        except Exception as error:  # the endpoint fails with the reason, as AWS's does
            reason = self._reason(error)
            with self._state:
                description.update(EndpointStatus="Failed", FailureReason=reason, LastModifiedTime=timestamp())
        else:
            with self._state:
                if self._endpoints.get(name) is description:
                    self._apps[name] = app
                    description.update(
                        EndpointStatus="InService", ProductionVariants=variants, LastModifiedTime=timestamp()
                    )
        return {"EndpointArn": description["EndpointArn"]}

    def update_endpoint(self, request, region):
        """Load the new configuration's model, then swap it in; requests in flight finish on the old one."""
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        with self._state:
            description = self._get(self._endpoints, name, "endpoint")
            if description["EndpointStatus"] not in ("InService", "Failed"):
                raise ApiError(
                    "ValidationException",
                    f'Cannot update endpoint "{name}" while it is {description["EndpointStatus"]}.',
                )
            variant, model = self._serving_model(config_name)
            previous = description["EndpointStatus"]
            description.update(EndpointStatus="Updating", LastModifiedTime=timestamp())
        try:
            app, variants = self._load(variant, model)
        except Exception as error:  # the endpoint goes back to what it was, with the reason
            reason = self._reason(error)
            with self._state:
                description.update(EndpointStatus=previous, FailureReason=reason, LastModifiedTime=timestamp())
            return {"EndpointArn": description["EndpointArn"]}
        with self._state:
            if self._endpoints.get(name) is description:
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
        arn = description["TransformJobArn"]
        with self._state:
            self._jobs.room()
            self._register(self._transforms, name, "transform job", job, arn, request)
            self._jobs.submit(functools.partial(self._run_transform, job, request, model))
        return {"TransformJobArn": arn}

    def _run_transform(self, job, request, model):
        """Run a transform job in this job thread, scoring in turns with the endpoints; never raises."""
        description = job.description
        with self._state:
            description["TransformStartTime"] = timestamp()
        try:
            scratch = inside(self.work_dir, "transform-jobs")
            forest = jobs.load_artefact(self.clients.s3, model["PrimaryContainer"]["ModelDataUrl"], scratch)
            jobs.run_transform(request, forest, self.clients, self.lock)
            with self._state:
                description["TransformJobStatus"] = "Completed"
        except Exception as error:  # every failure ends the job with its reason
            reason = self._reason(error)
            with self._state:
                description.update(TransformJobStatus="Failed", FailureReason=reason)
        finally:
            with self._state:
                description["TransformEndTime"] = timestamp()
            job.done.set()

    def describe_transform_job(self, request, region):
        with self._state:
            job = self._transforms.get(request["TransformJobName"])
            if job is None:
                raise ApiError(
                    "ValidationException", f"Could not find job to update with name {request['TransformJobName']}"
                )
            return copy_description(copy.deepcopy(job.description))

    def list_transform_jobs(self, request, region):
        return {"TransformJobSummaries": self._list(self._transforms, request, "TransformJob")}

    # --------------------------------------------------------------------- tags

    def add_tags(self, request, region):
        with self._state:
            tags = self._tagged(request["ResourceArn"])
            added = {tag["Key"]: tag for tag in request.get("Tags") or []}
            kept = [t for t in tags if t["Key"] not in added] + [dict(tag) for tag in added.values()]
            if len(kept) > _MAX_TAGS:
                raise ApiError("ValidationException", f"a resource has at most {_MAX_TAGS} tags, not {len(kept)}")
            tags[:] = kept
            return {"Tags": list(tags)}

    def list_tags(self, request, region):
        with self._state:
            return {"Tags": list(self._tagged(request["ResourceArn"]))[: request.get("MaxResults", 50)]}

    def delete_tags(self, request, region):
        keys = set(request.get("TagKeys") or [])
        with self._state:
            tags = self._tagged(request["ResourceArn"])
            tags[:] = [t for t in tags if t["Key"] not in keys]
        return {}

    def _tagged(self, arn):
        """The tags of a resource of this server; ValidationException for any other ARN."""
        tags = self._tags.get(arn)
        if tags is None:
            shown = arn if len(arn) <= 128 else f"{arn[:128]}..."
            raise ApiError("ValidationException", f"Resource {shown} does not exist or is not served here.")
        return tags


def _arn_of(item):
    """The ARN of a resource: the ``<Kind>Arn`` beside its ``<Kind>Name``."""
    description = getattr(item, "description", item)
    return next((v for k, v in description.items() if k.endswith("Arn") and f"{k[:-3]}Name" in description), None)


_MAX_TAGS = 50  # tags of one resource, as AWS allows


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
        "stop_hyper_parameter_tuning_job",
        "add_tags",
        "list_tags",
        "delete_tags",
    )
}
