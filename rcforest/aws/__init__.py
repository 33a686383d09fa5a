"""``rcforest aws``: an AWS-compatible endpoint for SageMaker's Random Cut Forest.

Unmodified boto3 and SageMaker SDK (v2 and v3) code runs against it once the
environment it prints is exported. Modules: :mod:`~rcforest.aws.server`
(the server), :mod:`~rcforest.aws.environment` (the file ``rcforest aws env``
reads), :mod:`~rcforest.aws.sagemaker_api` (the SageMaker API, with
:mod:`~rcforest.aws.training`, :mod:`~rcforest.aws.tuning`, :mod:`~rcforest.aws.resources` and
:mod:`~rcforest.aws.validation`, which checks requests against botocore's
service model), :mod:`~rcforest.aws.jobs` (what the Random Cut Forest image
does with S3, CloudWatch Logs and metrics), :mod:`~rcforest.aws.workers`
(the bounded job queue and the training processes), :mod:`~rcforest.aws.guard`
(the Host, Origin and size checks of every request, and AWS-shaped errors),
:mod:`~rcforest.aws.access` (the role and image checks SageMaker makes),
:mod:`~rcforest.aws.runtime` (the runtime's ``ModelError`` around an
endpoint's errors), :mod:`~rcforest.aws.simulation` (IAM
``SimulatePrincipalPolicy``) and :mod:`~rcforest.aws.proxy` (the HTTPS proxy
for fixed AWS addresses); the command is :mod:`rcforest.cli.aws`. S3, STS, IAM and CloudWatch are moto's
server mode (the ``aws`` extra).
"""

__all__ = []
