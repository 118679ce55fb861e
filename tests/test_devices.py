"""Devices: every public function that takes a model and tensors runs on the model's device and returns on the caller's.

One table of cases, run with the model and the caller's tensors on different devices:

- `model-cuda-data-cpu` and `model-cpu-data-cuda` (marked `gpu`, skipped without one): every public function, its
  result on the caller's device and equal to the result with everything on the model's device;
- `model-cpu-data-fake`, everywhere: `meta` stands in for a second device, with the data of each tensor copied there held
  aside (`FakeDevice`, patched in as `robustnb.attacks._move`, the one copy `on_model_device` makes). It runs the
  functions that move through `on_model_device` with real numbers, so a tensor argument that is not moved fails loudly
  (a meta tensor reaches a CPU computation) and results are compared with the all-CPU ones.

Below them, the mechanism itself: which copies it makes (none when the devices agree), the model on `meta` (shapes only),
and a check that every public function taking a model is wrapped or moves its batches itself."""
import inspect
import math
from collections import namedtuple
from functools import partial
from types import SimpleNamespace

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import robustnb.attacks as attacks_module
from robustnb import attacks, evaluate, hessian, landscape, plots, saliency
from robustnb.attacks import (_device_of, _first_device, _to_device, autoattack, bim, cw_pgd, fgsm, mim,
                              on_model_device, pgd, pgd_l2, transfer_attack)
from robustnb.evaluate import paper_attacks, robust_accuracy, sanity_check
from robustnb.hessian import (Eigenpairs, grad_norm, hessian_trace, hvp, per_sample_eigen_estimate,
                              per_sample_top_eigenvalue, taylor_bounds, top_eigenvalues)
from robustnb.landscape import (decision_slice, embed_features, loss_on, loss_surface, normalize_direction,
                                random_directions)
from robustnb.models import Classifier
from robustnb.plots import (display_normalize, plot_decision_slice, plot_eigen_scatter, plot_tsne, show_attention,
                            show_deltas, show_saliency)
from robustnb import matching, recipes
from robustnb.matching import student_input_grads
from robustnb.recipes import ALP, MART, PGDAT, TRADES, Standard, trades_attack
from robustnb.saliency import (alignment, attention_map, attribute, binarized_alignment, gradcam, input_grad,
                               linearized_robustness)
from robustnb.train import Recipe, accuracy, fit

CUDA = torch.cuda.is_available()
needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason='needs a GPU')]
EPS = 0.1


class Tiny(Classifier):
    "Conv, BatchNorm (buffers), ReLU, strided conv, linear: 8x8 grey images to 10 classes, with `feature_maps` and `features`."
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.fc = nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.Linear(8, 10)
        with torch.no_grad():                                      # BatchNorm statistics that are not the identity
            self.bn.running_mean.uniform_(-0.1, 0.1); self.bn.running_var.uniform_(0.5, 1.5)
        self.eval()
    def feature_maps(self, x): return F.relu(self.conv2(F.relu(self.bn(self.conv1(x)))))


def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g)


class FakeDevice:
    "`meta` as a second device that keeps data: a copy to meta holds the source aside, a copy back returns it (zeros if none)."
    def __init__(self): self.held, self.copies = {}, []
    def move(self, t, device):
        device = torch.device(device)
        self.copies.append((t.device.type, device.type))
        if device.type == 'meta':
            m = t.to(device)
            self.held[id(m)] = (m, t)                               # the meta tensor is kept alive: its id stays unique
            return m
        if t.device.type == 'meta': return self.host(t)
        return t.to(device)
    def host(self, t):
        "The data behind a tensor on the fake device (a tensor elsewhere is itself)."
        if t.device.type != 'meta': return t
        m, data = self.held.get(id(t), (None, None))
        return data if m is t else torch.zeros_like(t, device='cpu')


@pytest.fixture
def fake(monkeypatch):
    f = FakeDevice()
    monkeypatch.setattr(attacks_module, '_move', f.move)
    return f


@pytest.fixture(autouse=True, scope='module')
def settings():
    "One thread (tiny models), deterministic cuDNN (equal results on one device), figures closed."
    n, det, bench = torch.get_num_threads(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.set_num_threads(1)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.set_num_threads(n)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = det, bench
    plt.close('all')


# ---------------------------------------------------------------- the cases
# Each case gets `s` (model, x, y on the caller's device, `on` to put a new tensor there, `second`: another model on the
# other device, `model_device`) and returns (tensors that must be on the caller's device, anything else to compare).

def _randn_like_params(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}

def _mask(): return (torch.arange(64).view(1, 1, 8, 8) % 3 != 0).float()

def _fit(s, recipe):
    h = fit(s.model, recipe, (s.x, s.y), epochs=1, device=s.model_device, batch_size=3, lr=0.01, progress=False)
    return h.drop(columns='seconds'), [p.detach() for p in s.model.parameters()]

def _figures(s):
    adv, g = fgsm(s.model, s.x, s.y, EPS), input_grad(s.model, s.x, s.y)
    emb, emb_adv = embed_features(s.model, s.x, adv, perplexity=3)
    figs = [show_deltas(s.x, {'FGSM': adv}, eps=EPS, labels=s.y), show_saliency(s.x, {'J': g}, labels=s.y),
            show_attention(s.x, {'attention': attention_map(s.model, s.x)}),
            plot_tsne(emb, s.y, emb_adv, s.y, adv_classes=s.y[:2]),
            plot_eigen_scatter(per_sample_top_eigenvalue(s.model, s.x, s.y, max_iter=5),
                               per_sample_eigen_estimate(s.model, s.x, s.y, sub_batch=2)),
            plot_decision_slice(decision_slice(s.model, s.x[0], s.y[0], grid=np.linspace(-0.2, 0.2, 5)))]
    for f in figs: plt.close(f)
    return display_normalize(g), None

CASES = {   # name: (case, runs on the fake device: only functions whose moves go through on_model_device)
    'pgd': (lambda s: (pgd(s.model, s.x, s.y, EPS, steps=3, seed=0, mask=s.on(_mask()), restarts=2), None), True),
    'pgd-rules': (lambda s: (pgd(s.model, s.x, s.y, EPS, steps=3, seed=0, momentum=0.5, random_start=0.01,
                                 stop=lambda z, t: z.argmax(1) != t, select=lambda xa, t: t % 2 == 0), None), True),
    'pgd_l2': (lambda s: (pgd_l2(s.model, s.x, s.y, 0.5, steps=3, seed=0, loss='cw'), None), True),
    'fgsm': (lambda s: (fgsm(s.model, s.x, s.y, EPS, mask=s.on(_mask())), None), True),
    'bim': (lambda s: (bim(s.model, s.x, s.y, EPS, steps=3), None), True),
    'mim': (lambda s: (mim(s.model, s.x, s.y, EPS, steps=3), None), True),
    'cw_pgd': (lambda s: (cw_pgd(s.model, s.x, s.y, EPS, steps=3, seed=0, targeted=True), None), True),
    'transfer_attack': (lambda s: ([transfer_attack(s.model, s.second, s.x, s.y, eps=EPS, steps=3, seed=0),
                                    transfer_attack(s.model, s.second, s.x, s.y, attack=fgsm, eps=EPS)], None), True),
    'autoattack': (lambda s: (autoattack(s.model, s.x, s.y, EPS, version='custom', attacks=['apgd-ce'], seed=0), None), True),
    'recipe.attack': (lambda s: (PGDAT(eps=EPS, steps=2).attack(s.model, s.x, s.y, seed=0), None), True),
    'recipe.loss': (lambda s: (None, _recipe_losses(s)), True),
    'trades_attack': (lambda s: (_seeded(trades_attack, s.model, s.x, s.y, TRADES(eps=EPS, steps=2)), None), True),
    'student_input_grads': (lambda s: (student_input_grads(s.model, s.x, s.y, ('ce', 'tci')), None), True),
    'input_grad': (lambda s: ([input_grad(s.model, s.x, s.y, k) for k in saliency.INPUT_GRAD_KINDS] +
                              [input_grad(s.model, s.x), input_grad(s.model, s.x, 3)], None), True),
    'input_grad-create_graph': (lambda s: _double_backprop(s), False),
    'alignment': (lambda s: ([alignment(s.model, s.x, batch_size=4), linearized_robustness(s.model, s.x, batch_size=4),
                              binarized_alignment(s.model, s.x), binarized_alignment(s.model, s.x, 'top2')], None), True),
    'attention_map': (lambda s: ([attention_map(s.model, s.x), attention_map(s.model, s.x, upsample=False)], None), True),
    'gradcam': (lambda s: ([gradcam(s.model, s.x, s.y), gradcam(s.model, s.x)], None), True),
    'attribute': (lambda s: ([attribute(s.model, s.x, s.y, 'saliency'), attribute(s.model, s.x, s.y, 'ig', n_steps=4),
                              attribute(s.model, s.x, None, 'smoothgrad', nt_samples=3),
                              attribute(s.model, s.x, s.y, 'gradcam')], None), True),
    'hvp': (lambda s: ([hvp(s.model, s.x, s.y, {n: s.on(v) for n, v in _randn_like_params(s.model).items()}),
                        hvp(s.model, s.x, s.y, [s.on(v) for v in _randn_like_params(s.model).values()],
                            method='forward_over_reverse')], None), True),
    'top_eigenvalues': (lambda s: _eigenpairs(top_eigenvalues(s.model, s.x, s.y, k=2, max_iter=10)), True),
    'hessian_trace': (lambda s: (None, [hessian_trace(s.model, s.x, s.y, n_samples=3), grad_norm(s.model, s.x, s.y)]), True),
    'taylor_bounds': (lambda s: (taylor_bounds(s.model, s.x, s.y, sub_batch=2, attack=partial(fgsm, eps=EPS)),
                                 [taylor_bounds(s.model, s.x, s.y), taylor_bounds(s.model, s.x, s.y, dtype=torch.float64)]), True),
    'per_sample_eigen': (lambda s: ([per_sample_eigen_estimate(s.model, s.x, s.y, sub_batch=2, bound='lower'),
                                     per_sample_top_eigenvalue(s.model, s.x3, s.y3, max_iter=5)], None), True),
    'normalize_direction': (lambda s: (normalize_direction(s.model, {n: s.on(v) for n, v in _randn_like_params(s.model).items()}),
                                       random_directions(s.model, n=2)), True),
    'loss_surface': (lambda s: (None, loss_surface(s.model, lambda m: m(s.xm).logsumexp(1).mean().item(),
                                                   [{n: s.on(v) for n, v in _randn_like_params(s.model, i).items()} for i in (1, 2)],
                                                   grid=np.linspace(-0.5, 0.5, 3)).values), True),
    'decision_slice': (lambda s: (None, [_slice(decision_slice(s.model, s.x0, s.y0, ('adversarial', s.on(torch.rand(1, 8, 8))),
                                                               grid=np.linspace(-0.2, 0.2, 5))),
                                         _slice(decision_slice(s.model, s.x1, s.label, ('random', 'adversarial'),
                                                               attack=partial(fgsm, eps=EPS), grid=np.linspace(-0.2, 0.2, 5)))]), True),
    # these move batch by batch themselves (plain .to / .cpu): real devices only
    'loss_on': (lambda s: (None, [loss_on(s.x, s.y)(s.model), loss_on(s.x, s.y, attack=partial(pgd, eps=EPS, steps=2, seed=0),
                                                                     batch_size=4)(s.model)]), False),
    'embed_features': (lambda s: (None, embed_features(s.model, s.x, fgsm(s.model, s.x, s.y, EPS), perplexity=3)), False),
    'robust_accuracy': (lambda s: (None, robust_accuracy(s.model, (s.x, s.y), {**paper_attacks('igam', 'mnist', EPS, source=s.second),
                                                                                'PGD-2': partial(pgd, eps=EPS, steps=2)},
                                                         batch_size=4, progress=False)), False),
    'sanity_check': (lambda s: (None, sanity_check(s.model, s.x, s.y, EPS, source=s.second, aa_version='custom',
                                                   aa_attacks=['apgd-ce'], batch_size=4)), False),
    'accuracy': (lambda s: (None, [accuracy(s.model, (s.x, s.y), batch_size=4),
                                   accuracy(s.model, (s.x, s.y), attack=partial(pgd, eps=EPS, steps=2, seed=0))]), False),
    'fit': (lambda s: (None, [_fit(s, Standard()), _fit(s, PGDAT(eps=EPS, steps=2)), _fit(s, TRADES(eps=EPS, steps=2))]), False),
    'plots': (_figures, False),
}

def _seeded(f, *args):
    torch.manual_seed(0)                                           # the same random start in both runs
    return f(*args)

def _recipe_losses(s):
    "Each recipe's loss terms from the caller's batch: computed (and returned, for backward) on the model's device."
    out = []
    for recipe in (Standard(), PGDAT(eps=EPS, steps=2), TRADES(eps=EPS, steps=2), ALP(eps=EPS, steps=2), MART(eps=EPS, steps=2)):
        terms = _seeded(recipe.loss, s.model, s.x, s.y, 0.0)
        assert all(t.device == s.model_device for t in terms.values())
        out.append({k: t.item() for k, t in terms.items()})
    return out

def _double_backprop(s):
    "An input-gradient penalty (create_graph) from the caller's x: gradients reach the parameters and x itself."
    xg = s.x.clone().requires_grad_()
    g = input_grad(s.model, xg, s.y, 'ce', create_graph=True)
    assert g.grad_fn is not None
    g.pow(2).sum().backward()
    return [g.detach(), xg.grad], [p.grad for p in s.model.parameters()]

def _eigenpairs(e):
    assert isinstance(e, Eigenpairs) and e.values.device.type == 'cpu'      # the eigenvalues: a CPU summary
    return e.vectors, (e.values, e.iterations)

def _slice(sl): return sl.pred, sl.loss, sl.directions, sl.label


# ---------------------------------------------------------------- running a case
def _setup(model_device, on, other):
    "The case's arguments: a fresh model on `model_device`, the data put on the caller's device by `on` (slices taken first)."
    x, y = data()
    return SimpleNamespace(model=Tiny().to(model_device), x=on(x), y=on(y), x0=on(x[0]), y0=on(y[0]), x1=on(x[:1]),
                           x3=on(x[:3]), y3=on(y[:3]), label=int(y[0]), on=on, second=Tiny(seed=1).to(other),
                           model_device=torch.device(model_device), xm=x.to(model_device))

def _tensors(obj):
    if torch.is_tensor(obj): yield obj
    elif isinstance(obj, dict): yield from (t for v in obj.values() for t in _tensors(v))
    elif isinstance(obj, (list, tuple)): yield from (t for v in obj for t in _tensors(v))

def _assert_same(a, b, host):
    "`a` (the mixed-device run, through `host` to the CPU) equals `b` (everything on the model's device)."
    if torch.is_tensor(a):
        torch.testing.assert_close(host(a).detach().cpu(), b.detach().cpu(), rtol=1e-5, atol=1e-6)
    elif isinstance(a, pd.DataFrame): pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5)
    elif isinstance(a, np.ndarray): np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a: _assert_same(a[k], b[k], host)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b): _assert_same(u, v, host)
    elif isinstance(a, float): assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    else: assert a == b

def _run(name, model_device, data_device, fake=None):
    "The case with the caller's tensors on `data_device`, then with everything on `model_device`: devices and values."
    case, caller = CASES[name][0], torch.device(data_device)
    out, other = case(_setup(model_device, (lambda t: fake.move(t, caller)) if fake else (lambda t: t.to(caller)), data_device))
    for t in _tensors(out): assert t.device.type == caller.type, (name, t.device)
    ref_out, ref_other = case(_setup(model_device, lambda t: t.to(model_device), data_device))
    for t in _tensors(ref_out): assert t.device.type == torch.device(model_device).type, (name, t.device)
    host = fake.host if fake is not None else (lambda t: t)
    _assert_same(out, ref_out, host); _assert_same(other, ref_other, host)


# ---------------------------------------------------------------- across devices: every public function
@pytest.mark.parametrize('name', list(CASES))
@pytest.mark.parametrize('model_device, data_device', [pytest.param('cuda', 'cpu', marks=needs_gpu, id='model-cuda-data-cpu'),
                                                       pytest.param('cpu', 'cuda', marks=needs_gpu, id='model-cpu-data-cuda')])
def test_across_devices(name, model_device, data_device):
    _run(name, model_device, data_device)


@pytest.mark.parametrize('name', [n for n, (_, on_fake) in CASES.items() if on_fake])
def test_across_devices_fake(name, fake):
    "Model on the CPU, the caller's tensors on the fake device: real numbers, moved only by `on_model_device`."
    _run(name, 'cpu', 'meta', fake)
    assert ('cpu', 'meta') in fake.copies and ('meta', 'cpu') in fake.copies


# ---------------------------------------------------------------- the mechanism
Pair = namedtuple('Pair', 'first second')

@on_model_device()
def probe(model, x, y=None, mask=None, extra=None, flag=True):
    "Reports where its tensor arguments arrived and returns tensors in the containers the wrapper knows."
    seen = [t.device.type for t in (x, y, mask, *extra['list'], *extra['tuple'], *extra['pair']) if torch.is_tensor(t)]
    return seen, {'x': x * 2, 'nested': [(y,)], 'pair': Pair(mask, 1), 'flag': flag}

def _extra(t): return {'list': [t], 'tuple': (t, 'not a tensor'), 'pair': Pair(t, t)}


def test_inputs_follow_the_model_and_results_come_back(fake):
    model = nn.Linear(2, 2, device='meta')
    x, y, mask = torch.rand(3, 2), torch.tensor([0, 1, 1]), torch.ones(1, 2)
    seen, out = probe(model, x, y, mask=mask, extra=_extra(x), flag='kept')
    assert seen == ['meta'] * 7
    assert [t.device.type for t in (out['x'], out['nested'][0][0], out['pair'].first)] == ['cpu'] * 3
    assert out['x'].shape == x.shape and isinstance(out['pair'], Pair) and out['pair'].second == 1 and out['flag'] == 'kept'
    assert fake.copies == [('cpu', 'meta')] * 7 + [('meta', 'cpu')] * 3     # one copy per tensor, the model never copied
    assert model.weight.device.type == 'meta'


def test_no_copy_when_devices_agree(monkeypatch):
    def fail(t, device): raise AssertionError(f'copied {tuple(t.shape)} to {device}')
    monkeypatch.setattr(attacks_module, '_move', fail)
    x, y = data()
    model = Tiny()
    seen, out = probe(model, x, y, mask=x, extra=_extra(x))
    assert seen == ['cpu'] * 7 and out['nested'][0][0] is y                # the very same tensors
    same = on_model_device()(lambda model, x: x)
    assert same(model, x) is x
    pgd(model, x, y, EPS, steps=1, mask=_mask()); input_grad(model, x, y); hvp(model, x, y, _randn_like_params(model))


def test_modules_without_state_and_callables_run_anywhere(fake):
    x, y = torch.rand(3, 2, device='meta'), torch.zeros(3, dtype=torch.long, device='meta')
    for model in (nn.ReLU(), nn.Sequential(), lambda z: z):
        assert _device_of(model) is None
        seen, out = probe(model, x, y, mask=x, extra=_extra(x))
        assert seen == ['meta'] * 7 and out['x'].device.type == 'meta'
    assert _device_of(None) is None
    with pytest.raises(TypeError, match='^model:'): probe(None, x, y)     # no model at all is a caller's mistake
    assert fake.copies == []
    assert _device_of(nn.BatchNorm1d(2, affine=False).to('meta')).type == 'meta'      # buffers count
    assert _device_of(Tiny()).type == 'cpu'


def test_first_device():
    m = torch.zeros(1, device='meta')
    assert _first_device(m).type == 'meta' and _first_device(3) is None and _first_device(None) is None
    assert _first_device({'a': [None, 'b'], 'c': (1, m)}).type == 'meta'
    assert _first_device([[], {}, ()]) is None


def test_home_argument(fake):
    "hvp returns H v on the device of v (the parameter-shaped input), wherever x is."
    model = Tiny()
    x, y = data()
    v = _randn_like_params(model)
    hv = hvp(model, x, y, {n: fake.move(t, 'meta') for n, t in v.items()})
    assert all(t.device.type == 'meta' for t in hv.values())
    ref = hvp(model, x, y, v)
    for n in v: torch.testing.assert_close(fake.host(hv[n]), ref[n])
    with pytest.raises(ValueError): on_model_device(home='nope')(probe.__wrapped__)


def test_eigenpairs_move_their_vectors_only():
    e = Eigenpairs(torch.tensor([2.0, 1.0]), [{'w': torch.ones(2)}, {'w': torch.zeros(2)}], [3, 4])
    moved = _to_device(e, torch.device('meta'))
    assert isinstance(moved, Eigenpairs) and moved.iterations == [3, 4] and moved.values is e.values
    assert [v['w'].device.type for v in moved.vectors] == ['meta', 'meta']


def test_moves_are_differentiable():
    "The copy is `Tensor.to`: a graph goes through it (create_graph paths stay connected across devices)."
    x = torch.rand(2, 3, requires_grad=True)
    assert attacks_module._move(x, torch.device('meta')).grad_fn is not None
    y = _to_device({'x': [x]}, torch.device('cpu'))['x'][0]
    assert y is x


SHAPES = {   # real functions with the model on meta (shapes only): inputs arrive there, results come back to the CPU
    'input_grad': lambda m, x, y: input_grad(m, x),
    'alignment': lambda m, x, y: alignment(m, x),
    'linearized_robustness': lambda m, x, y: linearized_robustness(m, x),
    'binarized_alignment': lambda m, x, y: binarized_alignment(m, x, 'top2'),
    'attention_map': lambda m, x, y: attention_map(m, x),
    'gradcam': lambda m, x, y: gradcam(m, x),
    'attribute': lambda m, x, y: attribute(m, x),
    'taylor_bounds': lambda m, x, y: taylor_bounds(m, x, y, sub_batch=2),
    'per_sample_eigen_estimate': lambda m, x, y: per_sample_eigen_estimate(m, x, y, sub_batch=2),
    'normalize_direction': lambda m, x, y: normalize_direction(m, _randn_like_params(m)),
}

@pytest.mark.parametrize('name', list(SHAPES))
def test_model_on_meta(name, fake):
    model = Tiny().to('meta')
    x, y = data()
    out = SHAPES[name](model, x, y)
    tensors = list(_tensors(out))
    assert tensors and all(t.device.type == 'cpu' for t in tensors)
    assert set(fake.copies) == {('cpu', 'meta'), ('meta', 'cpu')}
    if name != 'normalize_direction': assert all(len(t) == len(x) for t in tensors)


# what does not go through on_model_device, and why
NOT_WRAPPED = {
    'on_model_device': 'the decorator itself',
    'evaluating': 'a context', 'untracked': 'a context', 'frozen_eval': 'a context',
    'random_directions': 'no tensor argument: the directions are drawn on the model\'s device',
    'embed_features': 'moves batch by batch (a large x need not fit on the GPU at once); returns NumPy arrays',
    'robust_accuracy': 'moves each batch to each model\'s device', 'sanity_check': 'through robust_accuracy',
    'knn_accuracy': 'moves batch by batch, through KNNClassifier (the memory) and robust_accuracy (the test images)',
}

@pytest.mark.parametrize('module', [attacks, saliency, hessian, landscape, evaluate, plots, recipes, matching], ids=lambda m: m.__name__)
def test_every_public_function_taking_a_model_is_wrapped(module):
    for name in module.__all__:
        f = getattr(module, name)
        if not inspect.isfunction(f): continue
        first = next(iter(inspect.signature(f).parameters), None)
        if first not in ('model', 'source') or name in NOT_WRAPPED: continue
        assert getattr(f, '_model_device', None) is not None, f'{module.__name__}.{name} does not move its inputs'


def _subclasses(cls):
    for c in cls.__subclasses__(): yield c; yield from _subclasses(c)

def test_every_recipe_moves_its_batches():
    "`loss` and `after_step` of every recipe run on the model's device, however the subclass defines them."
    classes = list(_subclasses(Recipe))
    assert {'PGDAT', 'TRADES', 'ADT', 'AODT', 'PSAT', 'HSAT', 'AGKDBML', 'IGAM', 'SaliencyCurriculum'} <= {c.__name__ for c in classes}
    for c in classes:                                   # an inherited hook is checked where it is defined
        for hook in ('loss', 'after_step'):
            if hook in c.__dict__: assert c.__dict__[hook]._model_device == ('model', 'model'), (c.__name__, hook)
