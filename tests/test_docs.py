"""The docs site: the processed notebooks (tools/proc_docs.py, nbdev's processing without its Quarto install), rendered
to HTML by nbconvert, show no local path, traceback or warning box in any output (tools/check_docs.py), and the check
itself fails on each of them when planted."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
pytest.importorskip('nbconvert')            # a dev requirement (jupyterlab); the docs are built with the dev extras
import check_docs  # noqa: E402


# every test reads the pages one fixture writes to _proc: one pytest-xdist worker for all of them
pytestmark = pytest.mark.xdist_group('docs')


@pytest.fixture(scope='module')
def proc():
    subprocess.run([sys.executable, 'tools/proc_docs.py'], cwd=ROOT, check=True, capture_output=True)
    return ROOT/'_proc'


def test_every_page_is_clean(proc):
    pages = sorted(proc.glob('*.ipynb'))
    assert {p.name for p in pages} == {p.name for p in (ROOT/'nbs').glob('*.ipynb')}
    found = [p for nb in pages for p in check_docs.problems_in_html(check_docs.render(nb), nb.name)]
    assert not found, '\n'.join(found)


def _planted(proc, tmp_path, output):
    nb = json.loads((proc/'00_data.ipynb').read_text())
    cell = next(c for c in nb['cells'] if c['cell_type'] == 'code' and c.get('outputs'))
    cell['outputs'] = cell['outputs'] + [output]
    path = tmp_path/'planted.ipynb'
    path.write_text(json.dumps(nb))
    return check_docs.problems_in_html(check_docs.render(path), 'planted')


@pytest.mark.parametrize('output, expected', [
    ({'output_type': 'stream', 'name': 'stdout', 'text': 'saved to /home/alice/robustnb/figures/x.png\n'}, 'a local path'),
    ({'output_type': 'execute_result', 'execution_count': 1, 'metadata': {},
      'data': {'text/plain': "PosixPath('/work/main/.venv/lib/python3.11/site-packages/torch')"}}, 'a local path'),
    ({'output_type': 'stream', 'name': 'stderr', 'text': 'train.py:3: UserWarning: lr is large\n'}, 'a warning box'),
    ({'output_type': 'error', 'ename': 'ValueError', 'evalue': 'bad',
      'traceback': ['Traceback (most recent call last):', '  File "<x>", line 1', 'ValueError: bad']}, 'a traceback'),
])
def test_the_check_fails_on_what_it_looks_for(proc, tmp_path, output, expected):
    found = _planted(proc, tmp_path, output)
    assert any(expected in p for p in found), found


def test_the_check_passes_a_progress_bar_and_plain_stderr(proc, tmp_path):
    # tqdm draws its bars on stderr: a progress bar is not a warning
    assert _planted(proc, tmp_path, {'output_type': 'stream', 'name': 'stderr', 'text': 'epoch 1/3: 100%|##| 10/10\n'}) == []
