"""IAM ``SimulatePrincipalPolicy``, which moto does not implement, evaluated from the principal's own policies.

The SageMaker SDK v3 calls it before every training job (its role check,
and which bucket to stage code in). The answer is IAM's policy
simulator's, for identity policies:

- the principal (a role, a user with its groups, or a group) brings its
  attached managed policies (AWS's, such as ``AmazonSageMakerFullAccess``,
  and the account's) and its inline policies, read through the IAM API;
  ``PolicyInputList`` adds more;
- each action is evaluated on each resource (``*`` when the request names
  none): a matching ``Deny`` statement gives ``explicitDeny``, otherwise a
  matching ``Allow`` gives ``allowed``, otherwise ``implicitDeny``. Actions
  match case-insensitively, resources case-sensitively, both with the
  ``*`` and ``?`` wildcards; ``NotAction`` and ``NotResource`` are read;
- a statement with a ``Condition`` applies only when every key it tests is
  given in ``ContextEntries`` and the test holds (``String*``, ``Arn*``,
  ``Bool``, with ``...IfExists``); a missing key is listed in
  ``MissingContextValues``, as IAM does.

Resource policies, permission boundaries and organisations' SCPs are not
evaluated.
"""

import json
import re
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from rcforest.aws.resources import ApiError

__all__ = ["PolicySimulator", "decide", "members", "wildcard_match"]

_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(role|user|group)/(?:.*/)?([^/]+)$")
_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"


def members(fields, name):
    """The values of a query-protocol list ``name`` (``name.member.1``, ``name.member.2``, ...), in order."""
    prefix = f"{name}.member."
    numbered = []
    for key, values in fields.items():
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            numbered.append((int(key[len(prefix) :]), values[0]))
    return [value for _, value in sorted(numbered)]


def wildcard_match(pattern, value, ignore_case):
    """Whether ``value`` matches the IAM wildcard ``pattern`` (``*`` any run, ``?`` one character).

    A greedy scan that goes back only to the last ``*``: at most
    ``len(pattern) * len(value)`` steps, whatever the request holds (a
    regular expression of many stars backtracks for minutes).
    """
    if ignore_case:
        pattern, value = pattern.casefold(), value.casefold()
    p = v = 0
    star, resume = -1, 0
    while v < len(value):
        if p < len(pattern) and pattern[p] in ("?", value[v]):
            p, v = p + 1, v + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume = p, v
            p += 1
        elif star >= 0:
            resume += 1
            p, v = star + 1, resume
        else:
            return False
    return pattern[p:].strip("*") == ""


def _listed(value):
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []


def _matches(patterns, value, ignore_case):
    return any(wildcard_match(pattern, value, ignore_case) for pattern in _listed(patterns))


def _condition_holds(condition, context, missing):
    """Whether a statement's ``Condition`` holds for ``context`` (key: list of values); note missing keys."""
    if not isinstance(condition, dict):
        return False
    for operator, tests in condition.items():
        if not isinstance(tests, dict):
            return False
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        for key, expected in tests.items():
            given = context.get(key.lower())
            if given is None:
                if not if_exists:
                    missing.append(key)
                    return False
                continue
            expected = [str(item) for item in _listed(expected)] or [json.dumps(expected)]
            if base in ("StringEquals", "ArnEquals"):
                held = any(value in expected for value in given)
            elif base == "StringEqualsIgnoreCase":
                held = any(value.lower() in [e.lower() for e in expected] for value in given)
            elif base in ("StringLike", "ArnLike"):
                held = any(_matches(expected, value, False) for value in given)
            elif base == "StringNotEquals":
                held = all(value not in expected for value in given)
            elif base in ("StringNotLike", "ArnNotLike"):
                held = not any(_matches(expected, value, False) for value in given)
            elif base == "Bool":
                held = any(value.lower() in [e.lower() for e in expected] for value in given)
            else:
                return False  # an operator this simulator does not read never applies
            if not held:
                return False
    return True


def decide(policies, action, resource, context):
    """IAM's decision for one action on one resource.

    Parameters
    ----------
    policies : list of (str, dict)
        Each policy's id (its name) and document.
    action : str
    resource : str
    context : dict of str to list of str
        Condition keys (lower case) and their values.

    Returns
    -------
    decision : str
        ``"allowed"``, ``"explicitDeny"`` or ``"implicitDeny"``.
    matched : list of str
        The ids of the policies whose statements decided it.
    missing : list of str
        Condition keys that a statement tested and the context lacks.
    """
    allowed, denied, missing = [], [], []
    for policy_id, document in policies:
        statements = document.get("Statement", []) if isinstance(document, dict) else []
        for statement in [statements] if isinstance(statements, dict) else statements:
            if not isinstance(statement, dict):
                continue
            if "NotAction" in statement:
                concerned = not _matches(statement["NotAction"], action, True)
            else:
                concerned = _matches(statement.get("Action"), action, True)
            if "NotResource" in statement:
                concerned = concerned and not _matches(statement["NotResource"], resource, False)
            else:
                concerned = concerned and _matches(statement.get("Resource"), resource, False)
            if not concerned:
                continue
            if "Condition" in statement and not _condition_holds(statement["Condition"], context, missing):
                continue
            (denied if statement.get("Effect") == "Deny" else allowed).append(policy_id)
    if denied:
        return "explicitDeny", sorted(set(denied)), sorted(set(missing))
    if allowed:
        return "allowed", sorted(set(allowed)), sorted(set(missing))
    return "implicitDeny", [], sorted(set(missing))


class PolicySimulator:
    """Answer ``SimulatePrincipalPolicy`` from the IAM API's view of the principal.

    Parameters
    ----------
    iam : boto3 IAM client
        Of the local IAM (moto).
    """

    def __init__(self, iam):
        self.iam = iam

    def _documents(self, kind, name):
        """The (id, document) of a principal's attached and inline policies."""
        iam = self.iam
        attached = getattr(iam, f"list_attached_{kind}_policies")(**{f"{kind.title()}Name": name})["AttachedPolicies"]
        policies = []
        for policy in attached:
            version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"]
            policies.append((policy["PolicyName"], _document(document["Document"])))
        for policy_name in getattr(iam, f"list_{kind}_policies")(**{f"{kind.title()}Name": name})["PolicyNames"]:
            inline = getattr(iam, f"get_{kind}_policy")(**{f"{kind.title()}Name": name, "PolicyName": policy_name})
            policies.append((policy_name, _document(inline["PolicyDocument"])))
        return policies

    def policies_of(self, arn):
        """The (id, document) of every identity policy of the principal ``arn``; ApiError when it is none."""
        match = _PRINCIPAL.match(arn or "")
        if match is None:
            raise ApiError("InvalidInput", f"Invalid ARN: {arn}; give the ARN of a user, group or role")
        kind, name = match.group(2), match.group(3)
        try:
            policies = self._documents(kind, name)
            if kind == "user":
                for group in self.iam.list_groups_for_user(UserName=name)["Groups"]:
                    policies += self._documents("group", group["GroupName"])
        except self.iam.exceptions.NoSuchEntityException:
            raise ApiError("NoSuchEntity", f"The {kind} with name {name} cannot be found.", 404) from None
        return policies

    def answer(self, fields):
        """The XML answer to a SimulatePrincipalPolicy request's decoded form ``fields``."""
        arn = (fields.get("PolicySourceArn") or [""])[0]
        actions = members(fields, "ActionNames")
        if not actions:
            raise ApiError("ValidationError", "1 validation error detected: ActionNames must not be empty")
        resources = members(fields, "ResourceArns") or ["*"]
        policies = self.policies_of(arn)
        for number, text in enumerate(members(fields, "PolicyInputList"), start=1):
            try:
                policies.append((f"PolicyInputList.{number}", json.loads(text)))
            except ValueError:
                raise ApiError("MalformedPolicyDocument", f"PolicyInputList.{number} is not a JSON document") from None
        context, number = {}, 1
        while (key := fields.get(f"ContextEntries.member.{number}.ContextKeyName")) is not None:
            context[key[0].lower()] = members(fields, f"ContextEntries.member.{number}.ContextKeyValues")
            number += 1
        results = "".join(_result(policies, action, resources, context) for action in actions)
        return (
            f'<SimulatePrincipalPolicyResponse xmlns="{_NAMESPACE}"><SimulatePrincipalPolicyResult>'
            f"<IsTruncated>false</IsTruncated><EvaluationResults>{results}</EvaluationResults>"
            f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            "</ResponseMetadata></SimulatePrincipalPolicyResponse>"
        ).encode()


def _document(document):
    """A policy document as the IAM API returns it (a dict, or URL-encoded JSON text) as a dict."""
    if isinstance(document, str):
        try:
            return json.loads(urllib.parse.unquote(document))
        except ValueError:
            return {}
    return document if isinstance(document, dict) else {}


def _statements(matched):
    return "".join(
        f"<member><SourcePolicyId>{escape(policy)}</SourcePolicyId><SourcePolicyType>IAM Policy</SourcePolicyType>"
        "</member>"
        for policy in matched
    )


def _missing(keys):
    return "".join(f"<member>{escape(key)}</member>" for key in keys)


def _result(policies, action, resources, context):
    """One ``EvaluationResults`` member: the action on every resource (the worst decision overall)."""
    decisions = [(resource, *decide(policies, action, resource, context)) for resource in resources]
    order = {"explicitDeny": 0, "implicitDeny": 1, "allowed": 2}
    _, overall, matched, missing = min(decisions, key=lambda item: order[item[1]])
    specific = ""
    if len(resources) > 1:
        specific = (
            "<ResourceSpecificResults>"
            + "".join(
                f"<member><EvalResourceName>{escape(resource)}</EvalResourceName>"
                f"<EvalResourceDecision>{decision}</EvalResourceDecision>"
                f"<MatchedStatements>{_statements(found)}</MatchedStatements>"
                f"<MissingContextValues>{_missing(lacking)}</MissingContextValues></member>"
                for resource, decision, found, lacking in decisions
            )
            + "</ResourceSpecificResults>"
        )
    return (
        f"<member><EvalActionName>{escape(action)}</EvalActionName>"
        f"<EvalResourceName>{escape(resources[0] if len(resources) == 1 else '*')}</EvalResourceName>"
        f"<EvalDecision>{overall}</EvalDecision><MatchedStatements>{_statements(matched)}</MatchedStatements>"
        f"<MissingContextValues>{_missing(missing)}</MissingContextValues>{specific}</member>"
    )
