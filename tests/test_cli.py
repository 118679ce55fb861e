"""The console script the README tells newcomers to run."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustnb.cli import quickstart
from robustnb.data import load_dataset
from robustnb.models import load_model
from robustnb.train import accuracy

EXE = shutil.which('robustnb', path=str(Path(sys.executable).parent)) or shutil.which('robustnb')


@pytest.mark.skipif(EXE is None, reason='the robustnb console script is not installed')
def test_quickstart_command(tmp_path):
    # run in tmp_path: the default figure path is relative, and the repository's figures/ must not be rewritten by a test
    out = subprocess.run([EXE, 'quickstart', '--save', str(tmp_path/'m.pt')], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    assert (tmp_path/'figures'/'perturbation_deltas.png').stat().st_size > 0
    acc = float(re.search(r'test accuracy: ([\d.]+)%', out).group(1))
    assert acc >= 95.0, out
    # the saved model reproduces the printed accuracy
    assert abs(100*accuracy(load_model(tmp_path/'m.pt'), load_dataset('digits', 'test')) - acc) <= 0.005   # printed with 2 decimals


@pytest.mark.skipif(EXE is None, reason='the robustnb console script is not installed')
def test_bad_commands_exit_nonzero():
    assert subprocess.run([EXE, 'nope'], capture_output=True).returncode == 2
    assert subprocess.run([EXE], capture_output=True).returncode == 2
    r = subprocess.run([EXE, 'quickstart', '--epochs', '0'], capture_output=True, text=True)
    assert r.returncode == 2 and '--epochs' in r.stderr


def test_quickstart_is_reproducible():
    a, b = quickstart(epochs=2, progress=False), quickstart(epochs=2, progress=False)
    assert a['accuracy'] == b['accuracy']
    for (k, v), (_, w) in zip(a['model'].state_dict().items(), b['model'].state_dict().items()):
        assert torch.equal(v, w), k


@pytest.mark.skipif(EXE is None, reason='the robustnb console script is not installed')
@pytest.mark.parametrize('args,option', [
    (['quickstart', '--seed', '-1'], '--seed'), (['quickstart', '--device', 'nope'], '--device'),
    (['quickstart', '--device', f'cuda:{torch.cuda.device_count() + 6}'], '--device'),
    (['quickstart', '--save', '/proc/robustnb/model.pt'], '--save'), (['quickstart', '--figure', '/proc/robustnb/f.png'], '--figure'),
    (['reproduce', '--seeds', '-1'], '--seeds'), (['reproduce', 'sat', '--item', 'Fig. 2', '--device', 'nope'], '--device'),
    (['reproduce', '--job', 'nope'], '--job'), (['reproduce', 'sat', '--item', 'Fig. 2', '--root', '/proc/robustnb/runs'], '--root'),
])
def test_bad_values_are_one_line_and_status_2_before_any_work(args, option, tmp_path):
    "Every bad value: exit status 2, one line on stderr naming the option, no traceback, nothing trained or written."
    r = subprocess.run([EXE, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and 'Traceback' not in r.stderr, r.stderr
    assert r.stdout == '' and not any(tmp_path.iterdir())     # no training report, no figure, no run folder
