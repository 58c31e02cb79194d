import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread per backend: on a small shared machine extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
