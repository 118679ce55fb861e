"""A killed process never leaves a truncated checkpoint: SIGKILL a writer in the middle of a write, then load what is there.

The kill points are chosen by what the writer reports (it announces each write before starting it), never by a clock,
so the test means the same on an idle and on a saturated machine."""
import os
import signal
import subprocess
import sys
import textwrap

import torch

from robustnb.train import CHECKPOINT_FORMAT, load_checkpoint

WRITER = textwrap.dedent('''
    import sys, torch
    from robustnb.checks import atomic_save
    path, i = sys.argv[1], 0
    while True:                                   # ~32 MB per file: each write takes a while
        i += 1
        print(f'writing {i}', flush=True)         # the test kills after reading this: during write i
        atomic_save({'format': %r, 'epoch': i, 'w': torch.full((8_000_000,), float(i))}, path)
''' % CHECKPOINT_FORMAT)


def test_killed_writer_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path/'last.pt'
    for trial, kill_during in enumerate((2, 3, 2, 4, 2, 3)):
        path.unlink(missing_ok=True)
        p = subprocess.Popen([sys.executable, '-c', WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        for line in p.stdout:                     # write kill_during - 1 is complete once write kill_during starts
            if line.strip() == f'writing {kill_during}': break
        os.kill(p.pid, signal.SIGKILL); p.wait()
        ck = load_checkpoint(path)                # never truncated: it loads, its digest matches, it is consistent
        assert ck['epoch'] in (kill_during - 1, kill_during), (trial, ck['epoch'])
        assert ck['w'].numel() == 8_000_000 and torch.all(ck['w'] == float(ck['epoch']))
        assert not [f for f in os.listdir(tmp_path) if f != 'last.pt' and not f.endswith('.tmp')]


def test_a_flipped_bit_in_a_checkpoint_is_detected(tmp_path):
    "One flipped bit in a stored weight: load_checkpoint and fit's resume refuse the file, naming it."
    import pytest
    from robustnb.models import SmallCNN
    from robustnb.recipes import Standard
    from robustnb.train import fit
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(32, 1, 8, 8, generator=g), torch.arange(32) % 10)
    model = SmallCNN(input_size=8)
    fit(model, Standard(), data, epochs=1, checkpoint_dir=tmp_path, progress=False)
    path = tmp_path/'last.pt'
    raw = bytearray(path.read_bytes())
    at = raw.find(model.fc.bias.detach().numpy().tobytes())    # the final bias, byte for byte, inside the file
    assert at > 0
    raw[at + 1] ^= 0x04
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match='is corrupted'): load_checkpoint(path)
    with pytest.raises(ValueError, match=str(path)): fit(SmallCNN(input_size=8), Standard(), data, epochs=1, checkpoint_dir=tmp_path, progress=False)
