import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def float64_default():
    """float64 as torch's default dtype for one test (modules opt in with
    ``pytestmark = pytest.mark.usefixtures("float64_default")``)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
