"""The runtime package stays free of development tools: importing robustnb never imports nbdev and friends."""
import ast
import configparser
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_ONLY = {'nbdev', 'execnb', 'fastcore', 'pytest', 'pytest-xdist', 'foolbox', 'pyhessian', 'torchattacks', 'jupyter',
            'jupyterlab', 'IPython', 'ipykernel'}


def _cfg():
    c = configparser.ConfigParser(delimiters=['='])
    c.read(ROOT/'settings.ini', encoding='utf-8')
    return c['DEFAULT']


def _names(reqs):
    return {r.split('>')[0].split('<')[0].split('=')[0].split('[')[0].strip().lower() for r in reqs}


def test_runtime_requirements_exclude_dev_tools():
    runtime = _names(shlex.split(_cfg()['requirements']))
    assert runtime == {'torch', 'torchvision', 'numpy', 'scipy', 'pandas', 'scikit-learn', 'matplotlib', 'seaborn',
                       'captum', 'pyautoattack', 'tqdm'}
    assert not runtime & {n.lower() for n in DEV_ONLY}


def test_dev_requirements_pins():
    dev = shlex.split(_cfg()['dev_requirements'])
    for pin in ('nbdev==2.4.14', 'execnb==0.1.18', 'fastcore>=1.12.3,<2', 'jupyterlab>=4', 'foolbox', 'pyhessian', 'pytest<9.2',
                'pytest-xdist'):
        assert pin in dev, pin
    assert 'torchattacks' not in _names(dev)


def test_library_modules_import_no_dev_tool():
    for py in sorted((ROOT/'robustnb').glob('*.py')):
        if py.name == '_modidx.py': continue
        for node in ast.walk(ast.parse(py.read_text(encoding='utf-8'))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                   [node.module or ''] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for m in mods:
                assert m.split('.')[0] not in DEV_ONLY, f'{py.name} imports {m}'


def test_import_does_not_load_nbdev():
    code = ("import robustnb, sys; import robustnb.data, robustnb.models, robustnb.train, robustnb.cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in %r); assert not bad, bad" % (DEV_ONLY,))
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT.parent)
