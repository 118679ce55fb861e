"""AGKD-BML's supplement in robustnb: the class memory of partners (coverage, exact resume, one memory across processes),
the k-NN classifier of supp. Table 6 against scikit-learn, and the AGKD registry at smoke scale."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from robustnb.models import SmallCNN
from robustnb.recipes import AGKDBML
from robustnb.train import fit

TORCHRUN = shutil.which('torchrun', path=str(Path(sys.executable).parent))


def _digits(n=96):
    from robustnb.data import load_dataset
    d = load_dataset('digits')
    return d.images[:n], d.labels[:n]


class Stop(Exception):
    pass


def _agkd_run(ckdir, partners='memory', stop_after=None):
    "Two epochs of AGKD-BML in batches of 8 (most batches lack most classes: the memory supplies the partners)."
    x, y = _digits()
    torch.manual_seed(0)
    teacher, model = SmallCNN(input_size=8), SmallCNN(input_size=8)
    recipe = AGKDBML(teacher, eps=0.2, steps=1, partners=partners)
    def stop(epoch, row, m):
        if epoch == stop_after: raise Stop()
    hist = fit(model, recipe, (x, y), epochs=2, batch_size=8, lr=0.05, seed=0, checkpoint_dir=ckdir, progress=False,
               callbacks=[stop], keep_best=False)
    return model, hist, recipe


def test_memory_partners_cover_every_sample_and_a_killed_run_resumes_exactly(tmp_path):
    model, hist, recipe = _agkd_run(tmp_path/'whole')
    _, batch_only, _ = _agkd_run(tmp_path/'batch', partners='batch')
    assert batch_only['partners'].max() < 0.7                 # batches of 8 over 10 classes: most samples have no partner
    assert hist['partners'].iloc[1] > 0.99                    # epoch 2: the memory has every class
    assert recipe._memory.count.min() > 0
    with pytest.raises(Stop): _agkd_run(tmp_path/'cut', stop_after=1)   # killed after epoch 1's checkpoint
    ck = torch.load(tmp_path/'cut'/'last.pt', weights_only=True)
    assert ck['epoch'] == 1 and ck['recipe']['extra']['memory']['count'].sum() > 0
    resumed, hist2, recipe2 = _agkd_run(tmp_path/'cut')       # resumes from epoch 1 with the stored memory
    for k, v in model.state_dict().items(): assert torch.equal(v, resumed.state_dict()[k]), k
    assert hist['loss'].tolist() == hist2['loss'].tolist()
    assert torch.equal(recipe._memory.images, recipe2._memory.images)


DDP_SCRIPT = textwrap.dedent('''
    import sys, torch
    import torch.distributed as dist
    from robustnb.models import SmallCNN
    from robustnb.recipes import AGKDBML
    from robustnb.train import fit
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 10
    teacher, model = SmallCNN(input_size=8), SmallCNN(input_size=8)
    recipe = AGKDBML(teacher, eps=0.2, steps=1, memory_size=2)
    hist = fit(model, recipe, (x, y), epochs=1, batch_size=4, lr=0.05, seed=0, progress=False)
    torch.save({'memory': recipe._memory.state_dict(), 'partners': hist['partners'].tolist()}, f'{sys.argv[1]}/rank{dist.get_rank()}.pt')
''')


@pytest.mark.skipif(TORCHRUN is None, reason='torchrun is not installed beside this Python')
def test_every_process_holds_the_same_memory(tmp_path):
    (tmp_path/'agkd_ddp.py').write_text(DDP_SCRIPT)
    r = subprocess.run([TORCHRUN, '--standalone', '--nproc_per_node', '2', str(tmp_path/'agkd_ddp.py'), str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (torch.load(tmp_path/f'rank{i}.pt', weights_only=True)['memory'] for i in (0, 1))
    for k in ('images', 'count', 'next'): assert torch.equal(a[k], b[k]), k
    assert a['count'].tolist() == [2]*10                      # both processes' batches went in


# --- the registry and the reproduce engine ---------------------------------------------------------------------------
from robustnb import papers                                                    # noqa: E402
from robustnb.papers import reproduce, resolve                                 # noqa: E402


def test_agkd_rows_resolve_with_their_assumptions_said():
    cfg = resolve('agkd', 'Table 6', 'AGKD-BML | CIFAR-10', 'full')
    assert cfg['status'] == 'ok'
    t = cfg['train']
    assert (t['network'], t['lr'], t['epochs'], t['lr_schedule'], t['batch_size']) == ('wrn-28-10', 0.1, 200, ('piecewise', (100, 150), 0.1), 128)
    assert any('WRN-28-10' in a and 'ours' in a for a in t['assumed'])        # every filled-in value is listed as ours
    assert any('momentum 0.9' in a for a in t['teachers']['teacher']['assumed'])
    tiny = resolve('agkd', 'Table 1', 'AGKD-BML', 'full')['train']
    assert tiny['network'] == 'resnet50' and tiny['epochs'] == 35 and tiny['lr_schedule'] == ('piecewise', (30,), 0.1)
    smoke = resolve('agkd', 'Table 1', 'AGKD-BML', 'smoke')['train']
    assert (smoke['network'], smoke['paper_network'], smoke['teachers']['teacher']['network']) == ('resnet18', 'resnet50', 'resnet18')
    assert resolve('agkd', 'Table 6', 'AGKD-BML | SVHN', 'smoke')['status'] == 'ok'          # torchvision's SVHN, synthetic at smoke
    assert resolve('agkd', 'Table 6', 'AGKD-BML | SVHN', 'quick')['status'] == 'ok'
    t3 = resolve('agkd', 'Table 3', 'Class-relevant / GC-false', 'smoke')
    assert t3['train']['args']['attention'] == 'gradcam-false' and any('PGD-20' in a for a in t3['eval']['assumed'])
    knn = [a for a in resolve('agkd', 'Table 6', 'AT [5] | CIFAR-10', 'smoke')['eval']['attacks'] if a.get('classifier') == 'knn']
    assert len(knn) == 2 and all(a['k'] == 8 for a in knn)                   # capped at the 8 synthetic training images
    assert {a['k'] for a in resolve('agkd', 'Table 6', 'AT [5] | CIFAR-10', 'quick')['eval']['attacks'] if a.get('classifier')} == {50}


def test_knn_columns_classify_the_softmax_models_examples_by_knn(tmp_path):
    from robustnb.evaluate import KNNClassifier
    cfg = resolve('agkd', 'Table 6', 'AT [5] | CIFAR-10', 'smoke')
    torch.manual_seed(0)
    model = papers._network(cfg['train']).eval()
    test, memory = papers._data(cfg['train'], 'test', None), papers._knn_memory(cfg['train'], None)
    out = papers._analysis_accuracy(model, cfg, test, {'k-NN memory': memory}, tmp_path, None)
    x, y = papers._test_batch(cfg, test, cfg['eval']['n'])
    pgd_col = next(a for a in cfg['eval']['attacks'] if a['attack'] == 'pgd' and a.get('classifier') == 'knn')
    torch.manual_seed(cfg['seed']*1_000_003)                                  # robust_accuracy's seed for batch 0
    adv = papers._attack_fn(pgd_col, {})(model, x, y)                         # made against the softmax model
    knn = KNNClassifier(model, memory, k=pgd_col['k'])
    with torch.no_grad():
        assert out[pgd_col['column']] == 100*(knn(adv).argmax(1) == y).float().mean().item()
        assert out['CIFAR-10 / PGD (20) / softmax'] == 100*(model(adv).argmax(1) == y).float().mean().item()
        assert out['CIFAR-10 / clean / k-NN'] == 100*(knn(x).argmax(1) == y).float().mean().item()
        assert out['CIFAR-10 / clean / softmax'] == out['Clean'] == 100*(model(x).argmax(1) == y).float().mean().item()


def test_knn_memory_is_the_training_split_without_augmentation(monkeypatch):
    seen = []
    monkeypatch.setattr(papers, 'load_dataset', lambda *a, **k: seen.append((a, k)) or 'train split')
    full = resolve('agkd', 'Table 6', 'AT [5] | CIFAR-10', 'full')['train']
    assert papers._knn_memory(full, '/data') == 'train split' and seen == [(('cifar10', 'train', '/data'), {})]


def test_timing_and_tsne_entries_at_smoke_scale(tmp_path):
    t4 = reproduce('agkd', 'Table 4', scale='smoke', root=tmp_path, device='cpu', progress=False)
    at = t4[t4.row == 'AT [5]'].set_index('column')['ours']
    assert at['CIFAR-10 / ♯ of steps'] == 2 and at['CIFAR-10 / # of epochs'] == 2     # smoke: 2 steps, 2 epochs
    assert at['CIFAR-10 / seconds / epoch'] > 0 and at['CIFAR-10 / total (hours)'] > 0
    r = papers.run('agkd', 'Fig. 2', 'AGKD-BML', scale='smoke', root=tmp_path, device='cpu', progress=False)
    assert r['status'] == 'ok' and Path(r['results']['figure']).is_file()
    assert r['config']['analysis_args']['adv_classes'] == [5, 6, 7, 8, 9]


def test_bim_step_scaled_with_the_quick_budget():
    "BIM's default step (1/255) is absolute: at quick scale it is scaled with ε, so that its 10 steps can reach the ball's edge."
    from robustnb.papers import resolve
    full, quick = ([a for a in resolve('agkd', 'Table 1', 'AT [5]', s)['eval']['attacks'] if a['attack'] == 'bim'][0] for s in ('full', 'quick'))
    assert full['alpha'] is None                                   # the attack's own default at full scale
    assert quick['alpha'] == pytest.approx(quick['eps']/full['eps']/255)
    assert quick['alpha']*quick['steps'] >= quick['eps']
