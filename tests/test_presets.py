"""Training presets: a recipe's `preset` carries the paper's optimizer, learning rate, momentum, weight decay, schedule,
batch size and epochs into `fit` (robustnb.train.resolve_fit_config); fit's own arguments win; without epochs from
either, fit raises."""
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from robustnb.matching import IGAM, IGAM_PRESET_ALIASES, IGAM_PRESETS, SaliencyCurriculum
from robustnb.models import SmallCNN, create_model
from robustnb.recipes import ADT, AGKDBML, ALP, AODT, HSAT, MART, PGDAT, PSAT, TRADES, Standard
from robustnb.train import FIT_DEFAULTS, fit, load_checkpoint, resolve_fit_config

SAT_MNIST = dict(optimizer='sgd', lr=0.01, momentum=0.9, weight_decay=5e-4, lr_schedule=(40, 50, 60), batch_size=128,
                 epochs=70, max_grad_norm=None)
ADT_CIFAR = dict(optimizer='sgd', lr=0.1, momentum=0.9, weight_decay=2e-4, lr_schedule=(75, 90), batch_size=128,
                 epochs=100, max_grad_norm=None)


def linear28():
    "A model for 1x28x28 inputs cheap enough to train the whole 70-epoch schedule in a test."
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28*28, 10))


def mnist_like(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


class Counting(PGDAT):
    "PGD-AT that records the size of every batch it trains on."
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw); self.sizes = []
    def loss(self, model, x, y, epoch):
        self.sizes.append(len(y)); return super().loss(model, x, y, epoch)


def test_pgdat_mnist_resolves_to_sat_appendix_a():
    assert resolve_fit_config(PGDAT(preset='mnist')) == SAT_MNIST
    for R in (TRADES, ALP, MART, PSAT, HSAT): assert resolve_fit_config(R(preset='mnist')) == SAT_MNIST
    assert resolve_fit_config(PGDAT(preset='mnist', eps=0.4)) == SAT_MNIST        # the threat model's keywords leave it alone


def test_fit_trains_the_whole_mnist_preset(tmp_path):
    "No argument but the data: 70 epochs, lr 0.01 ×0.1 at 40/50/60 (per epoch in the history), SGD(0.9, wd 5e-4)."
    recipe = Counting(preset='mnist', steps=1)
    h = fit(linear28(), recipe, mnist_like(4), checkpoint_dir=tmp_path, progress=False)
    assert len(h) == 70
    expected = [0.01]*40 + [1e-3]*10 + [1e-4]*10 + [1e-5]*10
    assert h.lr.tolist() == pytest.approx(expected, rel=1e-9)
    group = load_checkpoint(tmp_path/'last.pt')['optimizer']['param_groups'][0]
    assert (group['momentum'], group['weight_decay'], group['initial_lr']) == (0.9, 5e-4, 0.01)
    assert recipe.sizes == [4]*70


def test_one_real_epoch_with_the_preset_and_epochs_override(tmp_path):
    recipe = Counting(preset='mnist', steps=2)
    h = fit(create_model('smallcnn', dataset='mnist'), recipe, mnist_like(130), epochs=1, checkpoint_dir=tmp_path, progress=False)
    assert h.lr.tolist() == [0.01] and recipe.sizes == [128, 2]                 # the preset's lr and batch size
    ck = load_checkpoint(tmp_path/'last.pt')
    assert ck['epochs'] == 1
    group = ck['optimizer']['param_groups'][0]
    assert (group['momentum'], group['weight_decay']) == (0.9, 5e-4)


def test_explicit_arguments_win(tmp_path):
    args = dict(lr=0.05, momentum=0.5, weight_decay=0.0, lr_schedule='constant', batch_size=3, epochs=2, optimizer='sgd')
    cfg = resolve_fit_config(PGDAT(preset='mnist'), **args)
    assert {k: cfg[k] for k in args} == args
    recipe = Counting(preset='mnist', steps=1)
    h = fit(linear28(), recipe, mnist_like(7), checkpoint_dir=tmp_path, progress=False, **args)
    assert h.lr.tolist() == [0.05, 0.05] and recipe.sizes == [3, 3, 1]*2
    group = load_checkpoint(tmp_path/'last.pt')['optimizer']['param_groups'][0]
    assert (group['momentum'], group['weight_decay']) == (0.5, 0.0)
    adam = fit(linear28(), PGDAT(preset='mnist', steps=1), mnist_like(4), epochs=1, optimizer='adam', progress=False)
    assert adam.lr.tolist() == [0.01]


def test_a_dataloader_keeps_its_batch_size():
    recipe = Counting(preset='mnist', steps=1)      # the preset's batch size (128) does not apply to a DataLoader
    fit(linear28(), recipe, DataLoader(TensorDataset(*mnist_like(10)), batch_size=4), epochs=1, progress=False)
    assert recipe.sizes == [4, 4, 2]
    with pytest.raises(ValueError, match='^batch_size: 2 given, but train_data is a DataLoader of batches of 4'):
        fit(linear28(), recipe, DataLoader(TensorDataset(*mnist_like(10)), batch_size=4), epochs=1, batch_size=2, progress=False)


@pytest.mark.parametrize('make', [lambda: PGDAT(eps=0.2), lambda: PGDAT(preset='digits'), lambda: Standard(),
                                  lambda: AGKDBML(create_model('smallcnn', dataset='digits'), preset='tinyimagenet'),
                                  lambda: IGAM(create_model('smallcnn', dataset='digits'))])
def test_missing_epochs_raise_naming_epochs(make):
    with pytest.raises(ValueError, match='^epochs'): resolve_fit_config(make())
    with pytest.raises(ValueError, match='^epochs'): fit(linear28(), make(), mnist_like(4), progress=False)


def test_without_a_preset_fit_defaults_are_unchanged():
    assert FIT_DEFAULTS == {'optimizer': None, 'lr_schedule': None, 'lr': 0.1, 'momentum': 0.9, 'weight_decay': 5e-4,
                            'max_grad_norm': None, 'batch_size': 128, 'epochs': None}
    assert resolve_fit_config(PGDAT(eps=0.2), epochs=8) == {**FIT_DEFAULTS, 'epochs': 8}
    h = fit(linear28(), PGDAT(eps=0.2, steps=1), mnist_like(4), 20, progress=False)     # epochs positional, as before
    assert h.lr.tolist() == pytest.approx([0.1]*15 + [0.01]*3 + [0.001]*2)            # ×0.1 at 75 % and 90 %


def test_the_recipe_class_decides_per_dataset():
    for R in (PGDAT, TRADES, ALP, MART):
        for ds in ('cifar10', 'cifar100'): assert resolve_fit_config(R(preset=ds)) == ADT_CIFAR   # ADT §4
    t = create_model('smallcnn', dataset='digits')
    assert resolve_fit_config(ADT(t, preset='cifar10')) == ADT_CIFAR                            # no clipping (not in the paper)
    assert resolve_fit_config(AODT(t, preset='cifar10')) == ADT_CIFAR
    assert resolve_fit_config(ADT(t, preset='cifar10', max_grad_norm=1.0)) == {**ADT_CIFAR, 'max_grad_norm': 1.0}   # when asked
    for R in (PSAT, HSAT):                                                                      # SAT App. A, PRN-20
        c10, c100 = resolve_fit_config(R(preset='cifar10')), resolve_fit_config(R(preset='cifar100'))
        assert (c10['lr'], c10['lr_schedule'], c10['epochs'], c10['weight_decay']) == (0.05, (40, 60, 80), 100, 5e-4)
        assert (c100['lr'], c100['weight_decay']) == (0.05, 2e-4)
    agkd = resolve_fit_config(AGKDBML(t, preset='cifar10'))
    assert (agkd['lr'], agkd['lr_schedule'], agkd['epochs']) == (0.1, (100, 150), 200)
    assert resolve_fit_config(AGKDBML(t, preset='tinyimagenet'), epochs=40)['lr_schedule'] == (30,)


def test_gradient_matching_presets():
    t = create_model('smallcnn', dataset='digits')
    for p in [*IGAM_PRESETS, *IGAM_PRESET_ALIASES]:
        cfg = resolve_fit_config(IGAM(t, preset=p), epochs=5 if p == 'digits' else None)
        if p == 'digits': assert (cfg['optimizer'], cfg['lr'], cfg['weight_decay']) == ('adam', 5e-4, 0.0)
        else: assert cfg == dict(optimizer='sgd', lr=0.1, momentum=0.9, weight_decay=2e-4, lr_schedule=(100, 150),
                                 batch_size=128, epochs=200, max_grad_norm=None)
    for ds, batch in (('cifar10', 32), ('cifar100', 32), ('tinyimagenet', 16)):
        r = SaliencyCurriculum(SmallCNN(input_size=10), preset=ds)
        cfg = resolve_fit_config(r)
        assert (cfg['epochs'], cfg['batch_size'], cfg['lr'], cfg['optimizer']) == (190, batch, 0.1, 'sgd')
        assert cfg['lr_schedule'] == r.lr_schedule
        assert r.lr_decay == ((1.0, 0.01), (0.01, 0.001))                 # §5: 0.1 -> 0.001, then 0.001 -> 0.0001
    digits = SaliencyCurriculum(SmallCNN(input_size=10))
    assert digits.lr_decay == ((1.0, 0.01), (0.1, 0.01)) and digits.phase2_target == 'sign_consistent'
    assert resolve_fit_config(SaliencyCurriculum(SmallCNN(input_size=10)), epochs=20)['lr'] == 2e-3


def test_adt_attack_presets_follow_the_paper_and_leave_the_others():
    "ADT §4: eps 0.031, step 0.007, 10 steps on CIFAR for ADT and AODT; PGD-AT, TRADES, ALP, MART keep 8/255 and 2/255."
    t = create_model('smallcnn', dataset='digits')
    for ds in ('cifar10', 'cifar100'):
        for r in (ADT(t, preset=ds), AODT(t, preset=ds), ADT(t, preset=ds, pairing='trades')):
            assert (r.eps, r.alpha, r.steps) == (0.031, 0.007, 10)
        for R in (PGDAT, TRADES, ALP, MART):
            assert (R(preset=ds).eps, R(preset=ds).alpha, R(preset=ds).steps) == pytest.approx((8/255, 2/255, 10))
    assert ADT(t, preset='cifar10', steps=20).steps == 20                  # explicit keywords win


def test_aodt_teacher_optimizer_is_the_papers_on_the_students_schedule():
    "ADT §4: SGD lr 0.1, momentum 0.9, weight decay 2e-4; the teacher follows the student's schedule (x0.1 after epoch 1)."
    recipe = AODT(create_model('smallcnn', dataset='digits'), eps=0.1, steps=1)
    assert (recipe.teacher_lr, recipe.teacher_momentum, recipe.teacher_weight_decay) == (0.1, 0.9, 2e-4)
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 10
    fit(create_model('smallcnn', dataset='digits'), recipe, (x, y), epochs=2, lr_schedule=(1,), batch_size=8, progress=False)
    group = recipe.optimizers['teacher'].param_groups[0]
    assert (group['initial_lr'], group['momentum'], group['weight_decay']) == (0.1, 0.9, 2e-4)
    assert group['lr'] == pytest.approx(0.01)
