"""Fixtures shared by several test modules."""
import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread: the tensors in these tests are tiny, and on a shared 2-core machine extra threads contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
