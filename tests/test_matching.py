"""IGAM and SaliencyCurriculum (robustnb.matching) against hand-computed float64 values, finite differences and the
protocol's promises: game signs, curriculum masks and k, frozen teachers, exact resume, bad inputs."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import robustnb.matching as matching
from robustnb.curriculum import TopKSchedule
from robustnb.data import load_dataset
from robustnb.losses import gradient_adversarial_loss
from robustnb.matching import IGAM, SaliencyCurriculum, finetune_logit_layer, student_input_grads
from robustnb.models import Discriminator, SmallCNN, create_model
from robustnb.saliency import CenterCrop, ChannelMean, Pad, TransposeConvUpsample, input_grad
from robustnb.train import fit, load_checkpoint

# ---------------------------------------------------------------------------------------------------------------
# A tiny float64 world whose gradients can be written down: linear classifiers z = W·flat(x) + b on 1x2x2 images
# (d = 4, K = 3 classes) and linear discriminators D(J) = v·flat(J) + c.

WS = np.array([[0.5, -1.0, 0.25, 2.0], [-0.3, 0.8, 1.5, -0.6], [1.2, 0.1, -0.7, 0.4]])
BS = np.array([0.1, -0.2, 0.05])
WT = np.array([[1.0, 0.3, -0.4, 0.9], [-1.1, 0.6, 0.2, 0.5], [0.35, -0.8, 1.3, -0.25]])
BT = np.array([0.0, 0.3, -0.1])
X = np.array([[0.2, 0.9, 0.4, 0.1], [0.7, 0.3, 0.8, 0.6], [0.05, 0.5, 0.95, 0.35]])
Y = np.array([0, 2, 1])
V1, C1 = np.array([0.7, -0.4, 1.1, 0.3]), 0.2
V2, C2 = np.array([-0.5, 0.9, 0.2, -1.3]), -0.1


def linear(W, b):
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double()
    with torch.no_grad(): m[1].weight.copy_(torch.tensor(W)); m[1].bias.copy_(torch.tensor(b))
    return m


def linear_disc(v, c):
    d = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0)).double()
    with torch.no_grad(): d[1].weight.copy_(torch.tensor(v)[None]); d[1].bias.fill_(c)
    return d


def set_disc(recipe, name, v, c):
    with torch.no_grad(): recipe.modules[name][1].weight.copy_(torch.tensor(v)[None]); recipe.modules[name][1].bias.fill_(c)


def softmax(z): e = np.exp(z - z.max(1, keepdims=True)); return e / e.sum(1, keepdims=True)
def logsig(t): return -np.log1p(np.exp(-t))


def grads_by_hand(W, b, kind):
    "Per-sample input gradients of a linear model, written out: rows are flat(J_n)."
    p, onehot = softmax(X @ W.T + b), np.eye(3)[Y]
    if kind == 'tci': return W[Y]
    if kind == 'ce': return (p - onehot) @ W                          # W^T (p - e_y)
    if kind == 'prob': return p[np.arange(3), Y][:, None] * (W[Y] - p @ W)   # p_y (W_y - sum_j p_j W_j)
    raise ValueError(kind)


def ce_by_hand(W, b): return -np.log(softmax(X @ W.T + b)[np.arange(3), Y]).mean()
def l2(a, b): return ((a - b)**2).sum(1).mean()
def adv(v, c, jt, js): return logsig(jt @ v + c).mean() + logsig(-(js @ v + c)).mean()


def igam_by_hand(W, b, kind, lam_adv, lam_diff):
    js, jt = grads_by_hand(W, b, kind), grads_by_hand(WT, BT, kind)
    return ce_by_hand(W, b) + lam_adv*adv(V1, C1, jt, js) + lam_diff*l2(js, jt)


def topk_by_hand(j, k):
    keep = round(k*4/100)
    out = np.zeros_like(j)
    for n in range(len(j)):
        idx = np.argsort(-np.abs(j[n]), kind='stable')[:keep]
        out[n, idx] = j[n, idx]
    return out


def tensors(): return torch.tensor(X).view(3, 1, 2, 2), torch.tensor(Y)


def igam_recipe(kind='ce', lam_adv=0.7, lam_diff=2.5, **kw):
    kw = {'disc_input': 'raw', 'input_noise': 0.0, **kw}   # the hand formulas: raw gradients to D, the images as given
    rec = IGAM(linear(WT, BT), lambda_adv=lam_adv, lambda_diff=lam_diff, grad_kind=kind, in_channels=1,
               discriminator=lambda c: linear_disc(V1, C1), **kw)
    student = linear(WS, BS)
    rec.setup(student, 'cpu')
    return rec, student


# ---------------------------------------------------------------------------------------------------------------
# Terms equal hand-computed float64 values

@pytest.mark.parametrize('kind', ['ce', 'prob'])
def test_igam_terms_by_hand(kind):
    rec, student = igam_recipe(kind)
    x, y = tensors()
    t = rec.loss(student, x, y, 0.0)
    js, jt = grads_by_hand(WS, BS, kind), grads_by_hand(WT, BT, kind)
    assert abs(t['ce'].item() - ce_by_hand(WS, BS)) < 1e-12
    assert abs(t['diff'].item() - l2(js, jt)) < 1e-12
    assert abs(t['adv'].item() - adv(V1, C1, jt, js)) < 1e-12
    assert abs(t['loss'].item() - igam_by_hand(WS, BS, kind, 0.7, 2.5)) < 1e-12
    d_t, d_s = jt @ V1 + C1, js @ V1 + C1
    assert abs(t['disc_acc'].item() - ((d_t > 0).mean() + (d_s < 0).mean())/2) < 1e-12
    # the teacher's gradient is the hand formula and carries no graph
    jt_rec = rec.teacher_grad(x, y, kind)
    assert jt_rec.grad_fn is None and np.allclose(jt_rec.flatten(1).numpy(), jt, atol=1e-14)


def test_igam_student_gradient_matches_finite_differences():
    "The loss trains the student through J_s (double backpropagation): autograd = central differences of the hand formula."
    rec, student = igam_recipe('ce')
    x, y = tensors()
    rec.loss(student, x, y, 0.0)['loss'].backward()
    h, fd = 1e-6, np.zeros_like(WS)
    for i in range(3):
        for j in range(4):
            Wp, Wm = WS.copy(), WS.copy(); Wp[i, j] += h; Wm[i, j] -= h
            fd[i, j] = (igam_by_hand(Wp, BS, 'ce', 0.7, 2.5) - igam_by_hand(Wm, BS, 'ce', 0.7, 2.5))/(2*h)
    assert np.abs(student[1].weight.grad.numpy() - fd).max() < 1e-7
    # without the J_s path the gradient would differ: the L_diff and L_adv parts are second-order terms
    assert np.abs(fd - (softmax(X @ WS.T + BS) - np.eye(3)[Y]).T @ X / 3).max() > 1e-2
    assert all(p.grad is None for p in rec.teacher.parameters()) and all(p.grad is None for p in rec.modules['disc'].parameters())


def sarkar_recipe(**kw):
    args = dict(beta=1.5, gamma_phase1=0.8, gamma_phase2=2.5, phase1_epochs=1, schedule=TopKSchedule(100, 50, 50, epochs_per_k=1),
                in_channels=1, discriminator=lambda c: linear_disc(V1, C1), phase2_target='literal',   # Eq. 18 as printed
                lr_decay=((1.0, 0.01), (0.01, 0.001)))
    rec = SaliencyCurriculum(linear(WT, BT), **{**args, **kw})
    student = linear(WS, BS)
    rec.setup(student, 'cpu')
    set_disc(rec, 'curr_disc', V2, C2)
    return rec, student


def test_sarkar_terms_by_hand():
    rec, student = sarkar_recipe()
    x, y = tensors()
    jt, js_tci, js_ce = grads_by_hand(WT, BT, 'tci'), grads_by_hand(WS, BS, 'tci'), grads_by_hand(WS, BS, 'ce')
    ce = ce_by_hand(WS, BS)
    p1 = rec.loss(student, x, y, 0.5)                                    # phase 1, Eq. 13
    assert set(p1) == {'loss', 'ce', 'diff', 'robust', 'disc_acc'}
    assert abs(p1['diff'].item() - l2(js_tci, jt)) < 1e-12
    assert abs(p1['robust'].item() - adv(V1, C1, jt, js_tci)) < 1e-12
    assert abs(p1['loss'].item() - (ce + 1.5*adv(V1, C1, jt, js_tci) + 0.8*l2(js_tci, jt))) < 1e-12
    p2 = rec.loss(student, x, y, 2.5)                                    # phase 2 at k = 50 (epoch 1.5 of phase 2), Eq. 16
    jtk = topk_by_hand(jt, 50)
    assert p2['k'] == 50
    assert abs(p2['curr_diff'].item() - l2(js_ce, jtk)) < 1e-12
    assert abs(p2['curr_robust'].item() - adv(V2, C2, jtk, js_ce)) < 1e-12
    expected = ce + 1.5*(adv(V1, C1, jt, js_tci) + adv(V2, C2, jtk, js_ce)) + 2.5*(l2(js_tci, jt) + l2(js_ce, jtk))
    assert abs(p2['loss'].item() - expected) < 1e-12
    p100 = rec.loss(student, x, y, 1.2)                                  # k = 100: the whole teacher map
    assert p100['k'] == 100 and abs(p100['curr_diff'].item() - l2(js_ce, jt)) < 1e-12


def test_sarkar_sign_consistent_target_by_hand():
    "The default phase-2 target: the teacher's own CE gradient on its top-k % TCI pixels (Eq. 17-18 with that target)."
    rec, student = sarkar_recipe(phase2_target='sign_consistent')
    x, y = tensors()
    jt_tci, jt_ce, js_ce = grads_by_hand(WT, BT, 'tci'), grads_by_hand(WT, BT, 'ce'), grads_by_hand(WS, BS, 'ce')
    keep = topk_by_hand(jt_tci, 50) != 0
    target = np.where(keep, jt_ce, 0.0)
    p2 = rec.loss(student, x, y, 2.5)
    assert abs(p2['curr_diff'].item() - l2(js_ce, target)) < 1e-12
    assert abs(p2['curr_robust'].item() - adv(V2, C2, target, js_ce)) < 1e-12


def test_sarkar_ablation_switches_by_hand():
    x, y = tensors()
    jt, js_ce = grads_by_hand(WT, BT, 'tci'), grads_by_hand(WS, BS, 'ce')
    rec, student = sarkar_recipe(keep_alignment_in_phase2=False)        # Tables 5-6
    t = rec.loss(student, x, y, 2.5)
    assert set(t) == {'loss', 'ce', 'curr_diff', 'curr_robust', 'curr_disc_acc', 'k'}
    jtk = topk_by_hand(jt, 50)
    assert abs(t['loss'].item() - (ce_by_hand(WS, BS) + 1.5*adv(V2, C2, jtk, js_ce) + 2.5*l2(js_ce, jtk))) < 1e-12
    rec, student = sarkar_recipe(beta=0)                                # Table 9: no discriminators
    assert set(rec.loss(student, x, y, 2.5)) == {'loss', 'ce', 'diff', 'curr_diff', 'k'}
    rec, student = sarkar_recipe(gamma_phase1=0, gamma_phase2=0)        # Table 9: no L2 terms
    assert set(rec.loss(student, x, y, 2.5)) == {'loss', 'ce', 'robust', 'disc_acc', 'curr_robust', 'curr_disc_acc', 'k'}
    rec, student = sarkar_recipe(phase1_epochs=0)                       # Table 8: phase 2 from the first step
    assert rec.loss(student, x, y, 0.0)['k'] == 100 and rec.phase(0.0) == 2


# ---------------------------------------------------------------------------------------------------------------
# The game moves the right way

@pytest.mark.parametrize('which', ['igam', 'sarkar'])
def test_one_step_moves_each_objective_the_right_way(which):
    rec, student = igam_recipe(disc_every=1) if which == 'igam' else sarkar_recipe()
    x, y = tensors()
    epoch = 0.0 if which == 'igam' else 2.5                              # Sarkar: phase 2, both discriminators
    before = rec.loss(student, x, y, epoch)['loss'].item()
    opt = torch.optim.SGD(student.parameters(), lr=1e-2)
    opt.zero_grad(); rec.loss(student, x, y, epoch)['loss'].backward(); opt.step()
    assert rec.loss(student, x, y, epoch)['loss'].item() < before        # student: minimizes its objective
    pending = dict(rec._pending)
    with torch.no_grad():
        adv_before = {n: gradient_adversarial_loss(rec.modules[n](jt), rec.modules[n](js)).item() for n, (js, jt) in pending.items()}
    rec.after_step(student, x, y, epoch)
    with torch.no_grad():
        for n, (js, jt) in pending.items():                              # each discriminator: maximizes L_adv
            assert gradient_adversarial_loss(rec.modules[n](jt), rec.modules[n](js)).item() > adv_before[n]
    assert set(pending) == ({'disc'} if which == 'igam' else {'disc', 'curr_disc'})


def test_discriminator_steps_every_disc_every_steps():
    rec, student = igam_recipe(disc_every=3)
    x, y = tensors()
    weights = []
    for _ in range(7):
        rec.loss(student, x, y, 0.0)
        before = rec.modules['disc'][1].weight.detach().clone()
        rec.after_step(student, x, y, 0.0)
        weights.append(not torch.equal(before, rec.modules['disc'][1].weight))
    assert weights == [True, False, False, True, False, False, True]   # steps 0, 3, 6


# ---------------------------------------------------------------------------------------------------------------
# Curriculum: k at the right epochs, masks of exactly k % of the pixels

def test_masks_have_exactly_k_percent_and_k_follows_the_schedule(monkeypatch):
    seen = []
    real = matching.topk_mask
    def recording(J, k):
        m = real(J, k); seen.append((k, m)); return m
    monkeypatch.setattr(matching, 'topk_mask', recording)
    torch.manual_seed(0)
    x, y = torch.rand(24, 1, 10, 10), torch.arange(24) % 10           # 100 pixels: k % is k pixels
    rec = SaliencyCurriculum(SmallCNN(input_size=10).eval(), phase1_epochs=2, schedule=TopKSchedule(100, 50, 10, epochs_per_k=2),
                             preset='digits')          # its weights on 10x10 images: asked for
    h = fit(SmallCNN(input_size=10), rec, (x, y), epochs=rec.total_epochs, batch_size=8, lr=0.01,
            lr_schedule=rec.lr_schedule, progress=False)
    assert rec.total_epochs == 14
    assert h.k.iloc[:2].isna().all() and h.k.iloc[2:].tolist() == [100, 100, 90, 90, 80, 80, 70, 70, 60, 60, 50, 50]
    assert [k for k, _ in seen] == [k for k in (100, 90, 80, 70, 60, 50) for _ in range(2*3)]    # 2 epochs x 3 batches
    for k, m in seen:
        assert m.shape == (8, 1, 10, 10) and set(m.unique().tolist()) <= {0.0, 1.0}
        assert (m.sum((1, 2, 3)) == k).all()


def test_phase1_epochs_none_takes_the_rest_of_the_run():
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    rec = SaliencyCurriculum(SmallCNN(input_size=8).eval(), schedule=TopKSchedule(100, 90, 10, epochs_per_k=1))
    h = fit(SmallCNN(input_size=8), rec, (x, y), epochs=5, batch_size=16, lr=0.01, progress=False)
    assert rec.phase(2.9) == 1 and rec.phase(3.0) == 2
    assert h.k.iloc[:3].isna().all() and h.k.iloc[3:].tolist() == [100, 90]


def test_discriminators_restart_their_learning_rate_in_phase_2():
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    rec = SaliencyCurriculum(SmallCNN(input_size=8).eval(), phase1_epochs=2, disc_lr=0.02,
                             schedule=TopKSchedule(100, 90, 10, epochs_per_k=1))
    lrs = []
    fit(SmallCNN(input_size=8), rec, (x, y), epochs=rec.total_epochs, batch_size=8, lr=0.1, lr_schedule=rec.lr_schedule,
        callbacks=[lambda e, row, m: lrs.append((row['lr'], rec.optimizers['curr_disc'].param_groups[0]['lr']))], progress=False)
    f = rec.lr_schedule
    for e, (model_lr, disc_lr) in enumerate(lrs):                      # values at each epoch's last step (e + 1/2)
        assert math.isclose(model_lr, 0.1*f(e + 0.5), rel_tol=1e-12)
        base = f(0.0) if e < 2 else f(2.0)                            # the factor at the phase's first step
        assert math.isclose(disc_lr, 0.02*f(e + 0.5)/base, rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Teacher frozen and never updated; transforms; BatchNorm students

def digits(n=64):
    d = load_dataset('digits')
    return d.images[:n], d.labels[:n]


def test_teacher_is_frozen_and_unchanged_by_training():
    torch.manual_seed(0)
    teacher = create_model('smallcnn', dataset='digits')
    before = copy.deepcopy(teacher.state_dict())
    for rec in (IGAM(teacher, disc_every=1), SaliencyCurriculum(teacher, phase1_epochs=1, schedule=TopKSchedule(50, 50, epochs_per_k=1))):
        fit(create_model('smallcnn', dataset='digits'), rec, digits(), epochs=2, batch_size=32, lr=0.01, progress=False)
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        assert all(p.grad is None for p in teacher.parameters())
        for k, v in teacher.state_dict().items(): assert torch.equal(v, before[k])


def test_transform_gradients_reach_the_target_space_and_are_cropped_for_the_discriminator():
    torch.manual_seed(0)
    teacher = SmallCNN(input_size=8).eval()
    to_teacher = nn.Sequential(ChannelMean(), CenterCrop(8))
    seen = []
    def disc(c):
        d = Discriminator(c, (8, 16))
        d.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[1:])))
        return d
    rec = IGAM(teacher, transform=to_teacher, discriminator=disc, disc_every=1, preset='digits')
    x, y = torch.rand(16, 3, 12, 12), torch.arange(16) % 10
    fit(SmallCNN(in_channels=3, input_size=12), rec, (x, y), epochs=1, batch_size=8, lr=0.01, progress=False)
    assert set(seen) == {(3, 8, 8)}                                    # cropped to the teacher's window (IGAM §4.3.2)
    j = rec.teacher_grad(x, y, 'ce')
    assert j.shape == x.shape                                          # Eq. 17: in the student's input space
    # chain rule through the channel mean and the crop: a third of the teacher's own gradient inside, zero outside
    inner = input_grad(teacher, x.mean(1, keepdim=True)[..., 2:10, 2:10], y, 'ce')
    assert torch.allclose(j[..., 2:10, 2:10], inner.expand(-1, 3, -1, -1)/3, atol=1e-7)
    assert j[..., :2, :].abs().sum() == 0 and j[..., :, 10:].abs().sum() == 0


def test_batchnorm_student_one_forward_per_step():
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)).train()
    twin = copy.deepcopy(bn)
    x, y = digits(32)
    rec = IGAM(create_model('smallcnn', dataset='digits'), input_noise=0.0)   # the images as given, to compare the logits
    rec.setup(bn, 'cpu')
    t = rec.loss(bn, x, y, 0.0)
    with torch.no_grad(): logits = twin(x)                             # one training-mode forward pass
    assert torch.allclose(bn[1].running_mean, twin[1].running_mean) and bn[1].num_batches_tracked.item() == 1
    assert torch.allclose(t['ce'], nn.functional.cross_entropy(logits, y))
    student = copy.deepcopy(twin).train()
    logits2, (j,) = student_input_grads(student, x, y, ('ce',))
    assert torch.allclose(logits2, logits) and student[1].num_batches_tracked.item() == 2   # twin's pass + exactly one
    assert j.grad_fn is not None                                       # differentiable w.r.t. the parameters
    logits3, none = student_input_grads(copy.deepcopy(twin).train(), x, y, ())    # no gradient asked: the logits alone
    assert none == [] and torch.allclose(logits3, logits)


# ---------------------------------------------------------------------------------------------------------------
# Resume is exact for recipes with discriminators

class Stop(Exception): pass


def run(make_recipe, ckdir, epochs, stop_after=None, data=None, make_student=None, **kw):
    def cb(epoch, row, model):
        if epoch == stop_after: raise Stop()
    torch.manual_seed(123)                                             # a different global state: fit must not depend on it
    student = (make_student or (lambda: create_model('smallcnn', dataset='digits')))()
    rec = make_recipe()
    try: fit(student, rec, data or digits(96), epochs=epochs, checkpoint_dir=ckdir, seed=0, batch_size=32, lr=0.01,
             callbacks=[cb], progress=False, **kw)
    except Stop: return None, None
    return student, rec


def max_diff(a, b): return max((a[k] - b[k]).abs().max().item() for k in a)


def teacher8(): torch.manual_seed(7); return create_model('smallcnn', dataset='digits').eval()


@pytest.mark.parametrize('stop_after', [1, 2])
def test_resume_is_exact_sarkar_across_the_phase_boundary(tmp_path, stop_after):
    teacher = teacher8()
    make = lambda: SaliencyCurriculum(teacher, phase1_epochs=1, schedule=TopKSchedule(100, 90, 10, epochs_per_k=1), disc_every=2)
    sched = make()
    full, rec_full = run(make, tmp_path/'a', 3, lr_schedule=sched.lr_schedule)
    assert run(make, tmp_path/'b', 3, stop_after, lr_schedule=sched.lr_schedule)[0] is None
    assert load_checkpoint(tmp_path/'b'/'last.pt')['epoch'] == stop_after
    resumed, rec_res = run(make, tmp_path/'b', 3, lr_schedule=sched.lr_schedule)
    assert max_diff(full.state_dict(), resumed.state_dict()) <= 1e-6
    for n in ('disc', 'curr_disc'): assert max_diff(rec_full.modules[n].state_dict(), rec_res.modules[n].state_dict()) <= 1e-6
    assert rec_full._steps == rec_res._steps == 9


def test_resume_is_exact_igam_with_a_random_transform(tmp_path):
    torch.manual_seed(7)
    teacher = SmallCNN(input_size=12).eval()                           # a 12x12 teacher for 8x8 students: random padding
    make = lambda: IGAM(teacher, transform=Pad(12, 'random', seed=3), disc_every=2)
    full, rec_full = run(make, tmp_path/'a', 3)
    assert run(make, tmp_path/'b', 3, 1)[0] is None
    resumed, rec_res = run(make, tmp_path/'b', 3)
    assert max_diff(full.state_dict(), resumed.state_dict()) <= 1e-6
    assert max_diff(rec_full.modules['disc'].state_dict(), rec_res.modules['disc'].state_dict()) <= 1e-6


# ---------------------------------------------------------------------------------------------------------------
# finetune_logit_layer

def test_finetune_trains_only_a_new_layer_and_a_trainable_transform_in_place():
    torch.manual_seed(0)
    teacher = SmallCNN(num_classes=4, input_size=16)
    flags, state = [p.requires_grad for p in teacher.parameters()], copy.deepcopy(teacher.state_dict())
    up = TransposeConvUpsample(1)                                      # 8x8 digits -> the teacher's 16x16 (IGAM §5.1.2)
    up_before = copy.deepcopy(up.state_dict())
    rng = torch.get_rng_state()
    new = finetune_logit_layer(teacher, digits(128), epochs=2, transform=up, progress=False)
    assert torch.equal(torch.get_rng_state(), rng)                     # seeded locally
    assert teacher.training and [p.requires_grad for p in teacher.parameters()] == flags
    for k, v in teacher.state_dict().items(): assert torch.equal(v, state[k])
    assert new.fc.out_features == 10 and new.config['num_classes'] == 10
    for k, v in new.state_dict().items():
        if not k.startswith('fc.'): assert torch.equal(v, state[k])
    assert not new.training and not any(p.requires_grad for p in new.parameters())
    assert not torch.equal(up.conv.weight, up_before['conv.weight'])   # trained with the new layer, in place


def test_finetune_generic_module_and_class_count_from_labels():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = digits(100)
    new = finetune_logit_layer(body, (x, y % 5), epochs=1, layer='3', progress=False)
    assert new[3].out_features == 5 and body[3].out_features == 3


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs name the argument

def test_bad_inputs():
    t = create_model('smallcnn', dataset='digits')
    student = lambda: create_model('smallcnn', dataset='digits')
    x, y = digits(32)
    cases = [
        (TypeError, '^teacher', lambda: IGAM('teacher')),
        (TypeError, '^transform', lambda: IGAM(t, transform='resize')),
        (ValueError, '^grad_kind', lambda: IGAM(t, grad_kind='tci')),
        (ValueError, '^lambda_adv', lambda: IGAM(t, lambda_adv=-1)),
        (ValueError, '^disc_every', lambda: IGAM(t, disc_every=0)),
        (ValueError, '^disc_widths', lambda: IGAM(t, disc_widths=())),
        (ValueError, '^preset', lambda: IGAM(t, preset='svhn')),
        (ValueError, '^transform', lambda: IGAM(t, transform=nn.Sequential(Pad(16), CenterCrop(8)))),
        (ValueError, '^preset', lambda: SaliencyCurriculum(t, preset='mnist')),
        (ValueError, '^schedule', lambda: SaliencyCurriculum(t, schedule=lambda e: 120)),
        (ValueError, '^schedule', lambda: SaliencyCurriculum(t, schedule=type('S', (), {'epochs': 2, '__call__': lambda s, e: 0})())),
        (ValueError, '^schedule', lambda: SaliencyCurriculum(t, schedule=50)),
        (ValueError, '^start, stop', lambda: TopKSchedule(100, 0)),
        (ValueError, '^beta', lambda: SaliencyCurriculum(t, beta=-2)),
        (ValueError, '^phase1_epochs', lambda: SaliencyCurriculum(t, phase1_epochs=-1)),
        (ValueError, '^lr_decay', lambda: SaliencyCurriculum(t, lr_decay=(1, 0.1))),
        (ValueError, '^phase1_epochs', lambda: SaliencyCurriculum(t).lr_schedule(0.0)),
        # a teacher with another number of classes (robustnb model: at setup; any module: at the first batch)
        (ValueError, '^teacher', lambda: fit(student(), IGAM(create_model('smallcnn', dataset='digits', num_classes=5)), (x, y), epochs=1, progress=False)),
        (ValueError, '^teacher', lambda: fit(student(), IGAM(nn.Sequential(nn.Flatten(), nn.Linear(64, 5))), (x, y), epochs=1, progress=False)),
        # a teacher of another input size and no transform
        (ValueError, '^transform', lambda: fit(student(), IGAM(SmallCNN(input_size=12)), (x, y), epochs=1, progress=False)),
        (ValueError, '^transform', lambda: fit(student(), IGAM(nn.Sequential(nn.Flatten(), nn.Linear(144, 10))), (x, y), epochs=1, progress=False)),
        (ValueError, '^epochs', lambda: fit(student(), SaliencyCurriculum(t), (x, y), epochs=6, progress=False)),
        (ValueError, '^in_channels', lambda: fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), IGAM(nn.Sequential(nn.Flatten(), nn.Linear(64, 10))), (x, y), epochs=1, progress=False)),
        (ValueError, '^layer', lambda: finetune_logit_layer(t, (x, y), layer='conv1')),
        (ValueError, '^layer', lambda: finetune_logit_layer(t, (x, y), layer='head')),
        (ValueError, '^epochs', lambda: finetune_logit_layer(t, (x, y), epochs=0)),
    ]
    for exc, pattern, call in cases:
        with pytest.raises(exc, match=pattern): call()


def test_divergence_stops_with_a_clear_error():
    x, y = digits(64)
    with pytest.raises(FloatingPointError, match='^loss: non-finite'):
        fit(create_model('smallcnn', dataset='digits'), IGAM(teacher8(), lambda_diff=1e6), (x, y), epochs=3, optimizer='sgd', lr=10.0,
            batch_size=32, progress=False)


def test_digits_weights_on_other_images_are_asked_for_not_assumed():
    "IGAM and SaliencyCurriculum without a preset take the digits' loss weights only on 8x8 digits, else say what to pass."
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 10, 10), torch.arange(8) % 10
    teacher = SmallCNN(input_size=10).eval()
    for make, names in ((lambda **kw: IGAM(teacher, **kw), 'lambda_adv, lambda_diff, input_noise'),
                        (lambda **kw: SaliencyCurriculum(teacher, phase1_epochs=1, schedule=TopKSchedule(50, 50, epochs_per_k=1), **kw),
                         'beta, gamma_phase1, gamma_phase2')):
        with pytest.raises(ValueError, match=f"^preset: .*default {names} were tuned on the 1×8×8 digits, not for 1×10×10"):
            fit(SmallCNN(input_size=10), make(), (x, y), epochs=2, lr=0.01, progress=False)
        fit(SmallCNN(input_size=10), make(preset='digits'), (x, y), epochs=2, lr=0.01, progress=False)      # asked for
    # weights and noise given: the rest of the digits defaults (discriminator, schedule) need no preset
    fit(SmallCNN(input_size=10), IGAM(teacher, lambda_adv=1.0, lambda_diff=2.0, input_noise=0.0), (x, y), epochs=1, lr=0.01, progress=False)
    with pytest.raises(ValueError, match=' lambda_diff, input_noise were tuned'):
        fit(SmallCNN(input_size=10), IGAM(teacher, lambda_adv=1.0), (x, y), epochs=1, lr=0.01, progress=False)
    with pytest.raises(ValueError, match=' input_noise were tuned'):        # the noise's scale is the digits' too
        fit(SmallCNN(input_size=10), IGAM(teacher, lambda_adv=1.0, lambda_diff=2.0), (x, y), epochs=1, lr=0.01, progress=False)
    # on the digits themselves the defaults are what they were tuned for
    x8 = torch.rand(8, 1, 8, 8)
    fit(SmallCNN(input_size=8), IGAM(SmallCNN(input_size=8).eval()), (x8, y), epochs=1, lr=0.01, progress=False)


def test_igam_input_noise_is_what_student_and_teacher_see():
    "IGAM(input_noise=n) (official scripts' --img_random_pert): both networks see the same x + U(-n, n), clipped to [0, 1]."
    torch.manual_seed(0)
    x, y = torch.rand(256, 1, 8, 8), torch.arange(256) % 10
    for n in (0.0, 0.3):
        seen = {'student': [], 'teacher': []}
        teacher, student = SmallCNN(input_size=8).eval(), SmallCNN(input_size=8)
        for name, m in (('teacher', teacher), ('student', student)):
            m.register_forward_hook(lambda mod, inp, out, name=name: seen[name].append(inp[0].detach().clone()))
        rec = IGAM(teacher, input_noise=n)
        rec.setup(student, 'cpu')
        torch.manual_seed(5)
        rec.loss(student, x, y, 0.0)
        s, t = seen['student'][0], seen['teacher'][-1]        # the teacher's last pass: its gradient (the first checks shapes)
        assert torch.equal(s, t)
        if not n:
            assert torch.equal(s, x)
            continue
        d = s - x
        assert 0 <= s.min() and s.max() <= 1 and d.abs().max() <= n + 1e-6
        inside = (x > n) & (x < 1 - n)                        # no clipping there: the noise itself, uniform on (-n, n)
        assert abs(d[inside].mean()) < 0.01 and abs(d[inside].std() - n/3**0.5) < 0.01 and d[inside].abs().max() > 0.99*n
        torch.manual_seed(5)                                   # one draw of the global generator: seeded, reproducible
        assert torch.equal(s, (x + torch.empty_like(x).uniform_(-n, n)).clamp(0, 1))
    assert IGAM(teacher).input_noise == 0.2 and IGAM(teacher, preset='cifar100').input_noise == 0.0
