"""Fixtures shared by fastem's tests."""
import pytest
from helpers import make_blobs

from fastem.families.gaussian import COVARIANCE_TYPES


@pytest.fixture(scope="session")
def blobs():
    return make_blobs()


@pytest.fixture(params=COVARIANCE_TYPES)
def covariance_type(request):
    return request.param
