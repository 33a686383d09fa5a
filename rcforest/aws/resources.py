"""What the SageMaker API keeps of each resource, and the errors it answers with.

Shared by :mod:`rcforest.aws.sagemaker_api` and :mod:`rcforest.aws.tuning`.
"""

import os
import threading
import time

__all__ = ["ApiError", "Job", "copy_description", "inside", "summaries", "tags_of", "timestamp"]


class ApiError(Exception):
    """An error answered in AWS's JSON error shape.

    Parameters
    ----------
    code : str
        ``ValidationException``, ``ResourceNotFound``, ``ResourceInUse``, ...
    message : str
    status : int, default 400
    """

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.status = status


def inside(root, *parts):
    """Join ``parts`` under ``root``; raise ``ValueError`` unless the resolved path stays inside ``root``.

    The one check of every path the server builds: parts are server-chosen
    names (ids, numbered file names), and this refuses anything that would
    still leave the folder (``..``, an absolute part, a symbolic link out).

    Parameters
    ----------
    root : str
    *parts : str

    Returns
    -------
    str
        The joined path.
    """
    path = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root or os.path.realpath(path) == real_root:
        raise ValueError(f"refusing a path outside the server's folder: {os.path.join(*parts)!r}")
    return path


def timestamp():
    """Now, in seconds since the epoch: how the JSON protocol carries times."""
    return time.time()


def tags_of(request):
    """The ``Tags`` of a Create request, copied."""
    return [dict(tag) for tag in request.get("Tags") or []]


class Job:
    """A job's description (updated as it runs) and an event set when it ends."""

    def __init__(self, description):
        self.description = description
        self.done = threading.Event()


def copy_description(description):
    """A copy of a description, without empty values botocore would refuse."""
    return {key: value for key, value in description.items() if value is not None}


def summaries(descriptions, request, kind):
    """Filter, sort and summarise descriptions for a List call."""
    name_key, arn_key, status_key = f"{kind}Name", f"{kind}Arn", f"{kind}Status"
    contains = request.get("NameContains")
    status = request.get("StatusEquals")
    found = [
        d
        for d in descriptions
        if (not contains or contains in d[name_key]) and (not status or d.get(status_key) == status)
    ]
    reverse = request.get("SortOrder", "Descending") == "Descending"
    sort_key = "CreationTime" if request.get("SortBy", "CreationTime") == "CreationTime" else name_key
    found.sort(key=lambda d: d[sort_key], reverse=reverse)
    found = found[: int(request.get("MaxResults") or 100)]
    keep = (name_key, arn_key, status_key, "CreationTime", "LastModifiedTime", "TrainingEndTime", "SecondaryStatus")
    return [{key: d[key] for key in keep if key in d} for d in found]
