import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings('ignore', message='IProgress not found')


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA device (skipped without one); `pytest -m gpu` runs only these')


# The smoke reproduction of every entry (tests/test_papers.py) is the longest part of the suite. Its jobs start in two
# background processes of one thread each as soon as the tests are collected, and run while the other tests do; the
# test then reads them back. Split by paper: SAT's Imagenette rows (ResNet-34 at 224x224) and AGKD-BML's Tiny-ImageNet
# rows take most of the time, so each leads one group.
SMOKE_GROUPS = (('sat', 'benchmark'), ('agkd', 'adt', 'sarkar', 'igam'))
_RUN_JOBS = """
import sys, torch
torch.set_num_threads(1)
from robustnb.papers import run
root, jobs = sys.argv[1], [line.split('\\t') for line in sys.argv[2].splitlines()]
for paper, item, row in jobs:
    try: run(paper, item, row, 'smoke', 0, root, None, 'cpu', progress=False)
    except Exception as e: print(f'{paper} {item} / {row}: {type(e).__name__}: {e}', file=sys.stderr)   # the test re-runs it
"""


def smoke_jobs():
    "The (paper, item, row) that `reproduce('all', scale='smoke')` runs, one per code path, in its order."
    from robustnb import papers
    seen, out = set(), []
    for p, e, r in papers._rows('all', None):
        cfg = papers.resolve(p, e['item'], r['name'], 'smoke')
        sig = papers.code_path(cfg) if cfg['status'] == 'ok' else None
        if sig is not None and sig not in seen: seen.add(sig); out.append((p, e['item'], r['name']))
    return out


class SmokeWarmup:
    "`smoke_jobs()` running into a temporary root, one process per group of papers; `wait()` gives the root when they end."
    def __init__(self, groups=SMOKE_GROUPS):
        todo = smoke_jobs()
        missing = {p for p, _, _ in todo} - {p for g in groups for p in g}
        if missing: raise ValueError(f'SMOKE_GROUPS: no group for {sorted(missing)}')
        self.root = Path(tempfile.mkdtemp(prefix='robustnb-smoke-'))
        env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
        self.procs = [subprocess.Popen([sys.executable, '-c', _RUN_JOBS, str(self.root),
                                        '\n'.join('\t'.join(j) for j in todo if j[0] in g)], env=env) for g in groups]
    def wait(self):
        for proc in self.procs: proc.wait()
        return self.root
    def close(self):
        for proc in self.procs:
            if proc.poll() is None: proc.kill(); proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


_WARMUP = pytest.StashKey()


def pytest_collection_finish(session):
    if any('smoke_root' in getattr(item, 'fixturenames', ()) for item in session.items):
        session.config.stash[_WARMUP] = SmokeWarmup()


def pytest_sessionfinish(session):
    warmup = session.config.stash.get(_WARMUP, None)
    if warmup is not None: warmup.close()


@pytest.fixture(scope='session')
def smoke_warmup(request):
    "The session's `SmokeWarmup` (started at collection when a test needs the smoke root, else now)."
    if request.config.stash.get(_WARMUP, None) is None: request.config.stash[_WARMUP] = SmokeWarmup()
    return request.config.stash[_WARMUP]
