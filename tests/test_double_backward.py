"""robustnb.double_backward against PyTorch's own autograd (the peer oracle) and float64 finite differences: first and
second derivatives of every path (input, weight, bias; outer gradients of each first-order output), on layers and on
whole models in train and eval mode."""
import contextlib
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from robustnb.double_backward import fast_double_backward
from robustnb.models import PreActResNet20, SmallCNN

DT = torch.float64


def forward(f, fast):
    with fast_double_backward() if fast else contextlib.nullcontext():
        return f()


def second_order_grads(f, inputs, fast, seed=0):
    """Gradients w.r.t. every input of a scalar built from ALL first-order gradients of <f(inputs), r> (random r, random
    weights on each gradient): exercises every outer-gradient path of the hand-written second derivatives."""
    gen = torch.Generator().manual_seed(seed)
    out = forward(lambda: f(*inputs), fast)
    r = torch.randn(out.shape, dtype=out.dtype, generator=gen)
    firsts = torch.autograd.grad((out*r).sum(), inputs, create_graph=True)
    scalar = sum((g*torch.randn(g.shape, dtype=g.dtype, generator=gen)).sum() + g.pow(2).sum() for g in firsts)
    return [t.detach() for t in (out, *firsts)], torch.autograd.grad(scalar, inputs, allow_unused=True, materialize_grads=True)


def assert_same(a, b, rtol=1e-10, atol=1e-12):
    "Each tensor within rtol of its own largest entry, or atol (for gradients that are zero in exact arithmetic)."
    for u, v in zip(a, b):
        assert u.shape == v.shape
        err, scale = (u - v).abs().max().item(), v.abs().max().item()
        assert err <= rtol*scale + atol, (err, scale)


def tracked(*shape, seed=0):
    return torch.randn(*shape, dtype=DT, generator=torch.Generator().manual_seed(seed)).requires_grad_()


@pytest.mark.parametrize('conv,x_shape,w_shape,kw', [
    (F.conv2d, (3, 4, 9, 9), (6, 4, 3, 3), dict(padding=1)),
    (F.conv2d, (2, 4, 9, 9), (6, 2, 3, 3), dict(stride=2, padding=2, dilation=2, groups=2)),
    (F.conv2d, (2, 3, 8, 7), (5, 3, 1, 1), dict(stride=(2, 1))),
    (F.conv1d, (2, 3, 11), (4, 3, 5), dict(stride=3, padding=2)),
    (F.conv3d, (2, 2, 5, 4, 4), (3, 2, 2, 3, 2), dict(padding=(1, 0, 1))),
])
@pytest.mark.parametrize('bias', [True, False])
def test_conv_matches_pytorch(conv, x_shape, w_shape, kw, bias):
    ins = [tracked(*x_shape, seed=1), tracked(*w_shape, seed=2)] + ([tracked(w_shape[0], seed=3)] if bias else [])
    f = lambda x, w, *b: conv(x, w, b[0] if b else None, **kw)
    (ref_first, ref), (first, ours) = second_order_grads(f, ins, False), second_order_grads(f, ins, True)
    assert_same(first, ref_first); assert_same(ours, ref)


@pytest.mark.parametrize('shape', [(5, 3, 4, 4), (7, 4), (4, 3, 6), (3, 2, 2, 3, 2)])
@pytest.mark.parametrize('affine', [True, False])
def test_batch_norm_matches_pytorch(shape, affine):
    c = shape[1]
    ins = [tracked(*shape, seed=1)] + ([tracked(c, seed=2), tracked(c, seed=3)] if affine else [])
    def f(x, *wb):
        rm, rv = torch.zeros(c, dtype=DT), torch.ones(c, dtype=DT)
        return F.batch_norm(x, rm, rv, *wb, training=True, momentum=0.3, eps=1e-3)
    (ref_first, ref), (first, ours) = second_order_grads(f, ins, False), second_order_grads(f, ins, True)
    assert_same(first, ref_first); assert_same(ours, ref)


def test_batch_norm_pass_keeps_no_copy_of_its_output():
    "The differentiable pass through batch norm keeps g and x, not its own output gₓ (the backward rewrites gₓ in g and x)."
    x = tracked(6, 3, 4, 4)
    with fast_double_backward(): y = F.batch_norm(x, None, None, training=True)
    (gx,) = torch.autograd.grad((y*tracked(*y.shape, seed=1).detach()).sum(), x, create_graph=True)
    saved = [t for t in gx.grad_fn.saved_tensors if t is not None]
    assert sum(t.shape == x.shape for t in saved) == 2                 # g and x
    assert not any(t.data_ptr() == gx.data_ptr() for t in saved)


def test_relu_matches_pytorch():
    x = tracked(4, 7)
    (ref_first, ref), (first, ours) = second_order_grads(lambda x: F.relu(x)**2, [x], False), second_order_grads(lambda x: F.relu(x)**2, [x], True)
    assert_same(first, ref_first); assert_same(ours, ref, rtol=1e-12)


def test_finite_differences():
    "The second derivative of each node against float64 central differences of its first derivative (gradgradcheck)."
    def conv(x, w, b):
        with fast_double_backward(): return F.conv2d(x, w, b, stride=2, padding=1)
    def bn(x, w, b):
        with fast_double_backward(): return F.batch_norm(x, None, None, w, b, training=True)
    assert torch.autograd.gradgradcheck(conv, (tracked(2, 2, 5, 5), tracked(3, 2, 3, 3, seed=1), tracked(3, seed=2)))
    assert torch.autograd.gradgradcheck(bn, (tracked(4, 3, 3, 3), tracked(3, seed=1), tracked(3, seed=2)))


def models():
    torch.manual_seed(0)
    bn_net = PreActResNet20(input_size=16).to(DT)
    cnn = SmallCNN(in_channels=1, input_size=8).to(DT)
    inplace = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten(),
                            nn.Linear(4*64, 10)).to(DT)
    return [(bn_net, (6, 3, 16, 16)), (cnn, (6, 1, 8, 8)), (inplace, (6, 1, 8, 8))]


@pytest.mark.parametrize('which', [0, 1, 2])
@pytest.mark.parametrize('train', [True, False])
def test_input_gradient_penalty_on_models(which, train):
    "CE + ‖∇ₓCE‖² on whole models: logits, J, every parameter gradient and the running statistics as PyTorch's."
    model, shape = models()[which]
    model.train(train)
    twin = copy.deepcopy(model)
    x, y = torch.rand(*shape, dtype=DT, generator=torch.Generator().manual_seed(4)), torch.arange(shape[0]) % 10
    def run(m, fast):
        xg = x.clone().requires_grad_()
        logits = forward(lambda: m(xg), fast)
        (j,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction='sum'), xg, create_graph=True)
        m.zero_grad(set_to_none=True)
        (F.cross_entropy(logits, y) + 3*j.pow(2).sum()).backward()
        return [logits.detach(), j.detach()] + [p.grad for p in m.parameters()]
    assert_same(run(twin, True), run(model, False))
    for a, b in zip(model.buffers(), twin.buffers()): assert torch.equal(a, b)


def test_hessian_vector_product_on_model():
    model, shape = models()[0]
    model.eval()
    x, y = torch.rand(*shape, dtype=DT, generator=torch.Generator().manual_seed(4)), torch.arange(shape[0]) % 10
    params = list(model.parameters())
    v = [torch.randn(p.shape, dtype=DT, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(params)]
    def hv(fast):
        loss = forward(lambda: F.cross_entropy(model(x), y), fast)
        g = torch.autograd.grad(loss, params, create_graph=True)
        return torch.autograd.grad(g, params, v)
    assert_same(hv(True), hv(False))


class ConvBackwardMasks(TorchDispatchMode):
    def __init__(self): super().__init__(); self.masks = []
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution_backward.default: self.masks.append(tuple(args[-1]))
        return func(*args, **(kwargs or {}))


def test_first_order_pass_skips_weight_gradients():
    "The engine is asked: J = ∇ₓℓ with create_graph runs input-gradient convolutions only; a full backward runs both."
    model = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), nn.ReLU(), nn.Conv2d(3, 2, 3, bias=True), nn.Flatten(), nn.Linear(2*16, 4))
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    with fast_double_backward(): out = model(x).sum()
    with ConvBackwardMasks() as rec: torch.autograd.grad(out, x, create_graph=True)
    assert rec.masks == [(True, False, False)]*2
    with fast_double_backward(): out = model(x).sum()
    with ConvBackwardMasks() as rec: out.backward()
    assert sorted(rec.masks) == [(True, True, False), (True, True, True)]    # x requires grad; the first conv has no bias
    assert model[0].weight.grad is not None and model[2].bias.grad is not None


def test_third_derivative_raises_and_no_graph_is_fine():
    x = tracked(3, 4)
    with fast_double_backward(): y = F.batch_norm(x, None, None, training=True)
    (g,) = torch.autograd.grad(y.pow(3).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match='third derivative'): torch.autograd.grad(g.pow(2).sum(), x, create_graph=True)
    a, w = torch.rand(1, 1, 4, 4), torch.rand(2, 1, 3, 3, requires_grad=True)
    with torch.no_grad(), fast_double_backward(): out = F.relu(F.conv2d(a, w))
    assert out.grad_fn is None and torch.equal(out, F.relu(F.conv2d(a, w)).detach())
