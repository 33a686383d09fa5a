"""What SageMaker checks of a request's role and image before it creates a job or a model, with AWS's messages.

- **The role.** A ``RoleArn`` (``ExecutionRoleArn``) must name a role of the
  caller's account that exists in IAM, path included, and whose trust policy
  lets ``sagemaker.amazonaws.com`` assume it. Otherwise AWS answers
  ``ValidationException``: "Could not assume role <arn>. Please ensure that the
  role exists and allows principal 'sagemaker.amazonaws.com' to assume the role."
- **The image.** An ECR image must be in the request's region, with that
  region's DNS suffix ("Invalid DNS suffix 'amazonaws.com' for region
  'us-east-1' in training image. Please provide the valid
  <region>.<dns-suffix>: 'eu-central-1.amazonaws.com'"); a name that is no ECR
  path is "Invalid training image. ..."; and the Random Cut Forest repository
  is served by one registry (account) per region, :data:`REGISTRIES`, as
  ``sagemaker.image_uris.retrieve("randomcutforest", region)`` names it: any
  other account's ``randomcutforest`` is "Access denied for repository: ...".
  A model's image in another region is refused as CreateModel refuses it
  ("Region of ... does not match expected region of ...").

Which images this server runs (the Random Cut Forest's only) is
:func:`rcforest.aws.jobs.check_image`'s rule, checked after these.
"""

import json
import re
import urllib.parse

from rcforest.aws.resources import ApiError

__all__ = [
    "REGISTRIES",
    "REPOSITORY",
    "RoleCheck",
    "check_image_location",
    "dns_suffix",
    "role_error",
    "trusts_sagemaker",
]

# The Random Cut Forest image's registry (account) in each region, as the SageMaker SDK's
# image_uris/randomcutforest.json lists them (version 1).
REGISTRIES = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "991648021394",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "469771592824",
    "ca-west-1": "190319476487",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-central-2": "680994064768",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-south-2": "104374241257",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "226302683700",
    "us-iso-east-1": "490574956308",
    "us-isob-east-1": "765400339828",
    "us-isof-east-1": "108575199400",
    "us-isof-south-1": "124985052026",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}
REPOSITORY = "randomcutforest"
_ECR = re.compile(
    r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.([a-z0-9.-]+?)/([a-z0-9._/-]+)(?::[\w.-]+|@sha256:[0-9a-f]{64})?$"
)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(.+)$")
_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
)
_PULL = "ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer"
_SAGEMAKER = "sagemaker.amazonaws.com"


def dns_suffix(region):
    """The DNS suffix of a region's AWS names (``amazonaws.com``, ``amazonaws.com.cn``, ...)."""
    return next((suffix for prefix, suffix in _SUFFIXES if region.startswith(prefix)), "amazonaws.com")


def check_image_location(image, region, role_arn, training=True):
    """Raise AWS's ``ValidationException`` for an image that is not where SageMaker in ``region`` pulls from.

    Parameters
    ----------
    image : str
        ``TrainingImage`` or a container's ``Image``.
    region : str
        The request's region.
    role_arn : str
        The role that would pull the image, named in the message.
    training : bool, default True
        CreateTrainingJob's messages; CreateModel's otherwise.

    Raises
    ------
    ApiError
    """
    match = _ECR.match(image)
    if match is None:
        what = "training image" if training else "image"
        raise ApiError(
            "ValidationException",
            f"Invalid {what}. Please provide a valid Amazon Elastic Container Registry path "
            "of the Docker image to run.",
        )
    account, image_region, suffix, repository = match.groups()
    expected = dns_suffix(region)
    if image_region != region or suffix != expected:
        if training:
            message = (
                f"Invalid DNS suffix '{suffix}' for region '{image_region}' in training image. "
                f"Please provide the valid <region>.<dns-suffix>: '{region}.{expected}'"
            )
        else:
            message = (
                f'Region of "{image}" does not match expected region of {region}. '
                "Cross region ECR image pulls are not allowed."
            )
        raise ApiError("ValidationException", message)
    if repository == REPOSITORY and REGISTRIES.get(region) != account:
        raise ApiError(
            "ValidationException",
            f"Access denied for repository: {repository} in registry ID: {account}. Please check if your ECR "
            f"repository and image exist and role {role_arn} has proper pull permissions for SageMaker: {_PULL}",
        )


def role_error(arn):
    """AWS's ``ValidationException`` for a role SageMaker cannot assume."""
    return ApiError(
        "ValidationException",
        f"Could not assume role {arn}. Please ensure that the role exists and allows principal "
        f"'{_SAGEMAKER}' to assume the role.",
    )


class RoleCheck:
    """Whether SageMaker can assume a role: one of ``account``'s roles in IAM that trusts SageMaker.

    The role is read from moto's IAM in this process when the server runs it
    (no request: a Create call stays as fast as before), else through the
    IAM API.

    Parameters
    ----------
    iam : boto3 IAM client
        Of the local IAM (moto), whose roles are the account's.
    account : str
        The caller's account.
    """

    def __init__(self, iam, account):
        self.iam = iam
        self.account = account

    def __call__(self, arn):
        """Raise :func:`role_error` unless SageMaker can assume the role ``arn``."""
        match = _ROLE_ARN.match(arn)
        if match is None or match.group(1) != self.account:
            raise role_error(arn)
        name = match.group(2).rsplit("/", 1)[-1]
        found = self._local(name)
        if found is None:
            try:
                role = self.iam.get_role(RoleName=name)["Role"]
            except self.iam.exceptions.NoSuchEntityException:
                raise role_error(arn) from None
            found = role["Arn"], role.get("AssumeRolePolicyDocument")
        role_arn, trust = found
        if role_arn != arn or not trusts_sagemaker(trust):
            raise role_error(arn)

    def _local(self, name):
        """(ARN, trust policy) of role ``name`` from moto's IAM in this process; None to ask the IAM API."""
        try:
            from moto.iam.models import iam_backends

            roles = list(iam_backends[self.account]["aws"].roles.values())
            role = next((role for role in roles if role.name == name), None)
            return None if role is None else (role.arn, role.assume_role_policy_document)
        except Exception:  # another moto, or none here: the IAM API answers
            return None


def trusts_sagemaker(document):
    """Whether a role's trust policy allows ``sagemaker.amazonaws.com`` to call ``sts:AssumeRole``."""
    if isinstance(document, str):
        try:
            document = json.loads(urllib.parse.unquote(document))
        except ValueError:
            return False
    if not isinstance(document, dict):
        return False
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    allowed = False
    for statement in statements:
        if not isinstance(statement, dict) or not _names(statement.get("Action"), ("sts:AssumeRole", "sts:*", "*")):
            continue
        principal = statement.get("Principal")
        if principal == "*":
            named = True
        elif isinstance(principal, dict):
            named = _names(principal.get("Service"), (_SAGEMAKER,)) or _names(principal.get("AWS"), ("*",))
        else:
            named = False
        if named and statement.get("Effect") == "Deny":
            return False
        allowed = allowed or (named and statement.get("Effect") == "Allow")
    return allowed


def _names(value, wanted):
    """Whether a policy's string-or-list ``value`` holds one of ``wanted``."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return any(item in wanted for item in values)
