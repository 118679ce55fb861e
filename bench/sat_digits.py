"""P-SAT and H-SAT against PGD-AT on the digits, judged by an independent attacker (issue: SAT, ADT and AGKD-BML fidelity).

Per seed and budget eps: PGD-AT, P-SAT and H-SAT (per-batch and per-step selection, own-gradient estimator) trained with
the reproduce engine's quick settings — SmallCNN, 15 epochs, batch 64, SGD lr 0.1 (momentum 0.9, weight decay 5e-4),
x0.1 at 75 % and 90 % of the run, PGD-10 with step 2.5*eps/10 from a random start — and SAT's MNIST lambda steps
(1/3 at epochs 30, 45, 60 of 70, App. A) rescaled to the 15 epochs. Judged by torchattacks' PGD (20 steps of eps/4 from
a random start) on the 540 test digits. Not a timing, except the `seconds` column (training time, 1 thread).
SAT's claim (§6.2.2, Table 2): AT destabilizes at large eps, SAT does not; the acceptance asks P-SAT >= PGD-AT at 0.3.

    python bench/sat_digits.py --seeds 0 1 2 --eps 0.2 0.3 --csv bench/results/sat_digits.csv
"""
import time

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from igam_digits import parse_args

EPOCHS = 15
FIT = dict(optimizer='sgd', lr=0.1, momentum=0.9, weight_decay=5e-4, lr_schedule=(0.75*EPOCHS, 0.9*EPOCHS))
METHODS = ('PGD-AT', 'P-SAT', 'H-SAT (batch)', 'H-SAT (step)')


def torchattacks_pgd20(model, x, y, eps):
    "Clean and PGD-20 accuracy (%) by torchattacks' PGD (step eps/4, random start): an attacker robustnb did not write."
    import torchattacks
    model.eval()
    atk = torchattacks.PGD(model, eps=eps, alpha=eps/4, steps=20, random_start=True)
    atk.set_model_training_mode(model_training=False)
    torch.manual_seed(0)
    adv = atk(x, y)
    with torch.no_grad():
        return 100*(model(x).argmax(1) == y).float().mean().item(), 100*(model(adv).argmax(1) == y).float().mean().item()


def recipe(name, eps):
    from robustnb.curriculum import StepSchedule
    from robustnb.recipes import HSAT, PGDAT, PSAT
    steps = tuple(m*EPOCHS/70 for m in (30, 45, 60))          # SAT App. A's MNIST lambda steps, rescaled
    kw = dict(eps=eps, alpha=2.5*eps/10, steps=10)
    if name == 'PGD-AT': return PGDAT(**kw)
    if name == 'P-SAT': return PSAT(StepSchedule(0.0, 1.0, steps), **kw)
    return HSAT(StepSchedule(0.0, 1.0, steps), reselect='batch' if 'batch' in name else 'step', **kw)


def main(argv=None):
    def add(p):
        p.add_argument('--eps', type=float, nargs='+', default=[0.2, 0.3])
        p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
        p.add_argument('--save', default=None, help='folder for the trained models (state dicts), e.g. for bench/per_sample_eigen.py')
    args = parse_args(__doc__, argv, add)
    from robustnb.data import load_dataset
    from robustnb.models import create_model
    from robustnb.train import fit, set_seed
    train, test = load_dataset('digits'), load_dataset('digits', 'test')
    rows = []
    for eps in args.eps:
        for seed in args.seeds:
            for name in args.methods:
                set_seed(seed)
                loader = DataLoader(TensorDataset(train.images, train.labels), batch_size=64, shuffle=True)
                m = create_model('smallcnn', dataset='digits')
                start = time.perf_counter()
                h = fit(m, recipe(name, eps), loader, epochs=EPOCHS, seed=seed, progress=False, **FIT)
                seconds = time.perf_counter() - start
                clean, robust = torchattacks_pgd20(m, test.images, test.labels, eps)
                moved = h['perturbed'].tolist() if 'perturbed' in h else None
                rows.append(dict(eps=eps, seed=seed, method=name, clean=clean, pgd20=robust, seconds=seconds,
                                 perturbed=None if moved is None else round(sum(moved)/len(moved), 3)))
                print(f'eps {eps}  seed {seed}  {name:14s} clean {clean:5.1f}  PGD-20 {robust:5.1f}  {seconds:6.0f} s'
                      + ('' if moved is None else f'  share perturbed per epoch {[round(v, 2) for v in moved]}'), flush=True)
                if args.csv: pd.DataFrame(rows).to_csv(args.csv, index=False)     # after every run: a long job keeps what it did
                if args.save:
                    import os; os.makedirs(args.save, exist_ok=True)
                    torch.save(m.state_dict(), f"{args.save}/{name.replace(' ', '_').replace('(', '').replace(')', '')}_eps{eps}_seed{seed}.pt")
    df = pd.DataFrame(rows)
    print(df.groupby(['eps', 'method'], sort=False)[['clean', 'pgd20', 'seconds']].agg(['mean', 'std']).round(1).to_string())
    if args.csv: df.to_csv(args.csv, index=False)
    return df


if __name__ == '__main__':
    main()
