"""Mixed precision (fit(amp='bf16'|'fp16'), autocast on the model's device): on a CPU, bf16 PGD-AT on the digits trains to
the accuracy of float32, and attacks run under autocast keep the perturbation and its projection in float32, so the
adversarial examples lie inside the eps-ball and [0, 1] exactly."""
import pytest
import torch

from robustnb.attacks import bim, fgsm, mim, pgd
from robustnb.data import load_dataset
from robustnb.models import create_model
from robustnb.recipes import PGDAT, Standard
from robustnb.train import accuracy, fit, set_seed


@pytest.mark.parametrize('attack', [pgd, fgsm, bim, mim])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_attacks_under_autocast_stay_in_the_ball_exactly(attack, dtype):
    te = load_dataset('digits', 'test')
    x, y, eps = te.images[:64], te.labels[:64], 0.2
    model = create_model('smallcnn', dataset='digits').eval()
    with torch.autocast('cpu', dtype=dtype):
        adv = attack(model, x, y, eps)
    assert adv.dtype == torch.float32                     # the perturbation is never rounded to 16 bits
    assert bool(((adv - x).abs() <= eps).all()) and adv.min() >= 0 and adv.max() <= 1   # exactly: no tolerance
    assert bool((adv != x).any())


def test_bf16_pgd_at_reaches_the_accuracy_of_float32():
    "Within 2 points of float32, clean and under PGD-20 (both evaluated in float32)."
    tr, te = load_dataset('digits'), load_dataset('digits', 'test')
    pgd20 = lambda m, x, y: pgd(m, x, y, 0.2, 0.02, 20, seed=0)
    acc = {}
    for amp in (None, 'bf16'):
        set_seed(0); model = create_model('smallcnn', dataset='digits')
        fit(model, PGDAT(eps=0.2, steps=5), tr, epochs=8, amp=amp, seed=0, progress=False)
        acc[amp] = 100*accuracy(model, te), 100*accuracy(model, te, attack=pgd20)
    assert abs(acc['bf16'][0] - acc[None][0]) <= 2, acc
    assert abs(acc['bf16'][1] - acc[None][1]) <= 2, acc


def test_fp16_with_its_gradient_scaler_trains_and_resumes(tmp_path):
    "fp16 needs the GradScaler (its range is small); its state is in the checkpoint, so a resumed run is exact."
    tr = load_dataset('digits')
    data = (tr.images[:128], tr.labels[:128])             # fp16 on a CPU is emulated (slow): a small run
    mlp = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    def run(epochs, ckdir):
        set_seed(0); model = mlp()
        h = fit(model, Standard(), data, epochs=epochs, amp='fp16', seed=0, progress=False, checkpoint_dir=ckdir,
                lr_schedule='constant')
        return model, h
    whole, h = run(2, tmp_path/'a')
    assert h.loss.iloc[-1] < h.loss.iloc[0]
    class Stop(Exception): pass
    def stop_after_first(epoch, row, model):
        if epoch == 1: raise Stop()
    with pytest.raises(Stop):                             # interrupted after epoch 1
        set_seed(0); m = mlp()
        fit(m, Standard(), data, epochs=2, amp='fp16', seed=0, progress=False, checkpoint_dir=tmp_path/'b',
            lr_schedule='constant', callbacks=[stop_after_first])
    resumed, _ = run(2, tmp_path/'b')
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))


def test_amp_is_checked():
    with pytest.raises(ValueError, match='^amp:'):
        fit(create_model('smallcnn', dataset='digits'), PGDAT(eps=0.2), load_dataset('digits'), epochs=1, amp='fp8', progress=False)
