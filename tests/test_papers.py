"""The reproduce engine: the registry against the papers' text, the smoke scale of every entry, and run folders that are
reused, re-evaluated or resumed exactly as the configuration says."""
import copy
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustnb import papers
from robustnb.papers import (PAPERS, SCALES, check_registry, fingerprint, job_folder, jobs, listing, papers_dir, registry,
                             reproduce, resolve, run)

EXE = shutil.which('robustnb', path=str(Path(sys.executable).parent)) or shutil.which('robustnb')
# a cheap quick-scale row: IGAM Table 1's standard model, evaluated with FGSM and PGD-5/10/20 on the 540 digits
ROW = ('igam', 'Table 1', 'Standard')


@pytest.mark.skipif(papers_dir() is None, reason='the papers are not beside the repository (../shared/papers)')
@pytest.mark.parametrize('paper', [p for p in PAPERS if p != 'benchmark'])
def test_transcribed_numbers_occur_in_the_paper(paper):
    table = check_registry(paper)                       # raises when a transcribed number is not in the paper's text
    assert table.attrs['checked_against_text']
    assert table['numbers'].sum() > 50


def test_every_registered_entry_is_listed():
    table = listing('all')
    for p in PAPERS:
        items = [e['item'] for e in registry(p)['entries']]
        assert len(items) == len(set(items)), p
        assert list(table.loc[table.paper == p, 'item']) == items
    # the numbered tables of each paper are all there (the papers' own numbering)
    have = lambda p: {e['item'] for e in registry(p)['entries']}
    assert {f'Table {i}' for i in range(1, 5)} <= have('sat') and {f'Fig. {i}' for i in range(1, 9)} <= have('sat')
    assert {f'Table {i}' for i in range(1, 15)} <= have('sarkar')
    assert {f'Table {i}' for i in range(1, 6)} <= have('igam')
    assert {f'Table {i}' for i in range(1, 6)} <= have('adt')
    assert {f'Table {i}' for i in range(1, 7)} <= have('agkd')


def test_rows_without_a_robustnb_method_keep_the_paper_numbers():
    cfg = resolve('sat', 'Table 2', 'DAT (MNIST, eps=0.3)', 'quick')
    assert cfg['status'] == 'not implemented in robustnb' and cfg['paper_numbers']['Clean']


def test_scales_keep_the_method_and_change_the_budget():
    full, smoke, quick = (resolve('sat', 'Table 2', 'P-SAT (MNIST, eps=0.3)', s) for s in ('full', 'smoke', 'quick'))
    assert full['train']['epochs'] == 70 and full['train']['lr_schedule'] == ('piecewise', (40, 50, 60), 0.1)
    assert full['train']['args']['lambda_schedule'] == ('step', 0.0, 1.0, (30, 45, 60))
    # smoke: the full configuration, 2 epochs, every epoch-valued setting rescaled by 2/70
    assert smoke['train']['network'] == full['train']['network'] and smoke['train']['shape'] == [1, 28, 28]
    assert smoke['train']['epochs'] == 2
    assert smoke['train']['args']['lambda_schedule'][3] == pytest.approx(tuple(m*2/70 for m in (30, 45, 60)))
    # quick: digits, budgets scaled by 0.2/0.3, 10 training steps travelling as far as the paper's 40
    assert quick['train']['dataset'] == 'digits' and quick['train']['epochs'] == 15
    assert quick['train']['args']['eps'] == pytest.approx(0.3*0.2/0.3)
    assert quick['train']['args']['steps']*quick['train']['args']['alpha'] == pytest.approx(40*0.02*0.2/0.3)
    assert fingerprint(full) != fingerprint(quick) and fingerprint(full) == fingerprint(resolve('sat', 'Table 2', 'P-SAT (MNIST, eps=0.3)', 'full'))


# Tests sharing a module fixture stay in one pytest-xdist worker (`-n 2 --dist loadgroup`), so it is built once.
SMOKE, QUICK = pytest.mark.xdist_group('smoke-all'), pytest.mark.xdist_group('quick-reference')


@pytest.fixture(scope='module')
def smoke_root(tmp_path_factory):
    """Every entry of the five papers and the benchmark at smoke scale, once for the module: (its root, its table).
    Later tests that run smoke entries use this root, so each finished job is read back instead of trained again."""
    root = tmp_path_factory.mktemp('smoke-all')
    return root, reproduce('all', scale='smoke', root=root, device='cpu', progress=False)


@SMOKE
def test_reproduce_all_at_smoke_scale(smoke_root):
    "The acceptance run: every entry of the five papers and the benchmark at smoke scale, on the CPU."
    table = smoke_root[1]
    ok = table['status'].str.startswith('ok')
    assert ok.sum() > 100
    assert not table['status'].str.startswith('failed').any(), table.loc[table['status'].str.startswith('failed'), 'status']
    # every row that is not run says why, in words
    assert table.loc[~ok, 'status'].str.len().min() > 10
    ran = table[table['status'] == 'ok']
    assert ran['ours'].notna().sum() > 50


JOB = 'igam/table-1/standard/0'                          # ROW's job id


@pytest.fixture(scope='module')
def quick_reference(tmp_path_factory):
    "ROW trained and evaluated once at quick scale by the command line: (its root, its --json output)."
    if EXE is None: pytest.skip('the robustnb console script is not installed')
    root = tmp_path_factory.mktemp('reference')
    out = subprocess.run([EXE, 'reproduce', '--job', JOB, '--root', str(root), '--json'], capture_output=True, text=True,
                         check=True).stdout
    return root, out


@QUICK
def test_quick_run_folder_reuse_rerun_and_stale(tmp_path, monkeypatch, quick_reference):
    shutil.copytree(quick_reference[0], tmp_path, dirs_exist_ok=True)
    res = run(*ROW, scale='quick', root=tmp_path, progress=False)
    assert res['reused']                                  # the command line's run, found by its fingerprint
    folder = Path(res['folder'])
    assert folder == job_folder(tmp_path, res['config'])  # where it lies now, not where it was written
    for name in ('config.json', 'history.csv', 'model.pt', 'results.json', 'results.csv'):
        assert (folder/name).exists(), name
    cfg = json.loads((folder/'config.json').read_text())
    assert cfg['fingerprint'] == res['fingerprint'] and cfg['versions']['torch'] and cfg['seed'] == 0
    assert set(res['results']) >= {'Clean', 'FGSM', 'PGD5', 'PGD10', 'PGD20'} and res['results']['Clean'] > 90
    def no_work(*args, **kwargs): raise AssertionError('a finished run was trained or evaluated again')
    with monkeypatch.context() as m:                     # a rerun reads results.json: no training, no evaluation
        m.setattr(papers, 'trained_model', no_work); m.setattr(papers, 'ANALYSES', {})
        again = run(*ROW, scale='quick', root=tmp_path, progress=False)
    assert again['reused'] and again['results'] == res['results']
    # one evaluation hyperparameter changes: the model is reused, the job re-evaluated, the old folder kept aside
    reg = copy.deepcopy(registry('igam'))
    reg['evals']['fgsm_pgd_5_10_20']['attacks'][3]['steps'] = 30
    monkeypatch.setattr(papers, 'registry', lambda p: reg if p == 'igam' else registry(p))
    models = sorted((tmp_path/'quick'/'models').iterdir())
    changed = run(*ROW, scale='quick', root=tmp_path, progress=False)
    assert not changed['reused'] and changed['fingerprint'] != res['fingerprint']
    assert sorted((tmp_path/'quick'/'models').iterdir()) == models          # nothing retrained
    assert changed['results']['Clean'] == res['results']['Clean']
    assert list(folder.parent.glob('seed0.stale-*'))


@QUICK
def test_killed_run_resumes_to_the_same_numbers(tmp_path, quick_reference):
    job, ref = JOB, quick_reference[1]
    proc = subprocess.Popen([EXE, 'reproduce', '--job', job, '--root', str(tmp_path/'cut')], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = None
    while proc.poll() is None:                           # kill it as soon as the first epoch is checkpointed
        ckpt = next((tmp_path/'cut').glob('quick/models/*/ckpt/last.pt'), None)
        if ckpt is not None: proc.send_signal(signal.SIGKILL); break
        time.sleep(0.05)
    proc.wait()
    resumed = subprocess.run([EXE, 'reproduce', '--job', job, '--root', str(tmp_path/'cut'), '--json'], capture_output=True,
                             text=True, check=True).stdout
    strip = lambda out: [{k: v for k, v in r.items() if k != 'status'} for r in json.loads(out)]
    assert strip(resumed) == strip(ref)


@pytest.mark.skipif(EXE is None, reason='the robustnb console script is not installed')
def test_command_line(tmp_path):
    out = subprocess.run([EXE, 'reproduce', '--list'], capture_output=True, text=True, check=True).stdout
    assert 'Table 2' in out and 'sarkar' in out and 'benchmark' in out
    listed = json.loads(subprocess.run([EXE, 'reproduce', 'sat', '--list', '--json', '--scale', 'full'], capture_output=True,
                                       text=True, check=True).stdout)
    assert {j['id'] for j in listed} == {j['id'] for j in jobs('sat', scale='full')} and all(j['scale'] == 'full' for j in listed)
    r = subprocess.run([EXE, 'reproduce', '--scale', 'huge'], capture_output=True, text=True)
    assert r.returncode == 2 and '--scale' in r.stderr and 'Traceback' not in r.stderr
    bad = [['reproduce', 'nope'], ['reproduce', 'sat', '--item', 'Table 99'], ['reproduce', '--job', 'sat/table-2/at/x'],
           ['reproduce', '--job', 'sat/table-2/at-mnist-eps-0.3/0', '--scale', 'full', '--device', 'cpu', '--root', str(tmp_path)],
           ['reproduce', '--job', 'sat/table-2/at-mnist-eps-0.3/0', '--scale', 'full', '--device', 'cpu', '--force',
            '--root', str(tmp_path), '--data-root', str(tmp_path/'no-data')]]
    for args in bad:
        r = subprocess.run([EXE, *args], capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert 'download=True' in r.stderr                   # a missing dataset says how to get it


def test_paper_names_for_clean_accuracy_and_unstated_budgets():
    "A registry's own clean column ('Nat.') is filled; an attack whose ε the paper omits gets the dataset's, said in `assumed`."
    ev = resolve('sarkar', 'Table 13', 'Curr', 'quick')['eval']
    assert ev['attacks'][0] == {'column': 'Nat.', 'attack': 'clean'} and 'assumed' not in ev
    full = resolve('agkd', 'Table 5', 'AGKD-BML (fixed ε = 4)', 'quick')['eval']
    pgd_col = next(a for a in full['attacks'] if a['attack'] == 'pgd')
    assert pgd_col['eps'] == pytest.approx(0.2)                     # 8/255 on CIFAR-10, scaled to the digits' 0.2
    assert any(s.startswith(pgd_col['column']) and 'not stated' in s for s in full['assumed'])


@SMOKE
def test_a_broken_job_is_a_failed_row_not_a_lost_run(smoke_root, monkeypatch):
    tmp_path = smoke_root[0]                                        # the other rows are read back, not trained again
    def broken(paper, item, row, *args, **kwargs):
        if row == 'Standard': raise TypeError('pgd() missing 1 required positional argument')
        return real(paper, item, row, *args, **kwargs)
    real = papers.run
    monkeypatch.setattr(papers, 'run', broken)
    table = reproduce('igam', 'Table 1', scale='smoke', root=tmp_path, device='cpu', progress=False)
    status = table.groupby('row')['status'].first()
    assert status['Standard'] == 'failed: TypeError: pgd() missing 1 required positional argument'
    assert status['PGD7-trained'].startswith('ok')                  # the other rows still ran


def test_a_full_reproduction_off_a_gpu_is_refused_before_any_job(tmp_path):
    with pytest.raises(RuntimeError, match='device: a full-scale run on cpu'):
        reproduce('agkd', scale='full', device='cpu', root=tmp_path, progress=False)   # even with no runnable row
    assert not any(tmp_path.iterdir())


def test_a_networks_construction_is_part_of_its_run(monkeypatch):
    "Normalization and SmallCNN's layout are in a full/smoke run's config, so a changed default never reuses a stale run."
    from robustnb.models import SmallCNN
    row = ('sat', 'Table 2', 'AT (MNIST, eps=0.3)')
    cfg = resolve(*row, scale='smoke')
    assert cfg['train']['network_args'] == {'mean': [0.0], 'std': [1.0], 'layout': 'sat'}
    model = papers._network(cfg['train'])
    assert isinstance(model, SmallCNN) and model.feature_dim == 128*4*4 and model.config['layout'] == 'sat'
    assert 'network_args' not in resolve(*row, scale='quick')['train']     # 8x8 digits: one layout, no normalization change
    # another default gives another configuration, hence another fingerprint and run folder
    monkeypatch.setattr(papers, '_network_args', lambda train: {'mean': [0.1307], 'std': [0.3081], 'layout': 'cleverhans'})
    other = resolve(*row, scale='smoke')
    assert fingerprint(other) != fingerprint(cfg)
    assert papers._model_folder(other['train'], 'runs') != papers._model_folder(cfg['train'], 'runs')   # no trained model reused
    assert papers._network(other['train']).feature_dim == 128


def test_sarkar_and_igam_rows_resolve_as_the_papers_say():
    "Sarkar: §5's LR decay at full scale and the digits preset's at quick; a phase-1 model is phase 1 alone; one fixed k as long as the curriculum. IGAM: a teacher of another task learns the digits 0-4 at quick scale."
    from robustnb.data import load_dataset
    full, quick = (resolve('sarkar', 'Table 13', 'Curr', s)['train'] for s in ('full', 'quick'))
    assert full['recipe']['lr_decay'] == [[1.0, 0.01], [0.01, 0.001]] and quick['recipe']['lr_decay'] == [[1.0, 0.01], [0.1, 0.01]]
    assert full['recipe']['phase2_target'] == quick['recipe']['phase2_target'] == 'sign_consistent'
    first = resolve('sarkar', 'Table 11', '1st', 'full')
    assert first['status'] == 'ok' and first['train']['epochs'] == first['train']['args']['phase1_epochs'] == 100
    assert resolve('sarkar', 'Table 13', 'Direct', 'full')['train']['epochs'] == full['epochs'] == 190
    rows = (('Fig. 2', 'OURS CIFAR-10, gamma=20'), ('Fig. 3', 'OURS CIFAR-10'), ('Fig. 5', 'OURS CIFAR-10, gamma=20'), ('Table 13', 'Curr'))
    assert len({fingerprint(resolve('sarkar', i, r, 'quick')['train']) for i, r in rows}) == 1     # one run serves all four
    teacher = resolve('igam', 'Table 1', 'IGAM-MNIST', 'quick')['train']['teachers']['teacher']
    assert teacher['classes'] == [0, 1, 2, 3, 4] and teacher['num_classes'] == 5
    assert teacher['n_train'] == int((load_dataset('digits').labels < 5).sum())
    assert 'classes' not in resolve('sarkar', 'Table 3', 'B', 'quick')['train']['teachers']['teacher']   # the same task
    assert resolve('sarkar', 'Table 3', 'A', 'quick')['train']['teachers']['teacher']['classes'] == [0, 1, 2, 3, 4]
    # IGAM's App. A weights: as printed (official conventions) at full scale, relative to their preset's at quick
    row = ('igam', 'Table 4', 'IGAM-CIFAR10 (lambda_diff=5)')
    full, quick = (resolve(*row, s)['train']['args'] for s in ('full', 'quick'))
    assert (full['lambda_diff'], full['lambda_adv'], full['convention']) == (5, 2, 'official')
    assert (quick['lambda_diff'], quick['lambda_adv'], quick['convention']) == (2.0, 1.0, 'batch_mean')   # 4*5/10, 1*2/2
    # IGAM's input noise: the paper's text (0) in every row at every scale; a row that sets it is scaled like a budget
    assert (full['input_noise'], quick['input_noise'], resolve(*row, 'smoke')['train']['recipe']['input_noise']) == (0.0, 0.0, 0.0)
    scaled = papers._scale_budget({'input_noise': 8/255, 'eps': 8/255, 'lambda_diff': 10.0}, 0.2/(8/255))
    assert scaled['input_noise'] == pytest.approx(0.2) and scaled['eps'] == pytest.approx(0.2) and scaled['lambda_diff'] == 10.0


@SMOKE
def test_k_curve_alignment_and_decision_slice_analyses(smoke_root):
    "Sarkar Figs. 2-3 evaluate the model after phase 1 and after each k; Table 7 and IGAM Fig. 7 have their own analyses."
    tmp_path = smoke_root[0]                                        # jobs the smoke run finished are read back
    fig3 = reproduce('sarkar', 'Fig. 3', scale='smoke', root=tmp_path, device='cpu', progress=False)
    folder = job_folder(tmp_path, resolve('sarkar', 'Fig. 3', 'OURS CIFAR-10', 'smoke'))
    snaps = sorted(p.name for p in (folder/'snapshots').iterdir())
    assert snaps[0] == 'k50.pt' and 'phase1.pt' in snaps and (folder/'figures'/'k_curve.png').exists()
    assert (folder/'curve.csv').read_text().splitlines()[1].startswith('phase 1')     # phase 1 first, then k falling
    assert {f'{k} {c}' for k in ('phase 1', '50') for c in ('Clean', 'FGSM', 'PGD-20')} <= set(fig3['column'])
    t7 = reproduce('sarkar', 'Table 7', scale='smoke', root=tmp_path, device='cpu', progress=False).set_index(['row', 'column'])
    assert t7.loc[('AT Model', 'Alignment loss'), 'ours'] == 0                            # the teacher against itself
    assert {'CE loss', 'Alignment loss', 'train diff'} <= set(t7.loc['Our Model'].index)
    f7 = reproduce('igam', 'Fig. 7', scale='smoke', root=tmp_path, device='cpu', progress=False)
    assert (f7['status'].str.startswith('ok')).all() and 'correct share of the plane' in set(f7['column'])


def test_snapshots_are_written_once_per_k(monkeypatch, tmp_path):
    "The model after phase 1 and after the last epoch of each k, with whole and fractional epochs per k (epochs by hand)."
    from robustnb.curriculum import TopKSchedule
    from robustnb.matching import SaliencyCurriculum
    from robustnb.models import SmallCNN
    saved = []
    monkeypatch.setattr(papers, 'save_model', lambda model, path: saved.append(path.name))
    for per_k, epochs, expected in ((2, 8, {2: 'phase1.pt', 4: 'k100.pt', 6: 'k90.pt', 8: 'k80.pt'}),
                                    (1.5, 7, {2: 'phase1.pt', 3: 'k100.pt', 5: 'k90.pt', 7: 'k80.pt'})):
        recipe = SaliencyCurriculum(SmallCNN(input_size=8), phase1_epochs=2, schedule=TopKSchedule(100, 80, 10, per_k))
        assert recipe.total_epochs == epochs
        callback, seen = papers._snapshotter(recipe, tmp_path, epochs), {}
        for epoch in range(1, epochs + 1):
            n = len(saved); callback(epoch, None, None)
            if len(saved) > n: seen[epoch] = saved[-1]
        assert seen == expected, (per_k, seen)


def test_smoke_caps_every_attack_budget():
    "Smoke: a recipe's attack capped at SMOKE['max_steps'] steps even when its preset sets them, AutoAttack's budget too."
    cap = papers.SMOKE['max_steps']
    agkd = resolve('agkd', 'Table 1', 'AGKD-BML', 'smoke')
    assert resolve('agkd', 'Table 1', 'AGKD-BML', 'full')['train']['args']['steps'] is None   # the preset's 10 steps
    assert agkd['train']['args']['steps'] == cap
    assert resolve('agkd', 'Table 1', 'UM', 'smoke')['train']['args'].get('steps') is None   # no attack to cap
    aa = [a for a in resolve('agkd', 'Table 2', 'AGKD-BML-10 | WRN-28-10 | decay 100', 'smoke')['eval']['attacks']
          if a['attack'] == 'autoattack']
    assert aa and all((a['n_iter'], a['n_queries'], a['n_target_classes']) == (cap, cap, cap) for a in aa)
    full = resolve('agkd', 'Table 2', 'AGKD-BML-10 | WRN-28-10 | decay 100', 'full')['eval']['attacks']
    assert not any(k in a for a in full for k in papers._AUTOATTACK_BUDGET)   # AutoAttack's own budget at full scale
