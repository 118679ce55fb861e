"""The gradient-matching recipes' speed across versions of robustnb: four of `bench/recipes.py`'s contenders (PGD-10 AT,
IGAM with its defaults, Sarkar phase 1 and phase 2 with the `cifar10` preset; PreAct-ResNet-20, 3 batches of 128
random 32x32x3 images), built by its `contenders`, timed with the robustnb package found in each ROOT, one fresh
process per ROOT, the ROOTs alternated `--rounds` times. Each process measures its ratios to its own PGD-10 AT epoch (alternating medians,
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
import json, sys
from pathlib import Path
root, bench = sys.argv[1:3]
sys.path[:0] = [root, bench]                                   # this root's robustnb, this checkout's bench scripts
import robustnb
assert Path(robustnb.__file__).resolve().is_relative_to(Path(root).resolve()), robustnb.__file__
from common import minor_page_faults, time_alternating
from recipes import contenders
every = contenders(3)                                          # recipes.py's contenders, 3 batches of 128 an epoch
fns = {short: every[name] for name, short in json.loads(sys.argv[3]).items()}
med = time_alternating(fns, repeats=5, warmup=1)
faults = {k: minor_page_faults(f) for k, f in fns.items()}
print(json.dumps({k: [v, v/med['PGD-10 AT'], faults[k]] for k, v in med.items()}))
'''
# recipes.py's contenders timed here, under the names the results use
CONTENDERS = {'PGD-10 AT': 'PGD-10 AT', 'IGAM (defaults)': 'IGAM (defaults)',
              'Sarkar phase 1 (cifar10 preset)': 'Sarkar phase 1', 'Sarkar phase 2 (cifar10 preset)': 'Sarkar phase 2'}


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
            out = subprocess.run([sys.executable, '-c', CHILD, str(Path(r).resolve()), str(Path(__file__).resolve().parent),
                                  json.dumps(CONTENDERS)], check=True, capture_output=True, text=True).stdout
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
