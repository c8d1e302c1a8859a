"""Per-epoch permutations, batch slices, batch-size resolution and the batch iterator."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from batchlab.data import TensorSplit, batch_index_slices, epoch_permutation, iterate_batches, resolve_batch_size
from batchlab.data.batches import _mix
from batchlab.errors import ConfigError, DataError


# ---------------------------------------------------------------- epoch_permutation


def test_epoch_shuffle_differs_every_epoch_and_is_a_permutation():
    orders = [epoch_permutation(100, epoch, seed=7, shuffle="epoch") for epoch in range(5)]
    for order in orders:
        assert order.dtype == torch.int64 and order.device.type == "cpu"
        assert torch.equal(torch.sort(order).values, torch.arange(100))
    assert all(not torch.equal(orders[i], orders[j]) for i in range(5) for j in range(i + 1, 5))


def test_epoch_shuffle_is_the_documented_generator():
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(3 * 1_000_003 + 4))
    assert torch.equal(epoch_permutation(50, 4, seed=3, shuffle="epoch"), expected)


def test_permutation_depends_only_on_seed_and_epoch():
    first = epoch_permutation(64, 3, seed=11, shuffle="epoch")
    torch.manual_seed(999)  # global RNG state must not matter
    torch.rand(1000)
    epoch_permutation(64, 0, seed=11, shuffle="epoch")  # nor which epochs were drawn before
    assert torch.equal(epoch_permutation(64, 3, seed=11, shuffle="epoch"), first)
    assert not torch.equal(epoch_permutation(64, 3, seed=12, shuffle="epoch"), first)


def test_once_reuses_epoch_zero():
    zero = epoch_permutation(40, 0, seed=5, shuffle="epoch")
    for epoch in range(4):
        assert torch.equal(epoch_permutation(40, epoch, seed=5, shuffle="once"), zero)


def test_none_is_dataset_order():
    assert torch.equal(epoch_permutation(9, 3, seed=1, shuffle="none"), torch.arange(9))


def test_unknown_shuffle_mode():
    with pytest.raises(ConfigError, match=r"unknown shuffle mode 'sometimes'; allowed: epoch, once, none"):
        epoch_permutation(5, 0, seed=0, shuffle="sometimes")


@given(seed=st.integers(-(2**70), 2**70), epoch=st.integers(0, 10**6))
def test_mix_is_a_valid_generator_seed(seed, epoch):
    value = _mix(seed, epoch)
    assert 0 <= value < 2**63
    torch.Generator().manual_seed(value)  # accepted


@given(seed=st.integers(0, 2**40), a=st.integers(0, 10**6), b=st.integers(0, 10**6))
def test_mix_separates_epochs_of_a_seed(seed, a, b):
    assert (_mix(seed, a) == _mix(seed, b)) == (a == b)


# ---------------------------------------------------------------- batch_index_slices


def test_slices_keep_the_last_partial_batch():
    assert batch_index_slices(10, 4) == ((0, 4), (4, 8), (8, 10))
    assert batch_index_slices(10, 4, drop_last=True) == ((0, 4), (4, 8))
    assert batch_index_slices(8, 4, drop_last=True) == ((0, 4), (4, 8))
    assert batch_index_slices(10, 10) == ((0, 10),)
    assert batch_index_slices(3, 4, drop_last=True) == ()


@settings(max_examples=200)
@given(n=st.integers(0, 500), batch_size=st.integers(1, 600), drop_last=st.booleans())
def test_slices_cover_each_position_once(n, batch_size, drop_last):
    slices = batch_index_slices(n, batch_size, drop_last=drop_last)
    covered = [i for start, end in slices for i in range(start, end)]
    expected_len = n - n % batch_size if drop_last else n
    assert covered == list(range(expected_len))
    assert all(end - start == batch_size for start, end in slices[:-1])
    assert len(slices) == (n // batch_size if drop_last else -(-n // batch_size))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4", 1.0])
def test_slices_reject_bad_batch_size(bad):
    batch_index_slices(10, 1)  # cached: an equal but invalid value must not hit this entry
    with pytest.raises(ConfigError, match="batch size"):
        batch_index_slices(10, bad)


# ---------------------------------------------------------------- resolve_batch_size


def test_full_means_the_whole_training_set():
    assert resolve_batch_size("full", 4500) == 4500
    assert resolve_batch_size("FULL", 4500) == 4500
    assert resolve_batch_size(64, 4500) == 64
    assert resolve_batch_size("64", 4500) == 64
    assert resolve_batch_size(4500, 4500) == 4500


def test_batch_larger_than_training_set():
    with pytest.raises(ConfigError) as caught:
        resolve_batch_size(6000, 4500)
    assert str(caught.value) == "batch size 6000 is larger than the training set (4500 examples); allowed: 1 … 4500 or 'full'"


@pytest.mark.parametrize("bad, message", [
    (0, "batch size 0 is too small; allowed: 1 … 100 or 'full'"),
    (-5, "batch size -5 is too small; allowed: 1 … 100 or 'full'"),
    ("half", "batch size 'half' is not an integer; allowed: 1 … 100 or 'full'"),
    (2.5, "batch size 2.5 is not an integer; allowed: 1 … 100 or 'full'"),
    (True, "batch size True is not an integer; allowed: 1 … 100 or 'full'"),
])
def test_bad_batch_sizes(bad, message):
    with pytest.raises(ConfigError) as caught:
        resolve_batch_size(bad, 100)
    assert str(caught.value) == message


def test_empty_training_set():
    with pytest.raises(DataError, match="training set is empty"):
        resolve_batch_size("full", 0)


# ---------------------------------------------------------------- iterate_batches


def labelled_split(n: int) -> TensorSplit:
    # x encodes the example's index, so batches can be traced back to positions.
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return TensorSplit(x, torch.arange(n))


def test_batches_follow_the_epoch_permutation():
    split = labelled_split(23)
    batches = list(iterate_batches(split, 5, epoch=2, seed=9))
    order = epoch_permutation(23, 2, seed=9, shuffle="epoch")
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([y for _, y in batches]), order)
    for x, y in batches:
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # images travel with their labels


def test_batches_drop_last_and_full():
    split = labelled_split(23)
    assert [len(y) for _, y in iterate_batches(split, 5, epoch=0, seed=0, drop_last=True)] == [5, 5, 5, 5]
    (only,) = list(iterate_batches(split, "full", epoch=0, seed=0))
    assert torch.equal(torch.sort(only[1]).values, torch.arange(23))


def test_unshuffled_batches_are_views_in_order():
    split = labelled_split(10)
    batches = list(iterate_batches(split, 4, epoch=5, seed=1, shuffle="none"))
    assert [y.tolist() for _, y in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].data_ptr() == split.x.data_ptr()


def test_batch_size_larger_than_split_is_an_error():
    with pytest.raises(ConfigError, match=r"larger than the training set \(10 examples\)"):
        list(iterate_batches(labelled_split(10), 11, epoch=0, seed=0))


@pytest.mark.gpu
def test_batches_on_the_gpu_match_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    split = labelled_split(50)
    on_gpu = split.to("cuda")
    for (xc, yc), (xg, yg) in zip(iterate_batches(split, 8, epoch=1, seed=2), iterate_batches(on_gpu, 8, epoch=1, seed=2)):
        assert xg.device.type == "cuda" and torch.equal(yg.cpu(), yc) and torch.equal(xg.cpu(), xc)
