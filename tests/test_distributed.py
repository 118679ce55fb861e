"""fit under `torchrun` (CPU, gloo, 2 processes): the same script, unchanged, trains in one process and in two.

Two processes with batch B take the steps of one process with batch 2B: the DistributedSampler gives process r the
samples perm[r::2] of each epoch's permutation, so step k of the two processes covers perm[2kB:2(k+1)B], exactly the
k-th batch of one process with the same sampler (num_replicas=1), and DistributedDataParallel averages the gradients.
In float64 the two runs then agree to rounding (tolerance below), IGAM too: it trains through the student's input
gradients (double backward through the wrapper), averages its discriminators' gradients, and sums L_diff over the global
batch. PGD-AT runs without a random start here: each
process draws its own noise for its B samples, which one process drawing for 2B does not reproduce."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

TORCHRUN = shutil.which('torchrun', path=str(Path(sys.executable).parent))

SCRIPT = textwrap.dedent('''
    import os, sys, torch
    from robustnb.models import Discriminator, SmallCNN
    from robustnb.matching import IGAM
    from robustnb.recipes import PGDAT, Standard
    from robustnb.train import fit, main_process

    class PGDATNoStart(PGDAT):
        "PGD-AT whose attack starts at x: the same examples however the batch is split over processes."
        def attack(self, model, x, y, **kw): return super().attack(model, x, y, random_start=False, **kw)

    def data():
        g = torch.Generator().manual_seed(0)
        return torch.rand(256, 1, 8, 8, generator=g, dtype=torch.float64), torch.arange(256) % 10

    def recipe(method):
        if method == 'igam':                            # double backward through the wrapper, discriminators averaged
            torch.manual_seed(1)
            teacher = SmallCNN(input_size=8).double().eval()
            disc = lambda c: Discriminator(in_channels=c, widths=(8, 16)).double()   # built in setup, after fit's seed
            return IGAM(teacher, convention='official', disc_input='zero_mean_l2', disc_every=1, discriminator=disc,
                        lambda_adv=1.0, lambda_diff=10.0, input_noise=0.0)   # noise drawn per process would differ
        return Standard() if method == 'standard' else PGDATNoStart(eps=0.1, steps=3)

    def train(method, batch_size, ckdir, train_data=None, stop_after=None):
        r = recipe(method)
        torch.manual_seed(0)
        model = SmallCNN(input_size=8).double()
        def stop(epoch, row, m):
            if stop_after == epoch: os._exit(3)       # killed right after the epoch's checkpoint
        hist = fit(model, r, train_data if train_data is not None else data(), epochs=2, batch_size=batch_size,
                   lr=0.05, seed=0, checkpoint_dir=ckdir, progress=False, callbacks=[stop])
        return model, hist

    if __name__ == '__main__':
        method, batch_size, ckdir, out, stop_after = sys.argv[1:6]
        model, hist = train(method, int(batch_size), ckdir, stop_after=int(stop_after) or None)
        if main_process(): torch.save({'state': model.state_dict(), 'loss': hist.loss.tolist()}, out)
''')


@pytest.fixture(scope='module')
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp('ddp')/'train_script.py'
    path.write_text(SCRIPT)
    return path


def torchrun(script, *args, nproc=2):
    return subprocess.run([TORCHRUN, '--standalone', '--nproc_per_node', str(nproc), str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def one_process_reference(script, method, batch_size, tmp_path):
    "One process, batch 2B, the sampler of a one-process distributed run (the permutation of seed + epoch)."
    sys.path.insert(0, str(script.parent))
    try:
        import importlib
        mod = importlib.import_module('train_script')
        x, y = mod.data()
        ds = TensorDataset(x, y)
        loader = DataLoader(ds, batch_size=batch_size, sampler=DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=0))
        return mod.train(method, batch_size, tmp_path/'ref', train_data=loader)
    finally: sys.path.remove(str(script.parent))


@pytest.mark.skipif(TORCHRUN is None, reason='torchrun is not installed beside this Python')
@pytest.mark.parametrize('method', ['standard', 'pgdat', 'igam'])
def test_two_processes_of_batch_b_equal_one_of_batch_2b(method, script, tmp_path):
    r = torchrun(script, method, 32, tmp_path/'ddp', tmp_path/'ddp.pt', 0)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = torch.load(tmp_path/'ddp.pt', weights_only=True)
    model, hist = one_process_reference(script, method, 64, tmp_path)
    worst = max((ddp['state'][k] - v).abs().max().item() for k, v in model.state_dict().items())
    assert worst < 1e-9, worst                     # float64: the gradient sums differ only in their order
    assert ddp['loss'] == pytest.approx(hist.loss.tolist(), rel=1e-9)


@pytest.mark.skipif(TORCHRUN is None, reason='torchrun is not installed beside this Python')
def test_a_killed_distributed_run_resumes_to_the_same_weights(script, tmp_path):
    whole = torchrun(script, 'pgdat', 32, tmp_path/'whole', tmp_path/'whole.pt', 0)
    assert whole.returncode == 0, whole.stderr[-3000:]
    cut = torchrun(script, 'pgdat', 32, tmp_path/'cut', tmp_path/'cut.pt', 1)
    assert cut.returncode != 0 and not (tmp_path/'cut.pt').exists()        # killed after epoch 1
    assert torch.load(tmp_path/'cut'/'last.pt', weights_only=True)['epoch'] == 1
    again = torchrun(script, 'pgdat', 32, tmp_path/'cut', tmp_path/'cut.pt', 0)   # resumes from last.pt
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = torch.load(tmp_path/'whole.pt', weights_only=True), torch.load(tmp_path/'cut.pt', weights_only=True)
    assert all(torch.equal(a['state'][k], b['state'][k]) for k in a['state'])
    assert a['loss'] == b['loss']


@pytest.mark.skipif(TORCHRUN is None, reason='torchrun is not installed beside this Python')
def test_the_readme_multi_process_command(tmp_path):
    "`robustnb reproduce ... --nproc 2` (torchrun under the hood, gloo on the CPU): one table, one set of run folders."
    exe = shutil.which('robustnb', path=str(Path(sys.executable).parent))
    r = subprocess.run([exe, 'reproduce', 'igam', '--item', 'Table 1', '--scale', 'smoke', '--device', 'cpu', '--root',
                        str(tmp_path), '--nproc', '2', '--json'], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    rows = json.loads(r.stdout)                        # rank 0 alone printed: valid JSON, each row once
    ran = [x for x in rows if x['status'] == 'ok']
    assert ran and len({(x['row'], x['column']) for x in rows}) == len(rows)
    assert len(list(tmp_path.glob('smoke/igam/table-1/*/seed0/results.json'))) >= 2
    assert not list(tmp_path.rglob('*.tmp'))
