"""A killed process never leaves a truncated checkpoint: SIGKILL a writer at random moments, then load what is there."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import torch

from robustnb.train import CHECKPOINT_FORMAT, load_checkpoint

WRITER = textwrap.dedent('''
    import sys, torch
    from robustnb.models import _atomic_save
    path, i = sys.argv[1], 0
    while True:                                   # ~32 MB per file: each write takes a while
        i += 1
        _atomic_save({'format': %r, 'epoch': i, 'w': torch.full((8_000_000,), float(i))}, path)
        if i == 1: print('first', flush=True)     # the test's clock starts here, not at import (slow on a busy machine)
''' % CHECKPOINT_FORMAT)


def test_killed_writer_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path/'last.pt'
    rng = random.Random(0)
    loaded = 0
    for trial in range(6):
        p = subprocess.Popen([sys.executable, '-c', WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == 'first'   # one complete file exists: kill at a random point after it
        time.sleep(rng.uniform(0.0, 1.0))
        os.kill(p.pid, signal.SIGKILL); p.wait()
        if path.exists():
            ck = load_checkpoint(path)            # never truncated: it loads, and it is internally consistent
            assert ck['w'].numel() == 8_000_000 and torch.all(ck['w'] == float(ck['epoch']))
            loaded += 1
    assert loaded >= 3
