"""robustnb.landscape: filter normalization, loss surfaces against direct evaluation, decision slices, t-SNE."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustnb.landscape import (decision_slice, embed_features, loss_on, loss_surface, normalize_direction,
                                random_directions)
from robustnb.models import create_model


@pytest.mark.parametrize('name,dataset', [('smallcnn', 'digits'), ('preactresnet20', 'cifar10'), ('wrn-16-2', 'cifar10'),
                                          ('resnet18', 'cifar10')])
def test_filter_normalization(name, dataset):
    "Every conv filter / linear row has the norm of the matching weight slice to 1e-6; 1-D entries are zero."
    model = create_model(name, dataset=dataset)
    for seed in (0, 1):
        d = random_directions(model, seed=seed)
        assert list(d) == [n for n, _ in model.named_parameters()]
        for k, w in model.named_parameters():
            if w.dim() <= 1:
                assert torch.count_nonzero(d[k]) == 0, k
            else:
                rows = d[k].flatten(1).norm(dim=1)
                assert torch.allclose(rows, w.detach().flatten(1).norm(dim=1), rtol=0, atol=1e-6), k


def test_layer_norm_and_ignore_none():
    model = create_model('smallcnn', dataset='digits')
    d = random_directions(model, norm='layer', ignore=None, seed=2)
    for k, w in model.named_parameters():
        if w.dim() <= 1: assert torch.equal(d[k], w.detach()), k            # Li et al.: the direction is the bias itself
        else: assert torch.allclose(d[k].norm(), w.detach().norm(), rtol=1e-5), k
    raw = random_directions(model, norm='none', seed=2)
    assert torch.allclose(normalize_direction(model, raw)['conv2.weight'].flatten(1).norm(dim=1),
                          model.conv2.weight.detach().flatten(1).norm(dim=1), atol=1e-6)


def bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))


def test_loss_surface_matches_direct_evaluation_and_restores_state():
    model = bn_model().train()
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    def train_mode_loss(m):                        # a forward in train mode moves BatchNorm's running statistics
        with torch.no_grad(): return F.cross_entropy(m(x), y).item()
    state = copy.deepcopy(model.state_dict())
    d1, d2 = random_directions(model, n=2, seed=5)
    xs, ys = np.array([-0.7, 0.0, 0.4]), np.array([-0.2, 0.9])
    surf = loss_surface(model, train_mode_loss, (d1, d2), grid=(xs, ys))
    for k, t in model.state_dict().items(): assert torch.equal(t, state[k]), k
    assert model.training
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            moved = copy.deepcopy(model)
            moved.load_state_dict(state)
            with torch.no_grad():
                for k, p in moved.named_parameters(): p.add_(a * d1[k] + b * d2[k])
            assert abs(surf.values[i, j] - train_mode_loss(moved)) <= 1e-5
    line = loss_surface(model, train_mode_loss, d1, grid=xs)
    np.testing.assert_allclose(line.values, loss_surface(model, train_mode_loss, (d1, d2), grid=(xs, [0.0])).values[:, 0])


def test_surface_is_deterministic_and_partial_directions_work():
    model = create_model('smallcnn', dataset='digits').eval()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loss = loss_on(x, y)
    s1 = loss_surface(model, loss, random_directions(model, n=2, seed=3), grid=np.linspace(-1, 1, 3))
    s2 = loss_surface(model, loss, random_directions(model, n=2, seed=3), grid=np.linspace(-1, 1, 3))
    assert np.array_equal(s1.values, s2.values)
    only_fc = {'fc.weight': torch.randn_like(model.fc.weight)}
    s = loss_surface(model, loss, only_fc, grid=[0.5])
    moved = copy.deepcopy(model)
    with torch.no_grad(): moved.fc.weight.add_(0.5 * only_fc['fc.weight'])
    assert abs(s.values[0] - loss(moved)) <= 1e-6


def test_adversarial_loss_recomputes_the_attack_at_every_point():
    "loss_on(attack=...) attacks the model as moved to each grid point, in eval mode."
    model = bn_model().train()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    seen = []
    def attack(m, xb, yb):
        seen.append((m.training, m[4].weight[0, 0].item()))
        return (xb + 0.05).clamp(0, 1)
    d = random_directions(model, ignore=None, seed=0)
    loss_surface(model, loss_on(x, y, attack=attack), d, grid=[-1.0, 0.0, 1.0])
    w0, dw = model[4].weight[0, 0].item(), d['4.weight'][0, 0].item()
    assert [s[0] for s in seen] == [False] * 3
    assert np.allclose([s[1] for s in seen], [w0 - dw, w0, w0 + dw], atol=1e-6)
    assert model.training


def test_decision_slice_against_direct_evaluation():
    torch.manual_seed(0)
    model = create_model('smallcnn', dataset='digits').eval()
    x, y = torch.rand(1, 8, 8), 4
    grid = np.linspace(-0.3, 0.3, 7)
    for directions in (('adversarial', 'random'), ('random', 'adversarial')):
        sl = decision_slice(model, x, y, directions=directions, grid=grid, seed=2)
        u, v = sl.directions
        assert abs((u * v).sum().item()) <= 1e-4 * u.norm().item() ** 2 and abs(v.norm() - u.norm()) <= 1e-4 * u.norm()
        pts = torch.stack([x + a * u + b * v for a in grid for b in grid])
        with torch.no_grad(): logits = model(pts)
        assert np.array_equal(sl.pred, logits.argmax(1).view(7, 7).numpy())
        np.testing.assert_allclose(sl.loss, F.cross_entropy(logits, torch.full((49,), y), reduction='none').view(7, 7).numpy(),
                                   rtol=1e-5, atol=1e-6)
    xg = x[None].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), torch.tensor([y])), xg)
    sl = decision_slice(model, x, y, grid=grid)
    assert torch.equal(sl.directions[0], g[0].sign())
    clipped = decision_slice(model, x, y, grid=[2.0], clip=True)
    with torch.no_grad():
        assert clipped.pred[0, 0] == model((x + 2 * clipped.directions[0] + 2 * clipped.directions[1]).clamp(0, 1)[None]).argmax()
    with pytest.raises(ValueError, match='^directions:'): decision_slice(model, x, y, directions=('adversarial', 'up'))
    with pytest.raises(ValueError, match='^grid:'): decision_slice(model, x, y, grid=np.zeros((2, 2, 2)))


def test_embed_features_is_tsne_of_the_penultimate_features():
    from sklearn.manifold import TSNE
    torch.manual_seed(0)
    model = create_model('smallcnn', dataset='digits').eval()
    x, x_adv = torch.rand(30, 1, 8, 8), torch.rand(10, 1, 8, 8)
    emb, emb_adv = embed_features(model, x, x_adv, seed=4, perplexity=8)
    with torch.no_grad(): feats = torch.cat([model.features(x), model.features(x_adv)]).double().numpy()
    ref = TSNE(2, perplexity=8, init='pca', learning_rate='auto', random_state=4, n_jobs=1).fit_transform(feats)
    np.testing.assert_allclose(np.concatenate([emb, emb_adv]), ref, rtol=1e-5, atol=1e-5)
    again = embed_features(model, x, x_adv, seed=4, perplexity=8)
    assert np.array_equal(again[0], emb) and np.array_equal(again[1], emb_adv)


def test_bad_input_names_the_argument():
    model = create_model('smallcnn', dataset='digits')
    d = random_directions(model)
    for fn, name in [(lambda: random_directions(model, norm='unit'), 'norm:'), (lambda: random_directions(model, ignore='all'), 'ignore:'),
                     (lambda: random_directions(model, n=0), 'n:'), (lambda: loss_surface(model, len, []), 'directions:'),
                     (lambda: loss_surface(model, len, {'nope': torch.zeros(1)}), r'directions\[0\]:'),
                     (lambda: loss_surface(model, len, d, grid=[]), 'grid:'),
                     (lambda: loss_on(torch.rand(0, 1, 8, 8), torch.zeros(0)), 'x:'),
                     (lambda: embed_features(model, torch.rand(4, 1, 8, 8)), 'perplexity:'),
                     (lambda: embed_features(model, torch.rand(4, 1, 8, 8), batch_size=0), 'batch_size:'),
                     (lambda: decision_slice(model, torch.rand(1, 1, 8, 8), torch.tensor([0]), seed=-1), 'seed:')]:
        with pytest.raises(ValueError, match=f'^{name}'): fn()
