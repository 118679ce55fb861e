"""robustnb.saliency against independent references: captum, float64 central differences, gradcheck, closed forms,
torchvision and adjoint identities."""
from fractions import Fraction

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from captum.attr import Saliency

from robustnb.models import PreActResNet20, SmallCNN
from robustnb.saliency import (INPUT_GRAD_KINDS, CenterCrop, ChannelMean, Pad, Resize, TransposeConvUpsample,
                               alignment, attention_map, attribute, binarized_alignment, crop_gradients, gradcam,
                               input_grad, linearized_robustness, topk_mask, topk_saliency)


def small_cnn(seed=0, channels=1, dtype=torch.float32):
    torch.manual_seed(seed)
    return SmallCNN(in_channels=channels, input_size=8, mean=(0.3,)*channels, std=(0.4,)*channels).to(dtype).eval()


def trained_bn_resnet(seed=0):
    "PreAct-ResNet-20 whose BatchNorm running statistics have moved (eval mode then differs from the identity)."
    torch.manual_seed(seed)
    m = PreActResNet20(input_size=16)
    m.train()
    with torch.no_grad(): m(torch.rand(16, 3, 16, 16))
    return m.eval()


def linear_model(k=10, d=(1, 8, 8), seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(d).prod()), k)).double()


# ---------------------------------------------------------------- input gradients
@pytest.mark.parametrize('make', [lambda: small_cnn(1), lambda: small_cnn(2, channels=3), trained_bn_resnet])
def test_tci_equals_captum_saliency(make):
    model = make()
    c = model.normalize.mean.shape[1]
    size = 16 if isinstance(model, PreActResNet20) else 8
    x, y = torch.rand(6, c, size, size), torch.tensor([0, 1, 2, 3, 4, 9])
    ours = input_grad(model, x, y, 'tci')
    oracle = Saliency(model).attribute(x.clone().requires_grad_(), target=y, abs=False)
    assert (ours - oracle).abs().max() <= 1e-6


def _per_sample_objective(logits, y, kind):
    "The four per-sample scalars written out independently of robustnb."
    p = logits.softmax(1)
    true = logits[torch.arange(len(y)), y]
    if kind == 'tci': return true
    if kind == 'ce': return -p[torch.arange(len(y)), y].log()
    if kind == 'prob': return p[torch.arange(len(y)), y]
    other = logits.clone(); other[torch.arange(len(y)), y] = -torch.inf
    return true - other.max(1).values


@pytest.mark.parametrize('kind', INPUT_GRAD_KINDS)
@pytest.mark.parametrize('channels', [1, 3])
def test_input_grad_matches_float64_central_differences(kind, channels):
    model = small_cnn(3, channels, torch.float64)
    torch.manual_seed(4)
    x, y = torch.rand(3, channels, 8, 8, dtype=torch.float64), torch.tensor([1, 5, 7])
    h, d = 1e-6, channels*64
    # all 2d perturbed copies of the batch in one forward pass: sample n, coordinate p, sign s
    e = torch.eye(d, dtype=torch.float64).view(d, 1, channels, 8, 8)
    xs = torch.cat([x[None] + h*e, x[None] - h*e]).reshape(-1, channels, 8, 8)
    with torch.no_grad(): phi = _per_sample_objective(model(xs), y.repeat(2*d), kind).view(2, d, 3)
    fd = ((phi[0] - phi[1])/(2*h)).T.reshape(x.shape)
    g = input_grad(model, x, y, kind)
    assert g.dtype == torch.float64 and (g - fd).abs().max() <= 1e-5, (g - fd).abs().max()


def test_ce_is_per_sample_and_independent_of_batch_size():
    model, x, y = small_cnn(5), torch.rand(8, 1, 8, 8), torch.arange(8)
    full = input_grad(model, x, y, 'ce')
    for n in (1, 3):
        assert torch.allclose(input_grad(model, x[:n], y[:n], 'ce'), full[:n], atol=1e-6)
    xr = x.clone().requires_grad_()
    (g_mean,) = torch.autograd.grad(F.cross_entropy(model(xr), y), xr)       # the batch-mean loss carries 1/N
    assert torch.allclose(full, 8*g_mean, atol=1e-6)


@pytest.mark.parametrize('kind', INPUT_GRAD_KINDS)
def test_second_order_gradcheck_wrt_parameters(kind):
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softplus(), nn.Flatten(), nn.Linear(2*4*4, 3)).double()
    x, y = torch.rand(2, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 2])
    names = [n for n, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())

    def penalty(*ps):       # a double-backpropagation loss: squared norm of the input gradient
        f = lambda z: torch.func.functional_call(net, dict(zip(names, ps)), (z,))
        return input_grad(f, x, y, kind, create_graph=True).pow(2).sum()
    assert torch.autograd.gradcheck(penalty, params, eps=1e-6, atol=1e-6)


def test_second_order_gradcheck_wrt_input():
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2*4*4, 3)).double()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: input_grad(net, z, torch.tensor([1, 0]), 'ce', create_graph=True), (x,))


def test_input_grad_hygiene():
    model, x, y = small_cnn(8), torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    model.conv1.weight.requires_grad_(False)                                # a partly frozen model stays so
    for training in (True, False):
        model.train(training)
        for create_graph in (False, True):
            g = input_grad(model, x, y, 'ce', create_graph=create_graph)
            assert model.training == training and not x.requires_grad and x.grad is None
            assert (g.grad_fn is not None) == create_graph
    assert all(p.grad is None for p in model.parameters())
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad
    leaf = x.clone().requires_grad_()
    input_grad(model.eval(), leaf, y)
    assert leaf.requires_grad and leaf.grad is None


def test_graph_through_a_trainable_input_transform():
    "IGAM-TransposeConv: J_t = d/dx_tar L(teacher(T(x_tar))); with create_graph the loss on J_t reaches T's parameters."
    torch.manual_seed(9)
    up, teacher = TransposeConvUpsample(1).double(), small_cnn(9, dtype=torch.float64)
    teacher.requires_grad_(False)
    x, y = torch.rand(2, 1, 4, 4, dtype=torch.float64), torch.tensor([3, 4])
    J = input_grad(nn.Sequential(up, teacher), x, y, 'ce', create_graph=True)
    assert J.shape == x.shape
    J.pow(2).sum().backward()
    assert up.conv.weight.grad.abs().sum() > 0 and teacher.fc.weight.grad is None
    # chain rule: J_t = A^T (teacher's own gradient at T(x))
    xg = x.clone().requires_grad_()
    out = up(xg)
    (chain,) = torch.autograd.grad(out, xg, input_grad(teacher, out.detach(), y, 'ce'))
    assert torch.allclose(J.detach(), chain, atol=1e-12)


def test_input_grad_rejects_bad_input():
    model, x, y = small_cnn(), torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    for call, name in [(lambda: input_grad(model, x, y, 'loss'), 'kind'), (lambda: input_grad(model, x[0], y), 'x'),
                       (lambda: input_grad(model, x, torch.tensor([0, 10])), 'y'),
                       (lambda: input_grad(model, x, torch.tensor([0.5, 1.0])), 'y')]:
        with pytest.raises((ValueError, TypeError), match=f'^{name}:'): call()


# ---------------------------------------------------------------- alignment and linearized robustness
@pytest.mark.parametrize('seed,shape', [(0, (1, 8, 8)), (1, (3, 4, 4)), (2, (2, 5, 3))])
def test_metrics_closed_form_for_linear_models(seed, shape):
    lin = linear_model(10, shape, seed)
    x = torch.rand(50, *shape, dtype=torch.float64)
    W, b = lin[1].weight.detach(), lin[1].bias.detach()
    xf = x.flatten(1)
    z = xf @ W.T + b
    i = z.argmax(1)
    assert torch.allclose(alignment(lin, x), (xf*W[i]).sum(1).abs()/W[i].norm(dim=1), rtol=1e-12, atol=0)
    rho, j = torch.full((50,), torch.inf, dtype=torch.float64), torch.zeros(50, dtype=torch.long)
    for n in range(50):                                                       # Eq. 6 sample by sample, class by class
        for c in range(10):
            if c != i[n]:
                r = (z[n, i[n]] - z[n, c]) / (W[i[n]] - W[c]).norm()
                if r < rho[n]: rho[n], j[n] = r, c
    assert torch.allclose(linearized_robustness(lin, x), rho, rtol=1e-12, atol=0)
    g = W[i] - W[j]
    assert torch.allclose(binarized_alignment(lin, x), (xf*g).sum(1).abs()/g.norm(dim=1), rtol=1e-12, atol=0)
    j2 = z.scatter(1, i[:, None], -torch.inf).argmax(1)                      # runner-up logit
    g2 = W[i] - W[j2]
    assert torch.allclose(binarized_alignment(lin, x, 'top2'), (xf*g2).sum(1).abs()/g2.norm(dim=1), rtol=1e-12, atol=0)


def test_alpha_equals_alpha_plus_for_a_binary_linear_classifier():
    "Sarkar §4: alpha = alpha+ for a linear binary classifier (logits (f, -f), Etmann's setting)."
    torch.manual_seed(3)
    w = torch.randn(64, dtype=torch.float64)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, 2, bias=False)).double()
    with torch.no_grad(): lin[1].weight.copy_(torch.stack([w, -w]))
    x = torch.randn(20, 1, 8, 8, dtype=torch.float64)
    assert torch.allclose(alignment(lin, x), binarized_alignment(lin, x), rtol=1e-12, atol=0)
    # without a bias, rho-hat is the distance to the hyperplane w.x = 0, which is alpha itself
    assert torch.allclose(linearized_robustness(lin, x), alignment(lin, x), rtol=1e-12, atol=0)


def test_metrics_against_captum_class_gradients():
    model = trained_bn_resnet(4)
    model.train()                                                             # metrics evaluate in eval mode ...
    x = torch.rand(5, 3, 16, 16)
    a, ap, rho = alignment(model, x), binarized_alignment(model, x, batch_size=2), linearized_robustness(model, x)
    assert model.training                                                     # ... and restore the mode
    model.eval()
    with torch.no_grad(): z = model(x).double()
    i = z.argmax(1)
    G = torch.stack([Saliency(model).attribute(x.clone().requires_grad_(), target=c, abs=False).flatten(1) for c in range(10)], 1).double()
    xf = x.flatten(1).double()
    gi = G[torch.arange(5), i]
    assert torch.allclose(a.double(), (xf*gi).sum(1).abs()/gi.norm(dim=1), rtol=1e-4)
    ratios = (z.gather(1, i[:, None]) - z)/(gi[:, None] - G).norm(dim=2)
    ratios[torch.arange(5), i] = torch.inf
    r, j = ratios.min(1)
    assert torch.allclose(rho.double(), r, rtol=1e-4)
    g = gi - G[torch.arange(5), j]
    assert torch.allclose(ap.double(), (xf*g).sum(1).abs()/g.norm(dim=1), rtol=1e-4)


def test_metrics_edge_cases():
    flat = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double()
    with torch.no_grad(): flat[1].weight.zero_(); flat[1].bias.copy_(torch.tensor([1., 0., -1.]))
    x = torch.rand(2, 1, 2, 2, dtype=torch.float64)
    assert (alignment(flat, x) == 0).all() and torch.isinf(linearized_robustness(flat, x)).all()
    with pytest.raises(ValueError, match='^runner_up:'): binarized_alignment(flat, x, 'third')
    with pytest.raises(ValueError, match='^x:'): alignment(flat, x.flatten(1))


# ---------------------------------------------------------------- top-k
@pytest.mark.parametrize('shape', [(4, 1, 8, 8), (3, 1, 28, 28), (2, 3, 32, 32), (2, 3, 7, 5)])
def test_topk_mask_keeps_exactly_round_k_percent(shape):
    torch.manual_seed(0)
    s = torch.randn(*shape)
    h, w = shape[-2:]
    for k in (100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 1):
        m = topk_mask(s, k)
        assert m.shape == (shape[0], 1, h, w) and set(m.unique().tolist()) <= {0.0, 1.0}
        assert (m.sum((1, 2, 3)) == round(Fraction(k, 100)*h*w)).all(), k      # 7x5 at k=70: 24.5 -> 24
        score = s.abs().sum(1, keepdim=True)
        for n in range(shape[0]):                                            # kept pixels outrank dropped ones
            if 0 < m[n].sum() < h*w: assert score[n][m[n] == 1].min() >= score[n][m[n] == 0].max()


def test_topk_ties_broken_by_position_and_saliency_zeroed():
    s = torch.ones(2, 1, 3, 3)
    s[1, 0, 2, 2] = 5.0
    m = topk_mask(s, 34)                                                      # round(3.06) = 3 pixels
    assert m[0].flatten().tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert m[1].flatten().tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1]
    J = torch.randn(2, 3, 3, 3)
    Jk = topk_saliency(J, 50)
    keep = topk_mask(J, 50).bool().expand_as(J)
    assert torch.equal(Jk[keep], J[keep]) and (Jk[~keep] == 0).all()
    for k in (0, 100.5, -1, None):
        with pytest.raises(ValueError, match='^k:'): topk_mask(J, k)
    with pytest.raises(ValueError, match='^saliency:'): topk_mask(J[0], 50)


# ---------------------------------------------------------------- IGAM input transforms
def _transforms():
    return {'resize-up': (Resize(16), (3, 8, 8), (3, 16, 16)),
            'resize-avgpool': (Resize(4, 'avgpool'), (3, 8, 8), (3, 4, 4)),
            'crop': (CenterCrop((5, 4)), (3, 8, 7), (3, 5, 4)),
            'pad-center': (Pad(12), (3, 8, 8), (3, 12, 12)),
            'pad-random': (Pad((12, 10), 'random', seed=3), (3, 8, 8), (3, 12, 10)),
            'channel-mean': (ChannelMean(), (3, 8, 8), (1, 8, 8)),
            'transpose-conv': (TransposeConvUpsample(3), (3, 8, 8), (3, 16, 16)),
            'cifar->mnist': (nn.Sequential(ChannelMean(), CenterCrop(28)), (3, 32, 32), (1, 28, 28)),
            'tiny->cifar': (nn.Sequential(Resize(32, 'avgpool')), (3, 64, 64), (3, 32, 32))}


@pytest.mark.parametrize('name', list(_transforms()))
def test_transform_is_linear_adjoint_identity_and_shapes(name):
    t, cin, cout = _transforms()[name]
    t = t.double()
    torch.manual_seed(1)
    x = torch.randn(4, *cin, dtype=torch.float64, requires_grad=True)
    out = t(x)
    assert tuple(out.shape) == (4, *cout)
    v = torch.randn_like(out)
    (adj,) = torch.autograd.grad(out, x, v)                                   # A^T v
    with torch.no_grad():
        offset = t(torch.zeros_like(x))                                       # b: nonzero only for the biased transpose conv
        assert abs(((out - offset)*v).sum() - (x*adj).sum()) <= 1e-5
        if name != 'pad-random':                                              # linear (affine): A(ax + by) = aAx + bAy (+ b)
            x2 = torch.randn_like(x)
            assert torch.allclose(t(2*x - 3*x2) - offset, 2*(t(x) - offset) - 3*(t(x2) - offset), atol=1e-10)


def test_transforms_against_independent_references():
    torch.manual_seed(2)
    x = torch.rand(2, 3, 13, 12)
    for s in ((8, 8), (7, 6), (13, 12), (10, 9)):
        assert torch.equal(CenterCrop(s)(x), TF.center_crop(x, list(s)))
    x16 = torch.rand(2, 3, 16, 16)
    for size in ((32, 32), (24, 20), (8, 8)):
        assert torch.allclose(Resize(size)(x16), TF.resize(x16, list(size), antialias=False), atol=1e-6)
    assert torch.allclose(Resize(8, 'avgpool')(x16), TF.resize(x16, [8, 8], antialias=False), atol=1e-6)   # IGAM §4.3.1
    assert torch.allclose(Resize((4, 8), 'avgpool')(x16), x16.view(2, 3, 4, 4, 8, 2).mean((3, 5)), atol=1e-6)
    assert torch.allclose(ChannelMean()(x16), (x16[:, 0:1] + x16[:, 1:2] + x16[:, 2:3])/3, atol=1e-7)
    p = Pad((20, 19))(x16)
    assert torch.equal(p[..., 2:18, 2:18], x16) and p.abs().sum() == x16.abs().sum()
    for big in ((20, 19), (17, 16), (16, 21)):                                # the crop undoes the pad, odd margins too
        assert torch.equal(CenterCrop(16)(Pad(big)(x16)), x16)
    up = TransposeConvUpsample(3)(x16)
    assert torch.allclose(up[..., ::2, ::2], x16, atol=1e-6)
    assert torch.allclose(up[..., ::2, 1:-1:2], (x16[..., :-1] + x16[..., 1:])/2, atol=1e-6)


def test_random_pad_places_each_sample_and_is_seeded():
    x = torch.rand(6, 1, 4, 4) + 0.1                                          # no zeros inside the image
    a, b = Pad(9, 'random', seed=5)(x), Pad(9, 'random', seed=5)(x)
    assert torch.equal(a, b)
    spots = set()
    for n in range(6):
        nz = a[n, 0].nonzero()
        t, l = nz.min(0).values.tolist()
        assert torch.equal(a[n, :, t:t + 4, l:l + 4], x[n]) and (a[n] != 0).sum() == 16
        spots.add((t, l))
    assert len(spots) > 1


def test_crop_gradients_cuts_both_alike():
    teacher = small_cnn(6)
    x = Pad(12)(torch.rand(3, 1, 8, 8)).repeat(1, 3, 1, 1)
    pipe = nn.Sequential(ChannelMean(), CenterCrop(8))
    Jt = input_grad(nn.Sequential(pipe, teacher), x, torch.tensor([0, 1, 2]), 'prob')
    border = Jt.clone(); border[..., 2:10, 2:10] = 0
    assert border.abs().sum() == 0 and Jt.abs().sum() > 0                     # the teacher's gradient is zero outside
    Js = torch.randn_like(Jt)
    cs, ct = crop_gradients(Js, Jt, pipe)
    assert torch.equal(cs, Js[..., 2:10, 2:10]) and torch.equal(ct, Jt[..., 2:10, 2:10])
    assert all(torch.equal(a, b) for a, b in zip(crop_gradients(Js, Jt, 8), (cs, ct)))
    with pytest.raises(ValueError, match='^j_teacher:'): crop_gradients(Js, Jt[:, :1], pipe)
    with pytest.raises(ValueError, match='^crop:'): crop_gradients(Js, Jt, nn.Sequential(Resize(6), CenterCrop(4)))


def test_transforms_reject_bad_input():
    for call, name in [(lambda: Resize(0), 'size'), (lambda: Resize(4, 'area'), 'mode'), (lambda: Pad(4, 'edge'), 'mode'),
                       (lambda: CenterCrop(9)(torch.rand(1, 1, 8, 8)), 'x'), (lambda: Pad(4)(torch.rand(1, 1, 8, 8)), 'x'),
                       (lambda: Resize(3, 'avgpool')(torch.rand(1, 1, 8, 8)), 'x'), (lambda: ChannelMean()(torch.rand(3, 8, 8)), 'x'),
                       (lambda: TransposeConvUpsample(3, kernel_size=4), 'kernel_size')]:
        with pytest.raises(ValueError, match=f'^{name}:'): call()


# ---------------------------------------------------------------- attention, Grad-CAM, captum bridge
def test_attention_map_formula_and_differentiability():
    model = trained_bn_resnet(5)
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad(): a = model.feature_maps(x).sum(1, keepdim=True)
    lo, hi = a.amin((2, 3), keepdim=True), a.amax((2, 3), keepdim=True)
    small = attention_map(model, x, upsample=False)
    assert torch.allclose(small, (a - lo)/(hi - lo + 1e-8), atol=1e-6)
    assert torch.allclose(attention_map(model, x), F.interpolate(small, size=(16, 16), mode='bilinear'), atol=1e-6)
    torch.manual_seed(0)
    net = SmallCNN(input_size=8).double().eval()
    xd = torch.rand(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: attention_map(net, z), (xd,))


def test_gradcam_equals_cam_for_a_global_average_pooling_head():
    "For a GAP + linear head, Grad-CAM weights are W[c]/(h*w): the map is ReLU(sum_k W[c,k] A_k) up to scale (Zhou et al.'s CAM)."
    model = trained_bn_resnet(6)
    model.train()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 3, 3, 9])
    cam = gradcam(model, x, y, upsample=False)
    assert model.training and 'feature_maps' not in model.__dict__
    model.eval()
    with torch.no_grad():
        A = model.feature_maps(x)
        ref = F.relu((model.fc.weight[y][:, :, None, None]*A).sum(1, keepdim=True))
    lo, hi = ref.amin((2, 3), keepdim=True), ref.amax((2, 3), keepdim=True)
    assert torch.allclose(cam, (ref - lo)/(hi - lo + 1e-8), atol=1e-5)
    assert gradcam(model, x, y).shape == (4, 1, 16, 16)
    g3 = gradcam(model, x, y, layer=model.layer3, upsample=False)               # any layer captum can hook
    assert g3.shape == (4, 1, 4, 4) and g3.min() >= 0 and g3.max() <= 1


def test_attribute_methods_on_a_linear_model():
    "Linear Psi: saliency and SmoothGrad are w_y for every input and noise draw; IG from baseline b is (x - b) * w_y."
    lin = linear_model(4, (1, 3, 3), 7).float()
    W = lin[1].weight.detach().view(4, 1, 3, 3)
    x, y = torch.rand(5, 1, 3, 3), torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(attribute(lin, x, y, 'saliency'), W[y], atol=1e-6)
    assert torch.allclose(attribute(lin, x, y, 'smoothgrad', nt_samples=7), W[y], atol=1e-6)
    assert torch.allclose(attribute(lin, x, y, 'ig', baseline=0.25), (x - 0.25)*W[y], atol=1e-5)
    model = small_cnn(8)
    xs = torch.rand(3, 1, 8, 8)
    assert torch.equal(attribute(model, xs, None, 'gradcam'), gradcam(model, xs))
    state = torch.random.get_rng_state()
    s1, s2 = attribute(model, xs, 1, 'smoothgrad', seed=3), attribute(model, xs, 1, 'smoothgrad', seed=3)
    assert torch.equal(s1, s2) and torch.equal(torch.random.get_rng_state(), state)
    assert not torch.equal(s1, attribute(model, xs, 1, 'smoothgrad', seed=4))          # the seed draws the noise
    with pytest.raises(ValueError, match='^method:'): attribute(model, xs, 1, 'deeplift')
    with pytest.raises(ValueError, match='^x:'): attribute(model, xs[0], 1)
    with pytest.raises(TypeError, match='^model:'): attention_map(lin, x)
