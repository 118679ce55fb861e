"""Per-sample top Hessian eigenvalue: each estimator's rank correlation with the exact value, and its cost (SAT Fig. 7).

For each model saved by `bench/sat_digits.py --save DIR` (PGD-AT, P-SAT, H-SAT on the digits; a PGD-AT model is
trained here when none is given), 128 training digits (fixed draw) are attacked by PGD-10 in the model's own budget
(the file name's eps; step 2.5*eps/10), and at those PGD points (Eq. 9: where H-SAT estimates) we compare:

- exact: `per_sample_top_eigenvalue` (Lanczos on each sample's own Hessian, tol 1e-3) — Fig. 7's x-axis;
- own lower (default): `per_sample_eigen_estimate(model, x, y)` — the Taylor lower bound with each sample's own gradient;
- own upper, power-1 (the exact Rayleigh quotient along the own gradient) and power-3;
- SAT's heuristic: `estimator='sat'` — the upper bound with 32-sample mini-batch gradients (App. C.2), and its lower bound.

Spearman rank correlation with exact (SAT reports 0.61-0.65 on CIFAR-10 ResNets), and the cost of one estimate of the
128 samples in forward+backward passes of the same 128 (median of alternating runs, 1 thread).

    python bench/per_sample_eigen.py --models /tmp/satmodels --pattern '*seed0.pt' --csv bench/results/per_sample_eigen.csv
    python bench/per_sample_eigen.py --train-seeds 0 1 2 --csv bench/results/per_sample_eigen_eps0.2.csv
"""
import glob
import os
import re
import sys

import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from common import time_alternating  # noqa: E402

ESTIMATORS = {
    'own lower (default)': dict(),
    'own upper': dict(bound='upper'),
    'power-1 (Rayleigh)': dict(estimator='power', iterations=1),
    'power-3': dict(estimator='power', iterations=3),
    'SAT heuristic (upper, sub-batch 32)': dict(estimator='sat'),
    'SAT lower (sub-batch 32)': dict(estimator='sat', bound='lower'),
}


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', default=None, help='folder of state dicts from bench/sat_digits.py --save')
    p.add_argument('--pattern', default='*.pt')
    p.add_argument('--n', type=int, default=128)
    p.add_argument('--train-seeds', type=int, nargs='+', default=[0], help='without --models: PGD-AT models (digits preset) trained from these seeds')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--csv', default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from scipy.stats import spearmanr
    from robustnb.attacks import pgd
    from robustnb.data import load_dataset
    from robustnb.hessian import per_sample_eigen_estimate, per_sample_top_eigenvalue
    from robustnb.models import create_model
    from robustnb.recipes import PGDAT
    from robustnb.train import fit, set_seed
    train = load_dataset('digits')
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:args.n]
    x, y = train.images[pick], train.labels[pick]
    models = {}
    if args.models:
        for f in sorted(glob.glob(os.path.join(args.models, args.pattern))):
            m = create_model('smallcnn', dataset='digits'); m.load_state_dict(torch.load(f, weights_only=True))
            models[os.path.basename(f)[:-3]] = (m.eval(), float(re.search(r'eps([0-9.]+)_', os.path.basename(f))[1]))
    else:
        for seed in args.train_seeds:
            set_seed(seed); m = create_model('smallcnn', dataset='digits')
            fit(m, PGDAT(preset='digits'), (train.images, train.labels), epochs=15, batch_size=64, seed=seed, progress=False)
            models[f'PGD-AT_eps0.2_seed{seed}'] = (m.eval(), 0.2)
    rows = []
    for name, (m, eps) in models.items():
        xa = pgd(m, x, y, eps, 2.5*eps/10, 10, seed=0)
        exact = per_sample_top_eigenvalue(m, xa, y).numpy()
        fns = {'forward+backward': lambda: torch.autograd.grad(F.cross_entropy(m(xa), y), list(m.parameters()))}
        fns.update({k: (lambda kw=kw: per_sample_eigen_estimate(m, xa, y, **kw)) for k, kw in ESTIMATORS.items()})
        t = time_alternating(fns, repeats=args.repeats)
        for k, kw in ESTIMATORS.items():
            est = per_sample_eigen_estimate(m, xa, y, **kw).detach().double().numpy()
            rows.append(dict(model=name, estimator=k, spearman=spearmanr(exact, est)[0],
                             cost_fb=t[k]/t['forward+backward']))
            print(f'{name:28s} {k:38s} Spearman {rows[-1]["spearman"]:+.3f}   cost {rows[-1]["cost_fb"]:6.1f} fwd+bwd', flush=True)
    df = pd.DataFrame(rows)
    df['method'] = df.model.str.replace(r'_eps.*', '', regex=True)
    df['eps'] = df.model.str.extract(r'eps([0-9.]+)_')[0]
    print(df.groupby(['method', 'eps', 'estimator'], sort=False)[['spearman', 'cost_fb']].agg(['mean', 'std']).round(2).to_string())
    if args.csv: df.to_csv(args.csv, index=False)
    return df


if __name__ == '__main__':
    main()
