"""Sarkar et al.'s phase 2 on the digits under each `phase2_target` reading: the k-curve (Fig. 3) and a fixed k (Tables 13-14).

Per seed: a PGD-AT teacher (`fit(teacher, PGDAT(preset='digits'), loader, epochs=15)`, batch 64), then per reading

    fit(student, SaliencyCurriculum(teacher, phase1_epochs=8, phase2_target=t), loader)             # k 100 -> 50
    fit(student, SaliencyCurriculum(teacher, phase1_epochs=8, phase2_target=t,
                                    schedule=TopKSchedule(50, 50, epochs_per_k=6)), loader)           # fixed k = 50

with the recipe's own settings (the digits defaults: Adam 2e-3 with the two-phase linear decay of the digits preset). After phase 1 and
after every k, accuracy under foolbox's LinfPGD (20 steps of 0.05, random start, eps 0.2) on the 540 test digits, and how
far phase 2 moved the weights (relative L2 distance from the end of phase 1). Not a timing.

`--phase2-lr START END` replaces the phase-2 factors of the recipe's `lr_decay`: Sarkar §5's 0.01 -> 0.001 of the base
LR leave Adam steps of 2e-5 and less on the digits; the digits preset (chosen with these runs) uses 0.1 -> 0.01.
The recorded runs:

    python bench/sarkar_phase2.py --seeds 0 1 2 --phase2-lr 0.01 0.001 --csv bench/results/sarkar_phase2.csv
    python bench/sarkar_phase2.py --seeds 0 1 2 --phase2-lr 0.1 0.01 --csv bench/results/sarkar_phase2_lr0.1.csv
    python bench/sarkar_phase2.py --seeds 0 1 2 --targets restricted --phase2-lr 0.01 0.001 --csv bench/results/sarkar_phase2_restricted.csv
    python bench/sarkar_phase2.py --seeds 0 1 2 --targets restricted --phase2-lr 0.1 0.01 --csv bench/results/sarkar_phase2_restricted_lr0.1.csv
"""
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from igam_digits import digits_setup, foolbox_pgd20, parse_args  # noqa: E402


def main(argv=None):
    def add(p):
        p.add_argument('--targets', nargs='+', default=['literal', 'sign_consistent'])
        p.add_argument('--phase2-lr', type=float, nargs=2, default=None, metavar=('START', 'END'),
                       help="phase 2's LR factors (default: the recipe's digits preset, 0.1 0.01)")
    args = parse_args(__doc__, argv, add)
    from robustnb.curriculum import TopKSchedule
    from robustnb.matching import SaliencyCurriculum
    from robustnb.models import create_model
    from robustnb.train import fit, set_seed

    rows = []
    for seed in args.seeds:
        loader, (x, y), base = digits_setup(seed)
        for name, m in base.items():
            clean, robust = foolbox_pgd20(m, x, y)
            rows.append(dict(seed=seed, model=name, schedule='', k='', clean=clean, pgd20=robust, moved=None))
            print(f'seed {seed} {name:18s} clean {clean:5.1f} PGD-20 {robust:5.1f}', flush=True)
        teacher = base['PGD-AT (teacher)']
        for target in args.targets:
            for sched_name, sched in (('curriculum 100->50', None), ('fixed k=50', TopKSchedule(50, 50, epochs_per_k=6))):
                set_seed(seed); student = create_model('smallcnn', dataset='digits')
                decay = {} if args.phase2_lr is None else {'lr_decay': ((1.0, 0.01), tuple(args.phase2_lr))}
                recipe = SaliencyCurriculum(teacher, phase1_epochs=8, phase2_target=target, schedule=sched, **decay)
                snap = {}
                def after(epoch, row, model, recipe=recipe, snap=snap, target=target, sched_name=sched_name):
                    if epoch < 8: return
                    if epoch == 8: snap['w'] = torch.cat([q.detach().flatten().clone() for q in model.parameters()])
                    w = torch.cat([q.detach().flatten() for q in model.parameters()])
                    moved = ((w - snap['w']).norm()/snap['w'].norm()).item()
                    was = model.training
                    clean, robust = foolbox_pgd20(model, x, y); model.train(was)
                    k = 'phase 1' if epoch == 8 else f"{recipe.k(epoch - 1):g}"
                    rows.append(dict(seed=seed, model=f'Sarkar {target}', schedule=sched_name, k=k, clean=clean, pgd20=robust,
                                     moved=moved))
                    print(f'seed {seed} {target:15s} {sched_name:18s} k {k:>7s} clean {clean:5.1f} PGD-20 {robust:5.1f} '
                          f'moved {moved:.4f}', flush=True)
                fit(student, recipe, loader, seed=seed, callbacks=[after], progress=False)
    df = pd.DataFrame(rows)
    final = df[(df.k == '') | (df.k == '50')]
    print(final.groupby(['model', 'schedule'], sort=False)[['clean', 'pgd20', 'moved']].agg(['mean', 'std']).round(3).to_string())
    if args.csv: df.to_csv(args.csv, index=False)
    return df


if __name__ == '__main__':
    main()
