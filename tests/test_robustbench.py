"""`load_robustbench_wrn` on a synthetic checkpoint with RobustBench's real key names (robustbench/model_zoo/
architectures/wide_resnet.py, the TRADES layout), checked against a functional forward written from that file's
`BasicBlock`/`WideResNet.forward` (eval-mode BatchNorm), not from robustnb's model."""
import pytest
import torch
import torch.nn.functional as F

from robustnb.models import WideResNet, load_robustbench_wrn


def _bn(prefix, c, g):
    return {f'{prefix}.weight': 1 + 0.1*torch.randn(c, generator=g), f'{prefix}.bias': 0.1*torch.randn(c, generator=g),
            f'{prefix}.running_mean': 0.1*torch.randn(c, generator=g), f'{prefix}.running_var': 0.5 + torch.rand(c, generator=g),
            f'{prefix}.num_batches_tracked': torch.tensor(100)}


def robustbench_state_dict(depth=10, widen=2, classes=10, bias_last=True, prefix='module.', seed=0):
    g = torch.Generator().manual_seed(seed)
    conv = lambda o, i, k: torch.randn(o, i, k, k, generator=g) * (2/(k*k*o))**0.5
    ch, n = [16, 16*widen, 32*widen, 64*widen], (depth - 4)//6
    sd = {'conv1.weight': conv(16, 3, 3)}
    for s in (1, 2, 3):
        for i in range(n):
            cin, cout = (ch[s - 1] if i == 0 else ch[s]), ch[s]
            p = f'block{s}.layer.{i}'
            sd.update(_bn(f'{p}.bn1', cin, g)); sd[f'{p}.conv1.weight'] = conv(cout, cin, 3)
            sd.update(_bn(f'{p}.bn2', cout, g)); sd[f'{p}.conv2.weight'] = conv(cout, cout, 3)
            if cin != cout: sd[f'{p}.convShortcut.weight'] = conv(cout, cin, 1)
    sd.update(_bn('bn1', ch[3], g))
    sd['fc.weight'] = 0.1*torch.randn(classes, ch[3], generator=g)
    if bias_last: sd['fc.bias'] = 0.1*torch.randn(classes, generator=g)
    return {prefix + k: v for k, v in sd.items()}


def robustbench_forward(sd, x, depth=10):
    "WideResNet.forward of RobustBench, functionally: pre-activation blocks, relu(bn1), avg-pool 8, fc."
    sd = {k.removeprefix('module.'): v for k, v in sd.items()}
    bn = lambda t, p: F.batch_norm(t, sd[f'{p}.running_mean'], sd[f'{p}.running_var'], sd[f'{p}.weight'], sd[f'{p}.bias'], False)
    out = F.conv2d(x, sd['conv1.weight'], padding=1)
    for s in (1, 2, 3):
        for i in range((depth - 4)//6):
            p, stride = f'block{s}.layer.{i}', (2 if s > 1 and i == 0 else 1)
            equal = f'{p}.convShortcut.weight' not in sd
            if equal: o = F.relu(bn(out, f'{p}.bn1'))
            else: out = F.relu(bn(out, f'{p}.bn1')); o = out
            o = F.relu(bn(F.conv2d(o, sd[f'{p}.conv1.weight'], stride=stride, padding=1), f'{p}.bn2'))
            o = F.conv2d(o, sd[f'{p}.conv2.weight'], padding=1)
            out = (out if equal else F.conv2d(out, sd[f'{p}.convShortcut.weight'], stride=stride)) + o
    out = F.avg_pool2d(F.relu(bn(out, 'bn1')), 8).flatten(1)
    return F.linear(out, sd['fc.weight'], sd.get('fc.bias'))


@pytest.mark.parametrize('bias_last, wrapper, prefix', [(True, 'state_dict', 'module.'), (False, None, ''), (True, 'model_state_dict', '')])
def test_a_robustbench_checkpoint_computes_what_robustbench_computes(tmp_path, bias_last, wrapper, prefix):
    sd = robustbench_state_dict(bias_last=bias_last, prefix=prefix)
    sd_sub = {**sd, f'{prefix}sub_block1.layer.0.conv1.weight': torch.zeros(32, 16, 3, 3)}   # unused by forward
    torch.save({wrapper: sd_sub} if wrapper else sd_sub, tmp_path/'rb.pt')
    model = load_robustbench_wrn(tmp_path/'rb.pt')
    assert isinstance(model, WideResNet) and model.config['depth'] == 10 and model.config['widen_factor'] == 2
    assert not model.training
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): ours, theirs = model(x), robustbench_forward(sd, x)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4), (ours - theirs).abs().max()
    assert torch.equal(model.layer2[0].shortcut.weight, sd[f'{prefix}block2.layer.0.convShortcut.weight'])


def test_normalization_goes_in_front(tmp_path):
    sd = robustbench_state_dict(prefix='')
    torch.save(sd, tmp_path/'rb.pt')
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    model = load_robustbench_wrn(tmp_path/'rb.pt', mean=mean, std=std)
    x = torch.rand(2, 3, 32, 32)
    z = (x - torch.tensor(mean).view(1, 3, 1, 1))/torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad(): assert torch.allclose(model(x), robustbench_forward(sd, z), atol=1e-5, rtol=1e-4)


def test_what_is_not_a_robustbench_wideresnet_is_refused(tmp_path):
    sd = robustbench_state_dict(prefix='')
    torch.save({**sd, 'block4.layer.0.conv1.weight': torch.zeros(1)}, tmp_path/'extra.pt')
    with pytest.raises(ValueError, match='is not one of a RobustBench WideResNet'): load_robustbench_wrn(tmp_path/'extra.pt')
    torch.save({k: v for k, v in sd.items() if k != 'block2.layer.0.convShortcut.weight'}, tmp_path/'missing.pt')
    with pytest.raises(ValueError, match='does not fit a WRN-10-2'): load_robustbench_wrn(tmp_path/'missing.pt')
    torch.save({**sd, 'fc.weight': torch.zeros(10, 7)}, tmp_path/'shape.pt')
    with pytest.raises(ValueError, match='fc.weight has shape'): load_robustbench_wrn(tmp_path/'shape.pt')
    (tmp_path/'text.pt').write_text('not a checkpoint')
    with pytest.raises(ValueError, match='not a weights-only PyTorch checkpoint'): load_robustbench_wrn(tmp_path/'text.pt')
    with pytest.raises(FileNotFoundError, match='path: no checkpoint file'): load_robustbench_wrn(tmp_path/'none.pt')
