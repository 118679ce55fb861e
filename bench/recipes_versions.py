"""The gradient-matching recipes' speed across versions of robustnb: the same contenders as `bench/recipes.py` (PGD-10 AT,
IGAM with its defaults, Sarkar phase 1 and phase 2 with the `cifar10` preset; PreAct-ResNet-20, 3 batches of 128
random 32x32x3 images), timed with the robustnb package found in each ROOT, one fresh process per ROOT, the ROOTs
alternated `--rounds` times. Each process measures its ratios to its own PGD-10 AT epoch (alternating medians,
bench/common.py) and the minor page faults of one more epoch; the summary gives each root's median ratio over its
processes, with the range. Several processes, because on a small CPU the same contender's time moves by several
percent from one process to the next, more than between rounds within one. A ROOT is labelled by its git commit
(with '+changes' when its robustnb/ differs from it).

An earlier commit is a worktree away (repository root, project env):

    git worktree add /tmp/robustnb-9ceef76 9ceef76
    OMP_NUM_THREADS=1 python bench/recipes_versions.py /tmp/robustnb-9ceef76 . --rounds 3 --csv bench/results/recipes_versions_9ceef76_df622ac.csv

Used for `results/recipes_versions_9ceef76_df622ac.{csv,log}` (the teacher's gradients first, batch norm's differentiable
pass without its output; see bench/README.md).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import sys
from pathlib import Path
import torch
root = sys.argv[1]
sys.path.insert(0, root); sys.path.insert(0, sys.argv[2])
import robustnb
assert Path(robustnb.__file__).resolve().is_relative_to(Path(root).resolve()), robustnb.__file__
from common import minor_page_faults, time_alternating
from robustnb.matching import IGAM, SaliencyCurriculum
from robustnb.models import create_model
from robustnb.recipes import PGDAT
from robustnb.train import fit
torch.manual_seed(0)
B = 128
data = (torch.rand(3*B, 3, 32, 32), torch.randint(0, 10, (3*B,)))
network = lambda: create_model('preactresnet20', dataset='cifar10')
teacher = network().eval()
recipes = {'PGD-10 AT': PGDAT(preset='cifar10'), 'IGAM (defaults)': IGAM(teacher, preset='digits'),
           'Sarkar phase 1': SaliencyCurriculum(teacher, preset='cifar10'),
           'Sarkar phase 2': SaliencyCurriculum(teacher, preset='cifar10', phase1_epochs=0)}
fns = {k: (lambda m, r: lambda: fit(m, r, data, epochs=1, batch_size=B, lr=0.01, progress=False))(network(), r) for k, r in recipes.items()}
med = time_alternating(fns, repeats=5, warmup=1)
faults = {k: minor_page_faults(f) for k, f in fns.items()}
import json
print(json.dumps({k: [v, v/med['PGD-10 AT'], faults[k]] for k, v in med.items()}))
'''


def label(root):
    "The commit checked out at `root` (short hash, '+changes' when its robustnb/ differs from it), else the path itself."
    git = lambda *a: subprocess.run(['git', '-C', str(root), *a], capture_output=True, text=True)
    head = git('rev-parse', '--short', 'HEAD')
    if head.returncode: return str(root)
    return head.stdout.strip() + ('+changes' if git('status', '--porcelain', '--untracked-files=no', '--', 'robustnb').stdout.strip() else '')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('roots', nargs='+', help='directories holding a robustnb package (a checkout or worktree)')
    p.add_argument('--rounds', type=int, default=3, help='rounds over the ROOTs, one process per root each (default 3)')
    p.add_argument('--csv', default=None, help='also write root, round, contender, seconds, ratio, minor_page_faults')
    args = p.parse_args(argv)
    if args.rounds < 1: p.error('--rounds: expected at least 1')
    for r in args.roots:
        if not (Path(r)/'robustnb'/'__init__.py').is_file(): p.error(f'roots: {r} holds no robustnb package')
    import pandas as pd
    print(f'python {sys.version.split()[0]}; one process per root and round, {args.rounds} rounds; PreAct-ResNet-20, '
          '3 batches of 128 per epoch, median of 5 alternating rounds per process, 1 thread (OMP_NUM_THREADS)', flush=True)
    rows = []
    for i in range(args.rounds):
        for r in args.roots:
            out = subprocess.run([sys.executable, '-c', CHILD, str(Path(r).resolve()), str(Path(__file__).resolve().parent)],
                                 check=True, capture_output=True, text=True).stdout
            res, name = json.loads(out.strip().splitlines()[-1]), label(r)
            print(f'round {i}, {name}: ' + ', '.join(f'{k} {s:.2f} s {q:.3f}x ({f:,} faults)' for k, (s, q, f) in res.items()), flush=True)
            rows += [dict(root=name, round=i, contender=k, seconds=round(s, 3), ratio=round(q, 4), minor_page_faults=f) for k, (s, q, f) in res.items()]
    df = pd.DataFrame(rows)
    summary = df.groupby(['contender', 'root'], sort=False)['ratio'].agg(['median', 'min', 'max'])
    print('\nratio to the same process\'s PGD-10 AT epoch, over processes:')
    print(summary.round(3).to_string())
    if args.csv: df.to_csv(args.csv, index=False)


if __name__ == '__main__':
    main()
