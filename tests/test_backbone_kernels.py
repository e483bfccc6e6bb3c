"""Device-aware kernels (backbones/kernels.py): the fused (GPU) forms compute what the CPU-tuned loops compute,
with the same parameters. Both forms run here on the CPU: ``kernel_mode("fused")`` forces the GPU form."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import backbones
from backbones.functional import dropout
from backbones.kernels import kernel_mode, use_fused
from backbones.recurrent import GroupedBiLSTM, SequenceLayout
from spcl_search.data.batching import collate

from conftest import DIMS, make_dialogues

TOL = {"atol": 1e-5, "rtol": 1e-5}


def _padded(lengths: list[int], dims: list[int], seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = max(lengths)
    mask = (torch.arange(t)[:, None] < torch.tensor(lengths)[None]).float()
    return [torch.randn(t, len(lengths), d, generator=gen) * mask[..., None] for d in dims], mask


def _run(module: torch.nn.Module, mode: str, fn, seed: int = 7) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output and parameter gradients of ``fn()`` (a weighted sum as the loss) in kernel ``mode``."""
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout masks for both modes
    with kernel_mode(mode):
        out = fn()
    weights = torch.linspace(-1.0, 1.0, out.numel()).view_as(out)
    (out * weights).sum().backward()
    return out.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-with-dropout"])
def test_grouped_bilstm_cudnn_path_gives_the_loops_outputs_and_gradients(training):
    dims = [5, 3, 4]
    xs, mask = _padded([7, 3, 5, 1, 7], dims)
    module = GroupedBiLSTM(dims, hidden=6, num_layers=3, dropout=0.3).train(training)
    layout = SequenceLayout.from_mask(mask)
    loop = _run(module, "loop", lambda: module(xs, layout))
    fused = _run(module, "fused", lambda: module(xs, layout))
    torch.testing.assert_close(fused[0], loop[0], **TOL)
    for got, expected in zip(fused[1], loop[1], strict=True):
        torch.testing.assert_close(got, expected, **TOL)


def test_grouped_bilstm_cudnn_path_is_nn_lstm_on_packed_sequences():
    torch.manual_seed(0)
    hidden, dim = 4, 5
    ref = torch.nn.LSTM(dim, hidden, num_layers=1, bidirectional=True).eval()
    mine = GroupedBiLSTM([dim], hidden, num_layers=1).eval()
    order = torch.cat([torch.arange(0, 2 * hidden), torch.arange(3 * hidden, 4 * hidden), torch.arange(2 * hidden, 3 * hidden)])
    with torch.no_grad():
        mine.weight_in[0].copy_(torch.cat([ref.weight_ih_l0[order], ref.weight_ih_l0_reverse[order]]).t())
        mine.bias_in[0].copy_(torch.cat([(ref.bias_ih_l0 + ref.bias_hh_l0)[order], (ref.bias_ih_l0_reverse + ref.bias_hh_l0_reverse)[order]]))
        mine.weight_hh[0].copy_(torch.stack([ref.weight_hh_l0[order].t(), ref.weight_hh_l0_reverse[order].t()]))
    (x,), mask = _padded([3, 7, 5], [dim])
    with torch.no_grad(), kernel_mode("fused"):
        layout = SequenceLayout.from_mask(mask)
        got = layout.to_padded(mine([x], layout))[0].transpose(0, 1)
        expected, _ = pad_packed_sequence(ref(pack_padded_sequence(x, torch.tensor([3, 7, 5]), enforce_sorted=False))[0])
    torch.testing.assert_close(got, expected, **TOL)


def test_a_model_trained_on_one_path_loads_and_runs_on_the_other():
    dims = [5, 3]
    xs, mask = _padded([4, 6, 2], dims)
    layout = SequenceLayout.from_mask(mask)
    torch.manual_seed(0)
    trained = GroupedBiLSTM(dims, hidden=4).eval()
    with kernel_mode("fused"):
        expected = trained(xs, layout)
    fresh = GroupedBiLSTM(dims, hidden=4).eval()
    fresh.load_state_dict(trained.state_dict())  # strict: the same keys and shapes whatever the path
    with kernel_mode("loop"):
        torch.testing.assert_close(fresh(xs, layout), expected, **TOL)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-with-dropout"])
def test_dialoguegcn_original_form_gives_the_same_logits_and_gradients_on_both_paths(training):
    batch = collate(make_dialogues(5, seed=3), "atv", 2)
    torch.manual_seed(0)
    model = backbones.build("dialoguegcn", "atv", dict(DIMS), 4, 2, variant="original", hidden=8).train(training)

    def loss() -> torch.Tensor:
        return torch.stack(list(model(batch).values()))

    loop, fused = _run(model, "loop", loss), _run(model, "fused", loss)
    torch.testing.assert_close(fused[0], loop[0], **TOL)
    for got, expected in zip(fused[1], loop[1], strict=True):
        torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize("form", ["loop", "fused"])
def test_both_dropout_forms_are_inverted_dropout_of_rate_p(form):
    torch.manual_seed(0)
    x = torch.rand(200_000) + 0.5
    x.requires_grad_(True)
    with kernel_mode(form):
        y = dropout(x, 0.3, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.7)  # survivors scaled by 1 / (1 - p)
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 0.7 +- 5 standard deviations
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)  # the gradient goes through the same mask


def test_cpu_tensors_run_the_cpu_forms_unless_told_otherwise():
    x = torch.zeros(1)
    assert not use_fused(x)
    with kernel_mode("fused"):
        assert use_fused(x)
        with kernel_mode("loop"):
            assert not use_fused(x)
        assert use_fused(x)
    assert not use_fused(x)


def test_an_unknown_kernel_mode_is_refused():
    with pytest.raises(ValueError, match="kernel mode must be one of auto, loop, fused"):
        with kernel_mode("cudnn"):
            pass
