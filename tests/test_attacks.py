"""Attacks against peer libraries (foolbox: its FGSM and LinfPGD equal torchattacks'), hand re-derivations, and the
properties every attack keeps (ball, box, purity, restored modes, determinism, masks, early stopping, input checks)."""
import sys
import types
from functools import partial

import foolbox
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from robustnb.attacks import autoattack, bim, cw_margin, cw_pgd, fgsm, frozen_eval, mim, pgd, pgd_l2, transfer_attack
from robustnb.data import dataset_info, load_dataset
from robustnb.models import Normalize
from robustnb.train import accuracy, set_seed, train_standard

EPS = dataset_info('digits').eps


def tiny_cnn(batchnorm=False, dropout=0.0):
    info = dataset_info('digits')
    layers = [Normalize(info.mean, info.std), nn.Conv2d(1, 16, 3, padding=1)]
    if batchnorm: layers.append(nn.BatchNorm2d(16))
    layers += [nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten()]
    if dropout: layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(32*4*4, 10))


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "These CNNs are tiny: one thread beats intra-op parallelism (much more so on a busy machine)."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def digits():
    test = load_dataset('digits', 'test')
    return test.images[:500], test.labels[:500]


@pytest.fixture(scope='module')
def trained():
    "A standard-trained digits CNN (97% clean) in eval mode."
    set_seed(0)
    model = tiny_cnn()
    train_standard(model, DataLoader(load_dataset('digits'), batch_size=64, shuffle=True), epochs=10, progress=False)
    return model.eval()


def fb_attack(attack, model, x, y, eps):
    _, clipped, _ = attack(foolbox.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    return clipped


# --- peer-library oracles ---------------------------------------------------------------------------------------------

def test_fgsm_equals_foolbox(trained, digits):
    x, y = digits
    for eps in (0.05, EPS):
        assert (fgsm(trained, x, y, eps) - fb_attack(foolbox.attacks.FGSM(), trained, x, y, eps)).abs().max() <= 1e-6


def test_pgd_without_random_start_equals_foolbox_in_float64(trained, digits):
    x, y = digits[0][:200].double(), digits[1][:200]
    model = tiny_cnn().double().eval()
    model.load_state_dict(trained.state_dict())
    for eps, alpha, steps in ((EPS, 0.05, 10), (0.1, 0.01, 20)):
        ours = pgd(model, x, y, eps, alpha, steps=steps, random_start=False)
        theirs = fb_attack(foolbox.attacks.LinfPGD(abs_stepsize=alpha, steps=steps, random_start=False), model, x, y, eps)
        assert (ours - theirs).abs().max() <= 1e-5


def test_l2_pgd_equals_foolbox(trained, digits):
    x, y = digits[0][:200].double(), digits[1][:200]
    model = tiny_cnn().double().eval()
    model.load_state_dict(trained.state_dict())
    for eps, alpha, steps in ((1.0, 0.25, 10), (2.0, 0.2, 20)):
        ours = pgd_l2(model, x, y, eps, alpha, steps=steps, random_start=False)
        theirs = fb_attack(foolbox.attacks.L2PGD(abs_stepsize=alpha, steps=steps, random_start=False), model, x, y, eps)
        assert (ours - theirs).abs().max() <= 1e-5


def test_random_start_pgd_matches_foolbox_robust_accuracy(trained, digits):
    x, y = digits                                                    # 500 digits test images
    for eps in (0.1, EPS):
        torch.manual_seed(1)                                        # foolbox draws its start from the global RNG
        theirs = fb_attack(foolbox.attacks.LinfPGD(abs_stepsize=2.5*eps/10, steps=10, random_start=True), trained, x, y, eps)
        ours = pgd(trained, x, y, eps, steps=10, seed=0)
        assert abs(accuracy(trained, (ours, y)) - accuracy(trained, (theirs, y))) <= 0.015


def test_mim_equals_dong_update_in_float64(trained, digits):
    "MI-FGSM re-derived from Dong et al. (2018), Algorithm 1, in float64: g <- mu*g + grad/||grad||_1; x <- x + alpha*sign(g)."
    x, y = digits[0][:100].double(), digits[1][:100]
    model = tiny_cnn().double().eval()
    model.load_state_dict(trained.state_dict())
    eps = EPS
    def dong(mu, steps):
        alpha, g, xa = eps/steps, torch.zeros_like(x), x.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            grad, = torch.autograd.grad(F.cross_entropy(model(xa), y, reduction='sum'), xa)
            g = mu*g + grad/grad.abs().sum(dim=(1, 2, 3), keepdim=True)
            xa = torch.min(torch.max(xa.detach() + alpha*g.sign(), x - eps), x + eps).clamp(0, 1)
        return xa
    assert (mim(model, x, y, eps) - dong(1.0, 10)).abs().max() <= 1e-12
    assert (mim(model, x, y, eps, momentum=0.5, steps=5) - dong(0.5, 5)).abs().max() <= 1e-12


# --- properties of every attack ---------------------------------------------------------------------------------------

ATTACKS = {
    'pgd': (partial(pgd, eps=EPS, seed=3), 'linf', EPS),
    'pgd-restarts': (partial(pgd, eps=EPS, seed=3, restarts=2, steps=3), 'linf', EPS),
    'pgd-cw-targeted': (partial(pgd, eps=EPS, seed=3, loss='cw', targeted=True), 'linf', EPS),
    'fgsm': (partial(fgsm, eps=EPS), 'linf', EPS),
    'bim': (partial(bim, eps=EPS, steps=5), 'linf', EPS),
    'mim': (partial(mim, eps=EPS), 'linf', EPS),
    'cw_pgd': (partial(cw_pgd, eps=EPS, seed=3, steps=5), 'linf', EPS),
    'pgd_l2': (partial(pgd_l2, eps=1.5, seed=3), 'l2', 1.5),
    'transfer': (lambda m, x, y: transfer_attack(tiny_cnn(), m, x, y, eps=EPS, seed=3, steps=5), 'linf', EPS),
    'autoattack': (partial(autoattack, eps=EPS, version='custom', attacks=['apgd-ce']), 'linf', EPS),
}


@pytest.fixture
def random_problem():
    torch.manual_seed(0)
    model = tiny_cnn(batchnorm=True, dropout=0.3)
    model.train()
    model(torch.rand(32, 1, 8, 8))                                   # move BN statistics away from their init
    x = torch.rand(24, 1, 8, 8)
    x[0] = 0.0; x[1] = 1.0                                          # pixels on both edges of the box
    return model, x, torch.randint(0, 10, (24,))


@pytest.mark.parametrize('name', ATTACKS)
@pytest.mark.parametrize('mode', ['train', 'eval', 'mixed'])
def test_attack_contract(name, mode, random_problem):
    attack, ball, eps = ATTACKS[name]
    model, x, y = random_problem
    model.train(mode != 'eval')
    if mode == 'mixed': model[-2].eval(); model[1].weight.requires_grad_(False)
    modes, flags = [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x0, y0 = x.clone(), y.clone()
    torch.manual_seed(11)
    adv = attack(model, x, y)
    d = (adv - x).flatten(1)
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert (d.abs().amax(1) if ball == 'linf' else d.norm(dim=1)).max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())       # parameters and BN buffers
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    torch.manual_seed(11)
    assert torch.equal(attack(model, x, y), adv)                     # same seed, same output
    assert d.abs().max() > 0                                          # it did attack


@pytest.mark.parametrize('norm,eps', [('linf', EPS), ('l2', 1.5)])
@pytest.mark.parametrize('random_start', [True, False])
def test_mask_is_respected_exactly(norm, eps, random_start, random_problem):
    model, x, y = random_problem
    model.eval()
    mask = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(2)) < 0.3
    for attack in (pgd, partial(pgd, momentum=1.0), partial(pgd, restarts=2) if random_start else pgd):
        adv = attack(model, x, y, eps, norm=norm, mask=mask, random_start=random_start, seed=0)
        assert torch.equal(adv[~mask], x[~mask])
        assert (adv - x)[mask].abs().max() > 0
    pixel_mask = torch.zeros(1, 1, 8, 8); pixel_mask[..., 2:5, 3:6] = 1     # one mask broadcast to every image
    adv = pgd(model, x, y, eps, norm=norm, mask=pixel_mask, random_start=random_start, seed=0)
    assert torch.equal((adv - x)[:, :, pixel_mask[0, 0] == 0], torch.zeros(24, 1, 64 - 9))
    for attack in (fgsm, bim, mim, cw_pgd):
        adv = attack(model, x, y, EPS, mask=mask)
        assert torch.equal(adv[~mask], x[~mask])


def test_frozen_samples_never_change_after_stop(random_problem):
    "Every iterate is recorded; once the rule fires for a sample, all later iterates of that sample equal the frozen one."
    model, x, y = random_problem
    model.eval()
    seen, fired = [], torch.zeros(len(x), dtype=torch.bool)
    fire_at = torch.randint(1, 9, (len(x),), generator=torch.Generator().manual_seed(4))

    def rule(logits, t):
        step = len(seen)
        seen.append(logits.detach().clone())
        return fire_at <= step + 1

    class Recorder(nn.Module):                                      # records every input the attack feeds the model
        def __init__(self, inner): super().__init__(); self.inner, self.inputs = inner, []
        def forward(self, z): self.inputs.append(z.detach().clone()); return self.inner(z)

    rec = Recorder(model)
    adv = pgd(rec, x, y, EPS, steps=8, seed=0, stop=rule)
    iterates = rec.inputs + [adv]                                   # iterate k is the input of forward k; then the result
    for i, k in enumerate(fire_at.tolist()):
        for later in iterates[k - 1:]:
            assert torch.equal(later[i], iterates[k - 1][i])
        if k > 1: assert not torch.equal(iterates[k - 1][i], iterates[0][i])   # it did move before it was frozen
    # the rule saw exactly the logits of the iterates (no extra forward pass)
    assert len(seen) == len(rec.inputs) == max(fire_at.tolist())
    with torch.no_grad():
        for logits, inp in zip(seen, rec.inputs): assert torch.allclose(logits, model(inp))


def test_stop_that_never_fires_is_plain_pgd_and_one_pass_per_step(random_problem):
    model, x, y = random_problem
    model.eval()
    calls = []
    h = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        plain = pgd(model, x, y, EPS, steps=7, seed=0)
        assert len(calls) == 7                                     # one forward per step, none extra
        stopped = pgd(model, x, y, EPS, steps=7, seed=0, stop=lambda z, t: torch.zeros(len(t), dtype=torch.bool))
        assert len(calls) == 14 and torch.equal(plain, stopped)
        pgd(model, x, y, EPS, steps=7, seed=0, restarts=3)
        assert len(calls) == 14 + 3*7 + 3                          # restarts: one ranking forward per run
    finally: h.remove()


@pytest.mark.parametrize('norm,eps', [('linf', EPS), ('l2', 1.5)])
def test_select_moves_exactly_the_selected_samples_at_each_step(norm, eps, random_problem):
    "SAT App. B.3 subset updates: a sample left out of a step keeps its iterate through that step; the rest move."
    model, x, y = random_problem
    gen = torch.Generator().manual_seed(7)
    seen, chosen = [], []
    def rule(xa, t):
        seen.append(xa.clone())
        c = torch.rand(len(t), generator=gen) < 0.5
        chosen.append(c)
        return c
    adv = pgd(model, x, y, eps, steps=6, norm=norm, seed=0, select=rule)
    assert len(seen) == 7 and torch.equal(seen[0], x)                # at x (for the start), then before each step
    iterates = seen[1:] + [adv]
    assert torch.equal(iterates[0][~chosen[0]], x[~chosen[0]])        # no random start for samples not selected at x
    assert not torch.equal(iterates[0][chosen[0]], x[chosen[0]])
    for k in range(6):                                                # step k moves exactly chosen[k + 1]
        c = chosen[k + 1]
        assert torch.equal(iterates[k + 1][~c], iterates[k][~c])
        moved = (iterates[k + 1] != iterates[k]).flatten(1).any(1)
        assert moved[c].float().mean() > 0.9                          # (a step can be a no-op only at a clipped corner)
    d = (adv - x).flatten(1)
    assert (d.abs().amax(1) <= eps + 1e-6).all() if norm == 'linf' else (d.norm(dim=1) <= eps + 1e-5).all()
    never = ~torch.stack(chosen).any(0)
    assert torch.equal(adv[never], x[never])


def test_restarts_never_worse_than_first_run(trained, digits):
    x, y = digits[0][:200], digits[1][:200]
    one, three = pgd(trained, x, y, 0.1, seed=5), pgd(trained, x, y, 0.1, seed=5, restarts=3)
    with torch.no_grad():
        wrong1, wrong3 = trained(one).argmax(1) != y, trained(three).argmax(1) != y
        l1, l3 = F.cross_entropy(trained(one), y, reduction='none'), F.cross_entropy(trained(three), y, reduction='none')
    assert (wrong3 | ~wrong1).all()                                   # a sample broken by run 1 stays broken
    assert (l3[wrong1 == wrong3] >= l1[wrong1 == wrong3] - 1e-6).all()


def test_train_mode_attack_uses_eval_statistics(random_problem):
    "A model in train mode is attacked as in eval mode (BN running statistics, no dropout)."
    model, x, y = random_problem
    model.eval(); ref = pgd(model, x, y, EPS, seed=0)
    model.train(); assert torch.equal(pgd(model, x, y, EPS, seed=0), ref)
    assert model.training


def test_frozen_eval_restores_on_error():
    model = tiny_cnn(batchnorm=True).train()
    model[0].eval()
    with pytest.raises(RuntimeError):
        with frozen_eval(model): raise RuntimeError('boom')
    assert [m.training for m in model.modules()][:2] == [True, False]
    assert all(p.requires_grad for p in model.parameters())


# --- bad input ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs,arg', [
    (dict(eps=-0.1), 'eps'), (dict(eps=float('inf')), 'eps'), (dict(steps=0), 'steps'), (dict(steps=2.5), 'steps'),
    (dict(norm='l1'), 'norm'), (dict(loss='hinge'), 'loss'), (dict(mask=torch.ones(3, 1, 8, 8)), 'mask'),
    (dict(mask=torch.ones(8, 9)), 'mask'), (dict(mask=[1, 0]), 'mask'), (dict(alpha=-1.0), 'alpha'),
    (dict(momentum=-0.5), 'momentum'), (dict(restarts=0), 'restarts'), (dict(seed=-3), 'seed'),
])
def test_bad_arguments_name_the_argument(kwargs, arg, random_problem):
    model, x, y = random_problem
    args = dict(eps=EPS, **kwargs) if 'eps' not in kwargs else kwargs
    with pytest.raises((ValueError, TypeError), match=f'^{arg}:'):
        pgd(model, x, y, **args)


def test_bad_inputs_name_the_argument(random_problem):
    model, x, y = random_problem
    with pytest.raises(ValueError, match='^x:'): pgd(model, x + 0.5, y, EPS)
    with pytest.raises(ValueError, match='^x:'): pgd(model, x - 0.5, y, EPS)
    with pytest.raises(ValueError, match='^x:'): pgd(model, x.masked_fill(x > 0.9, float('nan')), y, EPS)
    with pytest.raises(TypeError, match='^x:'): pgd(model, (x*255).to(torch.uint8), y, EPS)
    with pytest.raises(ValueError, match='^y:'): pgd(model, x, y[:-1], EPS)
    with pytest.raises((ValueError, TypeError), match='^y:'): pgd(model, x, y.float(), EPS)
    with pytest.raises(ValueError, match='^y:'): pgd(model, x, y[:, None], EPS)
    with pytest.raises(ValueError, match='^loss:'): pgd(model, x, y, EPS, loss=lambda z, t: z)
    with pytest.raises(ValueError, match='^stop:'): pgd(model, x, y, EPS, stop=lambda z, t: torch.zeros(3, dtype=torch.bool))
    for attack in (fgsm, bim, mim, cw_pgd, pgd_l2, autoattack):
        with pytest.raises(ValueError, match='^eps:'): attack(model, x, y, -1.0)
        with pytest.raises(ValueError, match='^x:'): attack(model, x*2, y, EPS)
        with pytest.raises(ValueError, match='^y:'): attack(model, x, y[:3], EPS)
    with pytest.raises(ValueError, match='^norm:'): autoattack(model, x, y, EPS, norm='inf')
    with pytest.raises(ValueError, match='^version:'): autoattack(model, x, y, EPS, version='fast')
    with pytest.raises(ValueError, match='^attacks:'): autoattack(model, x, y, EPS, version='custom')
    with pytest.raises(TypeError, match='^target:'): transfer_attack(model, 'model', x, y, eps=EPS)


# --- the AutoAttack adapter speaks both packages -----------------------------------------------------------------------

def test_autoattack_uses_upstream_package_when_importable(monkeypatch, random_problem):
    "Upstream fra31 `autoattack`: AutoAttack(model, norm, eps, seed, verbose, attacks_to_run, version, device) and bs=."
    model, x, y = random_problem
    model.train()
    seen = {}

    class UpstreamAutoAttack:
        def __init__(self, model, norm='Linf', eps=.3, seed=None, verbose=True, attacks_to_run=[], version='standard',
                     is_tf_model=False, device='cuda', log_path=None):
            if version != 'custom' and attacks_to_run: raise ValueError("attacks_to_run will be overridden")
            seen.update(init=dict(norm=norm, eps=eps, seed=seed, verbose=verbose, attacks_to_run=attacks_to_run,
                                  version=version, device=str(device)), training=model.training,
                        frozen=not any(p.requires_grad for p in model.parameters()))
            self.model = model
        def run_standard_evaluation(self, x_orig, y_orig, bs=250, return_labels=False):
            seen['bs'] = bs
            torch.manual_seed(123)                                 # upstream seeds the global RNG too
            return (x_orig + 0.01*torch.sign(torch.randn_like(x_orig))).clamp(0, 1)

    monkeypatch.setitem(sys.modules, 'autoattack', types.SimpleNamespace(AutoAttack=UpstreamAutoAttack))
    torch.manual_seed(0); expected_stream = torch.rand(2)
    torch.manual_seed(0)
    adv = autoattack(model, x, y, 0.03, version='custom', attacks=['apgd-ce', 'square'], seed=4, batch_size=7)
    assert torch.equal(torch.rand(2), expected_stream)
    assert seen == dict(init=dict(norm='Linf', eps=0.03, seed=4, verbose=False, attacks_to_run=['apgd-ce', 'square'],
                                  version='custom', device='cpu'), training=False, frozen=True, bs=7)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert (adv - x).abs().max() <= 0.01 + 1e-7
    autoattack(model, x, y, 0.03, norm='L2')
    assert seen['init']['attacks_to_run'] == [] and seen['init']['version'] == 'standard' and seen['init']['norm'] == 'L2'


def test_transfer_attack_never_queries_the_target(random_problem):
    "ADT's black-box setting: the target model is not run once; the result is the source model's PGD-20 (same seed)."
    model, x, y = random_problem
    calls = []
    hook = model.register_forward_hook(lambda *args: calls.append(1))
    source = tiny_cnn()
    try: adv = transfer_attack(source, model, x, y, eps=EPS, seed=5)
    finally: hook.remove()
    assert calls == []
    assert torch.equal(adv, pgd(source, x, y, EPS, steps=20, seed=5))


def test_cw_margin_by_hand():
    "max_{j≠y} z_j − z_y on hand-made logits, including a tie for the runner-up and a misclassified sample."
    z = torch.tensor([[3.0, 1.0, 2.0], [0.5, 0.5, -1.0], [1.0, 4.0, 4.0]])
    y = torch.tensor([0, 2, 1])
    assert torch.equal(cw_margin(z, y), torch.tensor([2.0 - 3.0, 0.5 - (-1.0), 4.0 - 4.0]))
