"""A local stand-in for SageMaker's built-in Random Cut Forest.

Code written for the SageMaker Python SDK runs with an import changed::

    from rcforest.sagemaker import RandomCutForest

    rcf = RandomCutForest(role=None, instance_count=1, instance_type="local", num_samples_per_tree=512, num_trees=50)
    rcf.fit(rcf.record_set(train_array))
    predictor = rcf.deploy(initial_instance_count=1, instance_type="local")
    records = predictor.predict(test_array)   # records[i].label["score"].float32_tensor.values[0]
    predictor.delete_endpoint()

Modules: :mod:`~rcforest.sagemaker.estimator` (estimators and record sets),
:mod:`~rcforest.sagemaker.predictor` (predictors and local endpoints),
:mod:`~rcforest.sagemaker.formats` (CSV, JSON, JSON lines, RecordIO-protobuf),
:mod:`~rcforest.sagemaker.record` (the ``Record`` protobuf),
:mod:`~rcforest.sagemaker.hyperparameters`, :mod:`~rcforest.sagemaker.metrics`,
:mod:`~rcforest.sagemaker.container` (``rcforest train``), and
:mod:`~rcforest.sagemaker.serializers` / :mod:`~rcforest.sagemaker.deserializers`
mirroring ``sagemaker.serializers`` / ``sagemaker.deserializers``.
"""

import importlib

__all__ = [
    "Estimator",
    "InvocationError",
    "Predictor",
    "RandomCutForest",
    "RandomCutForestPredictor",
    "Record",
    "RecordSet",
    "TrainingInput",
]

# Imported on first use, so that ``rcforest --help`` (which loads the
# ``train`` subcommand from this package) does not load protobuf.
_MODULES = {
    "Estimator": "estimator",
    "RandomCutForest": "estimator",
    "RecordSet": "estimator",
    "TrainingInput": "estimator",
    "InvocationError": "predictor",
    "Predictor": "predictor",
    "RandomCutForestPredictor": "predictor",
    "Record": "record",
}


def __getattr__(name):
    """Import the public names on first use."""
    if name in _MODULES:
        return getattr(importlib.import_module(f"rcforest.sagemaker.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'rcforest.sagemaker' has no attribute {name!r}")


def __dir__():
    """List the public names with the module attributes."""
    return sorted(set(globals()) | set(__all__))
