"""The SPCL code's DialogueRNN (backbones/dialogue_rnn.py): the history attention's hand-written backward."""

from __future__ import annotations

import pytest
import torch

from backbones.dialogue_rnn import PositionalHistory, _dropout_keep


def _plain(states: list[torch.Tensor], pe: torch.Tensor, weight: torch.Tensor, p: float, seeds: list[int]) -> list[torch.Tensor]:
    """The same attention with plain autograd: stack the history, add PE, drop, attend."""
    outs = []
    for t in range(1, len(states)):
        mem = torch.stack(states[:t], dim=2) + pe[:t]
        keep = _dropout_keep(mem.shape, p, seeds[t - 1], mem)
        if keep is not None:
            mem = mem * keep
        alpha = torch.softmax(torch.einsum("gbtd,gd->gbt", mem, weight), dim=-1)
        outs.append(torch.einsum("gbt,gbtd->gbd", alpha, mem))
    return outs


@pytest.mark.parametrize("p", [0.0, 0.1])
def test_positional_history_gives_plain_autograds_outputs_and_gradients(p):
    torch.manual_seed(0)
    g, b, t, d = 3, 2, 6, 5
    base = [torch.randn(g, b, d, dtype=torch.float64, requires_grad=True) for _ in range(t)]
    weight = torch.randn(g, d, dtype=torch.float64, requires_grad=True)
    pe = torch.randn(t, d, dtype=torch.float64)
    upstream = [torch.randn(g, b, d, dtype=torch.float64) for _ in range(t - 1)]

    # ours: states computed from the leaves by a differentiable op, written step by step
    states = [x * 1.5 for x in base]
    torch.manual_seed(1)
    history = PositionalHistory(g, b, t, d, pe, p, states[0])
    ours, seeds = [], []
    for k in range(t - 1):
        history.write(states[k])
        state = torch.random.get_rng_state()
        seeds.append(int(torch.randint(0, 2**62, (1,)).item()) if p > 0 else 0)
        torch.random.set_rng_state(state)
        ours.append(history.attend(weight))
    sum((o * u).sum() for o, u in zip(ours, upstream)).backward()
    grads_ours = [x.grad.clone() for x in base[:-1]] + [weight.grad.clone()]  # the last state is never read
    for x in [*base, weight]:
        x.grad = None

    plain = _plain([x * 1.5 for x in base], pe, weight, p, seeds)
    sum((o * u).sum() for o, u in zip(plain, upstream)).backward()
    for a, c in zip(ours, plain):
        torch.testing.assert_close(a, c)
    for a, c in zip(grads_ours, [x.grad for x in base[:-1]] + [weight.grad], strict=True):
        torch.testing.assert_close(a, c)


def test_the_history_dropout_mask_is_fresh_at_every_step():
    torch.manual_seed(0)
    pe = torch.zeros(4, 8)
    history = PositionalHistory(1, 1, 4, 8, pe, 0.5, pe)
    history.write(torch.ones(1, 1, 8))
    weight = torch.zeros(1, 8)  # uniform attention: the output is the dropped history itself
    first, second = history.attend(weight), history.attend(weight)
    assert not torch.equal(first, second)
    assert set(first.flatten().tolist()) <= {0.0, 2.0}
