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
