"""TRADES and MART losses against an independent NumPy re-derivation of the equations in REFERENCE.md."""
import numpy as np
import pytest
import torch

from robustnb.losses import adversarial_distillation_loss, mart_loss, trades_loss


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture(params=range(5))
def batch(request):
    rng = np.random.default_rng(request.param)
    n, c = 17, 10
    return rng.normal(0, 3, (n, c)), rng.normal(0, 3, (n, c)), rng.integers(0, c, n)


def _t(a): return torch.tensor(a, dtype=torch.float64)


def test_trades_matches_reference(batch):
    nat, adv, y = batch
    p, q = _softmax(nat), _softmax(adv)
    ce = -np.log(p[np.arange(len(y)), y]).mean()
    kl_sum = (p * (np.log(p) - np.log(q))).sum()           # KLDivLoss(log f(x'), f(x)), summed
    for beta in (1.0, 6.0):
        expected = ce + beta * kl_sum / len(y)
        got = trades_loss(_t(nat), _t(adv), torch.tensor(y), beta=beta)['loss'].item()
        assert abs(got - expected) < 1e-6


def test_mart_matches_reference(batch):
    nat, adv, y = batch
    p, q = _softmax(nat), _softmax(adv)
    idx = np.arange(len(y))
    ce_adv = -np.log(q[idx, y]).mean()
    q_wrong = q.copy(); q_wrong[idx, y] = -np.inf
    top_wrong = q_wrong.argmax(1)                            # most likely class other than y
    bce = -np.log(1.0001 - q[idx, top_wrong] + 1e-12).mean()
    kl = (p * (np.log(p) - np.log(q + 1e-12))).sum(1)
    robust = (kl * (1.0000001 - p[idx, y])).mean()
    for beta in (5.0, 6.0):
        got = mart_loss(_t(nat), _t(adv), torch.tensor(y), beta=beta)['loss'].item()
        assert abs(got - (ce_adv + bce + beta * robust)) < 1e-6


def test_distillation_l3_matches_reference(batch):
    adv, teacher, y = batch
    T, beta = 4.0, 0.1
    idx = np.arange(len(y))
    ce = -np.log(_softmax(adv)[idx, y]).mean()
    soft = -(_softmax(teacher / T) * np.log(_softmax(adv / T))).sum(1).mean()
    got = adversarial_distillation_loss(_t(adv), _t(teacher), torch.tensor(y), kind='l3')['loss'].item()
    assert abs(got - ((1 - beta) * ce + 2 * beta * T * T * soft)) < 1e-6


@pytest.mark.parametrize('bad', [-0.5, float('nan'), float('inf'), True, '6'])
def test_weights_must_be_finite_non_negative_numbers(bad):
    "A NaN, infinite, negative, boolean or string weight is refused by name (NaN used to pass `v < 0`)."
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises((ValueError, TypeError), match='^beta: expected a finite number >= 0'):
        trades_loss(logits, logits + 0.1, y, beta=bad)
    with pytest.raises((ValueError, TypeError), match='^beta: expected a finite number >= 0'):
        mart_loss(logits, logits + 0.1, y, beta=bad)


def test_distillation_trades_pairing_kl_direction(batch):
    "ADT Eq. 5 as printed: KL(p_adv || p_nat) by default; kl_order='trades' is TRADES' KL(p_nat || p_adv); float64."
    adv, nat, y = batch
    teacher = adv[::-1].copy()
    p_adv, p_nat = _softmax(adv), _softmax(nat)
    printed = (p_adv * (np.log(p_adv) - np.log(p_nat))).sum(1).mean()
    trades = (p_nat * (np.log(p_nat) - np.log(p_adv))).sum(1).mean()
    mse = ((adv - teacher) ** 2).mean()
    call = lambda **kw: adversarial_distillation_loss(_t(adv), _t(teacher), torch.tensor(y), student_nat=_t(nat), pairing='trades',
                                                      alpha=6.0, **kw)
    assert abs(call()['loss'].item() - (mse + 6 * printed)) < 1e-9
    assert abs(call(kl_order='printed')['pair'].item() - 6 * printed) < 1e-9
    assert abs(call(kl_order='trades')['pair'].item() - 6 * trades) < 1e-9
    assert abs(call(kl_order='trades')['pair'].item() / 6 - trades_loss(_t(nat), _t(adv), torch.tensor(y))['kl'].item()) < 1e-9
    with pytest.raises(ValueError, match='^kl_order'): call(kl_order='reversed')
