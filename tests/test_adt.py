"""ADT in the reproduce engine: the teacher ensemble of its Tables 1-4 (members trained apart, combined by `Ensemble`),
AODT's ResNet-152 teacher and its L3 loss (Table 5), at every scale."""
import torch

from robustnb import papers
from robustnb.models import Ensemble, InceptionResNetV2, WideResNet
from robustnb.papers import ENSEMBLE_SEED_STRIDE, resolve


def test_ensemble_teacher_spec_at_each_scale():
    row = ('adt', 'Table 2', 'ADT | CIFAR-10')
    full, smoke, quick = (resolve(*row, scale=s) for s in ('full', 'smoke', 'quick'))
    for cfg in (full, smoke, quick):
        assert cfg['status'] == 'ok'
        assert cfg['train']['teacher_ensemble'] == {'members': ['teacher', 'teacher_1'], 'combine': 'logits'}
    t = full['train']['teachers']
    assert (t['teacher']['network'], t['teacher_1']['network']) == ('wrn-34-10', 'inception-resnet-v2')
    assert all(m['method'] == 'standard' and m['epochs'] == 100 and m['lr'] == 0.1 for m in t.values())
    assert any('WRN-34-10' in a for a in t['teacher']['assumed'])        # the unstated choices are said
    # member i trains with seed + 1000*i, so quick members (both SmallCNNs on the digits) differ
    q = quick['train']['teachers']
    assert (q['teacher']['network'], q['teacher_1']['network']) == ('smallcnn', 'smallcnn')
    assert (q['teacher']['seed'], q['teacher_1']['seed']) == (0, ENSEMBLE_SEED_STRIDE)
    assert resolve(*row, scale='quick', seed=1)['train']['teachers']['teacher_1']['seed'] == 1 + ENSEMBLE_SEED_STRIDE
    s = smoke['train']['teachers']
    assert s['teacher_1']['network_args']['width'] == papers.SMOKE['inception_width']
    assert s['teacher']['network'] == 'wrn-34-1'


def test_ensemble_teacher_is_built_from_its_members(tmp_path):
    "A smoke run trains both members, and the recipe's teacher is their Ensemble (mean of logits)."
    cfg = resolve('adt', 'Table 2', 'ADT | CIFAR-10', scale='smoke')
    train = cfg['train']
    members = {k: papers.trained_model(t, tmp_path, device='cpu', progress=False)[0] for k, t in train['teachers'].items()}
    assert isinstance(members['teacher'], WideResNet) and isinstance(members['teacher_1'], InceptionResNetV2)
    recipe = papers._recipe(train, members, None)
    teacher = recipe.modules['teacher']
    assert isinstance(teacher, Ensemble) and list(teacher.members) == [members['teacher'], members['teacher_1']]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), (members['teacher'](x) + members['teacher_1'](x))/2)
    r = papers.run('adt', 'Table 2', 'ADT | CIFAR-10', scale='smoke', root=tmp_path, device='cpu', progress=False)
    assert r['status'] == 'ok' and {'Acc_n', 'Acc_r'} <= set(r['results'])


def test_aodt_rows_runnable_at_full_scale():
    "AODT's CIFAR-100 teacher (ResNet-152) and Table 5's KD loss (T, β) resolve; smoke swaps ResNet-152 for ResNet-18."
    for row in [('adt', 'Table 2', 'AODT | CIFAR-100'), ('adt', 'Table 5', 'KD(L3)')]:
        assert resolve(*row, scale='full')['status'] == 'ok'
    full = resolve('adt', 'Table 2', 'AODT | CIFAR-100', scale='full')['train']['teachers']['teacher']
    smoke = resolve('adt', 'Table 2', 'AODT | CIFAR-100', scale='smoke')['train']['teachers']['teacher']
    assert (full['network'], smoke['network'], smoke['paper_network']) == ('resnet152', 'resnet18', 'resnet152')


def test_quick_adt_clips_and_full_does_not():
    "At quick scale ADT clips its gradient norm at 1 (unclipped MSE to a fixed teacher diverges on the digits); full is the paper's."
    quick, full = (resolve('adt', 'Table 2', 'ADT | CIFAR-10', scale=s)['train'] for s in ('quick', 'full'))
    assert quick['recipe']['fit_defaults'] == {'max_grad_norm': 1.0}
    assert 'max_grad_norm' not in full['args'] and full['recipe']['max_grad_norm'] is None
    assert 'max_grad_norm' not in resolve('adt', 'Table 2', 'AODT | CIFAR-10', scale='quick')['train']['args']


def test_quick_caps_the_1000_step_attacks():
    "Table 1's PGD-1000/CW-1000 keep 1000 steps at full scale; at quick scale they run QUICK['max_eval_steps'], said in `assumed`."
    row = ('adt', 'Table 1', 'TRADES(α=6)+Q | CW^1000(PGD) | CIFAR-10')
    full, quick = (resolve(*row, scale=s)['eval'] for s in ('full', 'quick'))
    assert [a['steps'] for a in full['attacks'] if a['attack'] != 'clean'] == [1000]
    assert [a['steps'] for a in quick['attacks'] if a['attack'] != 'clean'] == [papers.QUICK['max_eval_steps']]
    assert any('capped' in s for s in quick['assumed'])
    short = resolve('adt', 'Table 2', 'AODT | CIFAR-10', scale='quick')['eval']      # 20 steps: untouched
    assert [a['steps'] for a in short['attacks'] if a['attack'] != 'clean'] == [20]
