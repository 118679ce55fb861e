"""robustnb.hessian against PyHessian 0.1, dense Hessians of small float64 models, and its own contracts."""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from robustnb.data import load_dataset
from robustnb.hessian import (grad_norm, hessian_trace, hvp, per_sample_eigen_estimate, per_sample_top_eigenvalue,
                              taylor_bounds, top_eigenvalues)
from robustnb.models import create_model
from robustnb.train import set_seed, train_standard


@pytest.fixture(scope='module')
def digits_cnn():
    "SAT's SmallCNN trained for 2 epochs on digits (near a minimum, so power iteration converges quickly), and a batch of 32."
    digits = load_dataset('digits')
    set_seed(0)
    model = create_model('smallcnn', dataset='digits')
    train_standard(model, DataLoader(digits, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)),
                   epochs=2, progress=False)
    model.eval().zero_grad(set_to_none=True)
    return model, digits.images[100:132], digits.labels[100:132]


def pyhessian(model, x, y):
    "A PyHessian object on a deep copy (PyHessian calls model.eval() and leaves graph-carrying gradients in .grad)."
    import pyhessian
    return pyhessian.hessian(copy.deepcopy(model).eval(), nn.CrossEntropyLoss(), data=(x, y), cuda=False)


def test_top_eigenvalues_match_pyhessian(digits_cnn):
    model, x, y = digits_cnn
    ours = top_eigenvalues(model, x, y, k=2, tol=1e-3)
    torch.manual_seed(0)                       # PyHessian's start vectors come from the global RNG: the same as ours
    theirs, _ = pyhessian(model, x, y).eigenvalues(maxIter=100, tol=1e-3, top_n=2)
    assert abs(ours.values[0].item() - theirs[0]) <= 0.01 * abs(theirs[0]), (ours.values, theirs)
    assert abs(ours.values[1].item() - theirs[1]) <= 0.01 * abs(theirs[1]), (ours.values, theirs)


def test_trace_agrees_with_pyhessian(digits_cnn):
    model, x, y = digits_cnn
    mean, se = hessian_trace(model, x, y, n_samples=40)
    torch.manual_seed(0)
    draws = torch.tensor(pyhessian(model, x, y).trace(maxIter=40, tol=-1.0), dtype=torch.float64)   # tol<0: all 40 probes
    their_mean, their_se = draws.mean().item(), (draws.std() / math.sqrt(len(draws))).item()
    assert abs(mean - their_mean) <= 3 * math.hypot(se, their_se), (mean, se, their_mean, their_se)


def dense_hessian(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    def f(t):
        ps = dict(zip(names, (c.view(s) for c, s in zip(t.split([s.numel() for s in shapes]), shapes))))
        return F.cross_entropy(torch.func.functional_call(model, ps, (x,)), y)
    return torch.autograd.functional.hessian(f, theta)


def tiny(seed, width=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 3)).double()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_dense_oracle(seed):
    "hvp to 1e-8, the top eigenvalue to 1e-6 relative and the trace within 3 standard errors, on random float64 networks."
    model = tiny(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(12, 1, 2, 2, dtype=torch.float64, generator=g), torch.randint(0, 3, (12,), generator=g)
    H = dense_hessian(model, x, y)
    v = torch.randn(H.shape[0], dtype=torch.float64, generator=g)
    vs = [c.view(p.shape) for c, p in zip(v.split([p.numel() for p in model.parameters()]), model.parameters())]
    for method in ('double_backprop', 'forward_over_reverse'):
        hv = torch.cat([h.reshape(-1) for h in hvp(model, x, y, vs, method=method)])
        assert (hv - H @ v).abs().max() <= 1e-8
    e = torch.linalg.eigvalsh(H)
    top = e[e.abs().argmax()]
    value = top_eigenvalues(model, x, y, tol=1e-13, max_iter=20000).values[0]
    assert abs(value - top) <= 1e-6 * abs(top), (value, top)
    mean, se = hessian_trace(model, x, y, n_samples=200, seed=seed)
    assert abs(mean - torch.trace(H).item()) <= 3 * se


def test_taylor_lower_bound_tends_to_curvature_along_gradient():
    "For a smooth network, the lower bound with a small step is g^T H g / |g|^2 from the dense Hessian (O(alpha) error)."
    model = tiny(3)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(12, 1, 2, 2, dtype=torch.float64, generator=g), torch.randint(0, 3, (12,), generator=g)
    H = dense_hessian(model, x, y)
    grad = torch.cat([t.reshape(-1) for t in torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))])
    along = (grad @ H @ grad / (grad @ grad)).item()
    errors = [abs(taylor_bounds(model, x, y, alpha_frac=a)[0] - along) for a in (1e-2, 1e-3, 1e-4)]
    assert errors[2] < errors[1] < errors[0] and errors[2] <= 1e-3 * max(1.0, abs(along)), (errors, along)


@pytest.mark.parametrize('seed', range(4))
def test_taylor_quadratic_exact(seed):
    "On l = 1/2 t^T A t + b^T t: lower = curvature along the gradient, upper = that + 4/alpha_frac, lambda_max in between."
    g = torch.Generator().manual_seed(seed)
    n = 8
    Q = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))[0]
    eig = torch.rand(n, dtype=torch.float64, generator=g) * 10 - 2
    A, b = Q @ torch.diag(eig) @ Q.T, torch.randn(n, dtype=torch.float64, generator=g)
    class Params(nn.Module):
        def __init__(self):
            super().__init__(); self.t = nn.Parameter(torch.randn(n, dtype=torch.float64, generator=g))
        def forward(self, x): return self.t.expand(len(x), -1)
    model = Params()
    def quadratic(out, y): return 0.5 * out[0] @ A @ out[0] + b @ out[0]
    grad = A @ model.t.detach() + b
    along = (grad @ A @ grad / (grad @ grad)).item()
    for frac in (0.01, 0.1, 1.0):
        lower, upper = taylor_bounds(model, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.long), alpha_frac=frac, loss_fn=quadratic)
        assert abs(lower - along) <= 1e-8 * max(1, abs(along))
        assert abs(upper - (along + 4 / frac)) <= 1e-6 * (along + 4 / frac)
        assert lower <= eig.max().item() <= upper


@pytest.mark.parametrize('alpha_frac', [1e-3, 0.01, 1.0, 30.0])
def test_lower_never_above_upper(alpha_frac):
    "lower <= upper in every case, also with huge steps where the ascent step can lower the loss."
    for seed in range(3):
        set_seed(seed)
        model = create_model('smallcnn', dataset='digits', input_size=8)
        g = torch.Generator().manual_seed(seed)
        x, y = torch.rand(20, 1, 8, 8, generator=g), torch.randint(0, 10, (20,), generator=g)
        lower, upper = taylor_bounds(model, x, y, alpha_frac=alpha_frac)
        assert lower <= upper
        for sub in (1, 7):
            lo, up = taylor_bounds(model, x, y, alpha_frac=alpha_frac, sub_batch=sub)
            assert lo.shape == (20,) and (lo <= up).all()


def bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


@pytest.mark.parametrize('train', [False, True])
def test_methods_agree_and_state_is_kept(train):
    "Both product methods agree with BatchNorm in either mode; mode, parameters, requires_grad, .grad and buffers are kept."
    model = bn_net().train(train)
    model[0].bias.requires_grad_(False)
    model[4].weight.grad = torch.full_like(model[4].weight, 7.0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)
    state = copy.deepcopy(model.state_dict())
    trainable = [p for p in model.parameters() if p.requires_grad]
    v = [torch.randn(p.shape, generator=g) for p in trainable]
    a = hvp(model, x, y, v)
    b = hvp(model, x, y, v, method='forward_over_reverse')
    for s, t in zip(a, b): assert torch.allclose(s, t, rtol=1e-4, atol=1e-5)
    top_eigenvalues(model, x, y, k=2); hessian_trace(model, x, y, n_samples=3); grad_norm(model, x, y)
    taylor_bounds(model, x, y); per_sample_eigen_estimate(model, x, y, estimator='sat', sub_batch=4)
    if train:                                            # one-sample batches need eval-mode BatchNorm
        with pytest.raises(ValueError, match='^model: BatchNorm'): per_sample_top_eigenvalue(model, x[:3], y[:3])
        with pytest.raises(ValueError, match='^model: BatchNorm'): per_sample_eigen_estimate(model, x, y)
    else:
        per_sample_top_eigenvalue(model, x[:3], y[:3], max_iter=5)
        per_sample_eigen_estimate(model, x, y); per_sample_eigen_estimate(model, x, y, estimator='power', iterations=2)
    assert model.training == train and all(m.training == train for m in model.modules())
    assert not model[0].bias.requires_grad and model[0].weight.requires_grad
    assert torch.equal(model[4].weight.grad, torch.full_like(model[4].weight, 7.0)) and model[0].weight.grad is None
    for k, t in model.state_dict().items(): assert torch.equal(t, state[k]), k


def test_per_sample_estimate_is_batched_consistently():
    "The sub-batch estimate depends on the sub-batches only: splitting the call along them gives the same numbers."
    set_seed(0)
    model = create_model('smallcnn', dataset='digits').eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 1, 8, 8, generator=g), torch.randint(0, 10, (40,), generator=g)
    whole = per_sample_eigen_estimate(model, x, y, estimator='sat', sub_batch=16)
    parts = torch.cat([per_sample_eigen_estimate(model, x[i:i + 16], y[i:i + 16], estimator='sat', sub_batch=16) for i in (0, 16, 32)])
    assert torch.allclose(whole, parts, rtol=1e-5)
    # each sample's own gradient: the chunk size is memory only
    own = [per_sample_eigen_estimate(model, x, y, sub_batch=s, dtype=torch.float64) for s in (1, 7, 40)]
    for o in own[1:]: assert torch.allclose(o, own[0], rtol=1e-9, atol=1e-9)


def test_bad_input_names_the_argument():
    model = tiny(0)
    x, y = torch.randn(4, 1, 2, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    cases = [(lambda: top_eigenvalues(model, x, y, k=0), 'k:'), (lambda: top_eigenvalues(model, x[:0], y[:0]), 'x:'),
             (lambda: top_eigenvalues(model, x, y, tol=-1), 'tol:'), (lambda: top_eigenvalues(model, x, y, method='x'), 'method:'),
             (lambda: hessian_trace(model, x, y, n_samples=0), 'n_samples:'), (lambda: grad_norm(model, x, y[:2]), 'y:'),
             (lambda: taylor_bounds(model, x, y, alpha_frac=-0.1), 'alpha_frac:'),
             (lambda: per_sample_eigen_estimate(model, x, y, sub_batch=0), 'sub_batch:'),
             (lambda: per_sample_eigen_estimate(model, x, y, bound='both'), 'bound:'),
             (lambda: per_sample_eigen_estimate(model, x, y, estimator='exact'), 'estimator:'),
             (lambda: per_sample_eigen_estimate(model, x, y, estimator='power', iterations=0), 'iterations:'),
             (lambda: taylor_bounds(model, x, y, form='paper'), 'form:'),
             (lambda: per_sample_top_eigenvalue(model, x, y, tol=0), 'tol:')]
    for fn, name in cases:
        with pytest.raises(ValueError, match=f'^{name}'): fn()
    with pytest.raises(TypeError, match='^dtype:'): taylor_bounds(model, x, y, dtype='double')
    frozen = tiny(0).requires_grad_(False)
    with pytest.raises(ValueError, match='^model:'): top_eigenvalues(frozen, x, y)


def test_per_sample_estimate_with_single_sample_batches_is_the_batch_bound():
    "With sub_batch=1 each sample's estimate is the mean-loss Taylor bound of that sample alone (the scalar code path)."
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3*6*6, 4)).double().eval()
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(5, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 4, (5,), generator=g)
    for bound, k in (('lower', 0), ('upper', 1)):
        est = per_sample_eigen_estimate(model, x, y, estimator='sat', sub_batch=1, alpha_frac=0.05, bound=bound)
        assert torch.allclose(per_sample_eigen_estimate(model, x, y, alpha_frac=0.05, bound=bound), est, rtol=1e-9, atol=1e-12)
        single = torch.tensor([taylor_bounds(model, x[i:i + 1], y[i:i + 1], alpha_frac=0.05)[k] for i in range(5)],
                              dtype=torch.float64)
        assert torch.allclose(est.double(), single, rtol=1e-9, atol=1e-12)


def test_lanczos_takes_fewer_products_than_power_iteration_for_a_closer_value(digits_cnn):
    "Equal tol: Lanczos stops after fewer Hessian-vector products, nearer the converged eigenvalues."
    model, x, y = digits_cnn
    exact = top_eigenvalues(model, x, y, k=2, tol=1e-10, max_iter=300).values
    lz = top_eigenvalues(model, x, y, k=2, tol=1e-3)
    pw = top_eigenvalues(model, x, y, k=2, tol=1e-3, algorithm='power')
    assert lz.iterations[0] < sum(pw.iterations)           # one basis for both values; power iteration deflates
    one = lambda alg: top_eigenvalues(model, x, y, k=1, tol=1e-3, algorithm=alg).iterations[0]
    assert one('lanczos') < one('power')
    err = lambda r: ((r.values - exact).abs()/exact.abs()).max().item()
    assert err(lz) <= err(pw) and err(lz) < 1e-3, (lz, pw, exact)


def test_batched_trace_probes_are_the_same_probes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.rand(10, 1, 4, 4), torch.arange(10) % 3
    one = hessian_trace(model, x, y, n_samples=12, probes_per_pass=1, method='double_backprop')
    for b in (5, 12, 40):
        assert hessian_trace(model, x, y, n_samples=12, probes_per_pass=b, method='double_backprop') == pytest.approx(one, rel=1e-5)
    # forward-over-forward (the default on an eval-mode model) takes the same probes
    fof = hessian_trace(model.eval(), x, y, n_samples=12)
    assert fof.method == 'forward_over_forward' and fof == pytest.approx(one, rel=1e-5)


@pytest.mark.parametrize('name', ['smallcnn', 'preactresnet20'])
def test_forward_over_forward_trace_equals_double_backprop(name):
    "The same probes through both methods on the papers' networks, in float64: the same estimate to rounding."
    torch.manual_seed(0)
    model = create_model(name, dataset='digits' if name == 'smallcnn' else 'cifar10').double().eval()
    size, k = (8, 1) if name == 'smallcnn' else (32, 3)
    x, y = torch.rand(3, k, size, size, dtype=torch.float64), torch.tensor([0, 1, 2])
    fof = hessian_trace(model, x, y, n_samples=3, progress=False)
    db = hessian_trace(model, x, y, n_samples=3, method='double_backprop', progress=False)
    assert fof.method == 'forward_over_forward' and db.method == 'double_backprop'
    assert fof.mean == pytest.approx(db.mean, rel=1e-10) and fof.std_error == pytest.approx(db.std_error, rel=1e-8)
