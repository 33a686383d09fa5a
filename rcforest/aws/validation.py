"""Requests checked as AWS checks them, against botocore's service model of SageMaker.

Every request the SageMaker API serves is walked along the input shape of
its action in ``botocore/data/sagemaker/<version>/service-2.json``: each
member's JSON type, the required members, lengths, ranges, enums and the
patterns of names (``TrainingJobName``: ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``,
at most 63 characters; ``HyperParameterTuningJobName``: at most 32; tag keys
and values). The model gives no upper bound to a few counts that AWS's
documented quotas bound; :data:`QUOTAS` adds those. A request breaking a rule
gets AWS's ``ValidationException`` naming the member and the rule, with the
offending value cut short.
"""

import functools
import math
import re

from rcforest.aws.resources import ApiError

__all__ = ["QUOTAS", "check_request"]

# Upper bounds AWS documents as quotas that the service model leaves open (shape name: (min, max)).
QUOTAS = {
    "MaxNumberOfTrainingJobs": (1, 500),  # training jobs per hyperparameter tuning job
    "MaxParallelTrainingJobs": (1, 100),  # concurrent training jobs per hyperparameter tuning job
}
# Java's Unicode classes in the model's patterns, as Python's re writes them (\w is letters, digits and _).
_SPACE_SEPARATORS = "\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_JAVA_CLASSES = {r"\p{L}\p{Z}\p{N}_": r"\w" + _SPACE_SEPARATORS, r"\p{Alnum}": "a-zA-Z0-9"}
_SHOWN = 40  # characters of a value repeated in a message
_MAX_ERRORS = 5


@functools.cache
def _model():
    """The operations' input shapes and the shapes of botocore's SageMaker service model, without documentation."""
    import botocore.loaders

    model = botocore.loaders.create_loader().load_service_model("sagemaker", "service-2")
    shapes = {}
    for name, shape in model["shapes"].items():
        shape = {key: value for key, value in shape.items() if key != "documentation"}
        if "members" in shape:
            shape["members"] = {member: {"shape": spec["shape"]} for member, spec in shape["members"].items()}
        if name in QUOTAS:
            shape.setdefault("max", QUOTAS[name][1])
        shape["regex"] = _compile(shape.get("pattern")) if shape["type"] == "string" else None
        shapes[name] = shape
    inputs = {
        action: operation["input"]["shape"] for action, operation in model["operations"].items() if "input" in operation
    }
    return inputs, shapes


def _compile(pattern):
    """A pattern of the model as Python's re reads it; None for a pattern it cannot read."""
    if pattern is None:
        return None
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    try:
        return re.compile(pattern)
    except re.error:
        return None


def check_request(action, request):
    """Raise AWS's ``ValidationException`` unless ``request`` fits the input shape of ``action``.

    Parameters
    ----------
    action : str
        A served action, such as ``"CreateTrainingJob"``.
    request : dict
        The decoded JSON body.

    Raises
    ------
    ApiError
        ``ValidationException`` listing the first few broken rules.
    """
    inputs, shapes = _model()
    errors = []
    _check(shapes, inputs[action], request, "", errors)
    if errors:
        count = len(errors)
        shown = "; ".join(errors[:_MAX_ERRORS]) + ("; ..." if count > _MAX_ERRORS else "")
        raise ApiError("ValidationException", f"{count} validation error{'s' * (count > 1)} detected: {shown}")


def _shown(value):
    """A value as a message repeats it: cut to a few characters."""
    if value is None:
        return "null"
    text = value if isinstance(value, str) else repr(value)
    text = text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"
    return repr(text).replace("\\\\", "\\")


def _fail(errors, value, path, rule):
    errors.append(f"Value {_shown(value)} at '{path}' failed to satisfy constraint: Member must {rule}")


def _member_path(path, name):
    name = name[:1].lower() + name[1:]
    return f"{path}.{name}" if path else name


def _check(shapes, name, value, path, errors):
    """Append to ``errors`` each rule of shape ``name`` that ``value`` breaks."""
    shape = shapes[name]
    kind = shape["type"]
    if kind == "structure":
        if not isinstance(value, dict):
            return _fail(errors, value, path, "be a structure (a JSON object)")
        for member in shape.get("required", ()):
            if value.get(member) is None:
                errors.append(
                    f"Value null at '{_member_path(path, member)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for member, spec in shape.get("members", {}).items():
            if value.get(member) is not None:
                _check(shapes, spec["shape"], value[member], _member_path(path, member), errors)
    elif kind == "list":
        if not isinstance(value, list):
            return _fail(errors, value, path, "be a list (a JSON array)")
        _check_size(shape, len(value), value, path, errors, "length")
        for number, item in enumerate(value[: shape.get("max", len(value))], start=1):
            _check(shapes, shape["member"]["shape"], item, f"{path}.{number}.member", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            return _fail(errors, value, path, "be a map (a JSON object)")
        _check_size(shape, len(value), value, path, errors, "length")
        for key, item in list(value.items())[: shape.get("max", len(value))]:
            _check(shapes, shape["key"]["shape"], key, f"{path}.key", errors)
            _check(shapes, shape["value"]["shape"], item, f"{path}.{_shown(key)[1:-1]}", errors)
    elif kind == "string":
        if not isinstance(value, str):
            return _fail(errors, value, path, "be a string")
        if not _check_size(shape, len(value), value, path, errors, "length"):
            return None
        if "enum" in shape and value not in shape["enum"]:
            _fail(errors, value, path, f"satisfy enum value set: [{', '.join(shape['enum'])}]")
        elif shape["regex"] is not None and not shape["regex"].fullmatch(value):
            _fail(errors, value, path, f"satisfy regular expression pattern: ^{shape['pattern']}$")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return _fail(errors, value, path, "be an integer")
        _check_size(shape, value, value, path, errors, "value")
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return _fail(errors, value, path, "be a finite number")
        _check_size(shape, value, value, path, errors, "value")
    elif kind == "boolean":
        if not isinstance(value, bool):
            return _fail(errors, value, path, "be a boolean")
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return _fail(errors, value, path, "be a timestamp (seconds since the epoch)")
    elif kind == "blob":
        if not isinstance(value, str):
            return _fail(errors, value, path, "be base64 text")


def _check_size(shape, size, value, path, errors, what):
    """Check the shape's min and max of ``size``; return whether they hold."""
    if "min" in shape and size < shape["min"]:
        _fail(errors, value, path, f"have {what} greater than or equal to {shape['min']}")
        return False
    if "max" in shape and size > shape["max"]:
        _fail(errors, value, path, f"have {what} less than or equal to {shape['max']}")
        return False
    return True
