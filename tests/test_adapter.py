"""A plain torchvision ResNet-18, through `as_classifier`, goes wherever a robustnb classifier goes: Grad-CAM without
`layer=`, AGKD-BML's attention maps, the t-SNE of features, one epoch of AGKD-BML as student and as teacher, and a
saved-and-reloaded model file."""
import torch
import torch.nn.functional as F
import torchvision

from robustnb.landscape import embed_features
from robustnb.models import as_classifier, load_model, save_model
from robustnb.recipes import AGKDBML
from robustnb.saliency import attention_map, gradcam
from robustnb.train import fit


def _resnet18(seed):
    torch.manual_seed(seed)
    return as_classifier(torchvision.models.resnet18(num_classes=10), builder='torchvision.models.resnet18',
                         builder_kwargs={'num_classes': 10}, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _data(n=16, size=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 10


def test_grad_cam_and_attention_maps_match_the_last_block():
    model, (x, y) = _resnet18(0).eval(), _data(4)
    cam = gradcam(model, x, y)
    assert cam.shape == (4, 1, 32, 32) and float(cam.min()) >= 0 and float(cam.max()) <= 1
    # Grad-CAM by hand on layer4: ReLU of the gradient-weighted channel sum, min-max normalized per sample
    maps = model.feature_maps(x).detach().requires_grad_()
    score = model.fc(torch.flatten(F.adaptive_avg_pool2d(maps, 1), 1)).gather(1, y[:, None]).sum()
    (g,) = torch.autograd.grad(score, maps)
    raw = F.relu((g.mean((2, 3), keepdim=True) * maps).sum(1, keepdim=True)).detach()
    lo, hi = raw.amin((2, 3), keepdim=True), raw.amax((2, 3), keepdim=True)
    by_hand = F.interpolate((raw - lo)/(hi - lo + 1e-8), size=(32, 32), mode='bilinear', align_corners=False)
    assert torch.allclose(cam, by_hand, atol=1e-4)
    att = attention_map(model, x)
    assert att.shape == (4, 1, 32, 32)
    s = model.feature_maps(x).sum(1, keepdim=True)
    lo, hi = s.amin((2, 3), keepdim=True), s.amax((2, 3), keepdim=True)
    own = F.interpolate((s - lo)/(hi - lo + 1e-8), size=(32, 32), mode='bilinear', align_corners=False)
    assert torch.allclose(att, own, atol=1e-5)


def test_tsne_of_the_features():
    model, (x, _) = _resnet18(0).eval(), _data(16)
    clean, adv = embed_features(model, x, x.flip(0), perplexity=5.0)
    assert clean.shape == (16, 2) and adv.shape == (16, 2) and torch.isfinite(torch.as_tensor(clean)).all()


def test_one_agkd_bml_epoch_with_resnet18_student_and_teacher(tmp_path):
    student, teacher = _resnet18(0), _resnet18(1).eval()
    x, y = _data(16, size=64)          # 2x2 maps in layer4: train-mode BatchNorm on AGKD-BML's partner subsets
    before = {k: v.clone() for k, v in student.state_dict().items()}
    hist = fit(student, AGKDBML(teacher, eps=8/255, alpha=2/255, steps=2), (x, y), epochs=1, batch_size=8,
               lr=0.01, progress=False, device='cpu')
    assert len(hist) == 1 and all(torch.isfinite(torch.tensor(v)) for k, v in hist.iloc[0].items() if k != 'epoch')
    assert hist.loc[0, 'attention'] > 0 and 'triplet' in hist     # the teacher's maps, and partners for the metric term
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())   # it trained
    save_model(student, tmp_path/'student.pt')
    back = load_model(tmp_path/'student.pt')
    student.eval()
    assert torch.equal(back(x), student(x))
