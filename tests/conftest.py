"""Fixtures shared by the test modules."""

import pytest

# The AWS clients under test talk to servers on loopback only: fake credentials,
# no metadata service, no config files, and a dead default endpoint.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "NO_PROXY": "127.0.0.1,localhost",
    "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
}


@pytest.fixture(scope="module")
def aws_env():
    """Set :data:`AWS_ENV` for a test module."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        yield
