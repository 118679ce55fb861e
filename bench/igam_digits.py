"""IGAM on the digits the way a user calls it, judged by an independent attacker (issue: Sarkar and IGAM fidelity).

Per seed: a PGD-AT teacher and a standard model, then one IGAM student per variant, each with the plain call

    fit(student, IGAM(teacher, **variant), loader, epochs=15, **fit_args)   # loader: batch 64, shuffled

and judged by foolbox's LinfPGD (20 steps of 0.05 from a random start at eps = 0.2, the digits' budget) on the 540 test
digits. Not a timing. The acceptance asks for PGD-20 >= Standard + 15 points and >= 50 % of the teacher's.

    python bench/igam_digits.py --seeds 0 1 2 --variants defaults input_noise=0 input_noise=0.1 \
        "input_noise=0, lr=2e-3" "input_noise=0, disc_input='raw', lr=2e-3" --csv bench/results/igam_digits.csv
    python bench/igam_digits.py --seeds 0 1 2 --variants --standard-noise 0.2 --csv bench/results/igam_digits_noise_control.csv
    python bench/igam_digits.py --seeds 0 1 2 --variants "lambda_diff=6" "lambda_diff=8" --csv bench/results/igam_digits_lambda.csv
    python bench/igam_digits.py --seeds 0 1 2 --variants defaults --student-epochs 8 --csv bench/results/igam_digits_epochs.csv
    python bench/igam_digits.py --seeds 0 1 2 --curve 30 --csv bench/results/igam_digits_curve.csv
    python bench/igam_digits.py --seeds 0 1 2 --variants defaults match_start=0.5 match_start=0.875 --csv bench/results/igam_digits_match_start.csv
    python bench/igam_digits.py --seeds 0 1 2 --variants match_start=0.5 --student-epochs 30 --csv bench/results/igam_digits_match_start_30.csv
"""
import argparse

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

VARIANTS = {                     # name: (IGAM's arguments, fit's arguments besides the loader and epochs)
    'defaults': ({}, {}),
    "disc_input='raw'": (dict(disc_input='raw'), {}),
    "disc_input='raw', lr=2e-3": (dict(disc_input='raw'), dict(lr=2e-3)),
    "lr=2e-3": ({}, dict(lr=2e-3)),
    "lambda_diff=6": (dict(lambda_diff=6.0), {}),
    "lambda_diff=8": (dict(lambda_diff=8.0), {}),
    "grad_kind='prob'": (dict(grad_kind='prob'), {}),
    'match_start=0.5': (dict(match_start=0.5), {}),
    'match_start=0.875': (dict(match_start=0.875), {}),      # the official scripts' late switch-on (280k of 320k steps)
    'input_noise=0': (dict(input_noise=0.0), {}),            # no noise augmentation: the paper's text (default until 2026-12-07)
    'input_noise=0.1': (dict(input_noise=0.1), {}),          # half the official scripts' half-width (the default: eps)
    "input_noise=0, lr=2e-3": (dict(input_noise=0.0), dict(lr=2e-3)),
    "input_noise=0, disc_input='raw', lr=2e-3": (dict(input_noise=0.0, disc_input='raw'), dict(lr=2e-3)),
}


def foolbox_pgd20(model, x, y, eps=0.2):
    "Clean and PGD-20 accuracy (%) by foolbox's LinfPGD (abs. step eps/4, random start): an attacker robustnb did not write."
    import foolbox
    model.eval()
    fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
    attack = foolbox.attacks.LinfPGD(abs_stepsize=eps/4, steps=20, random_start=True)
    with torch.no_grad(): clean = (model(x).argmax(1) == y).float().mean().item()
    _, adv, _ = attack(fmodel, x, y, epsilons=eps)
    with torch.no_grad(): robust = (model(adv).argmax(1) == y).float().mean().item()
    return 100*clean, 100*robust


def NoisyStandard(n):
    "Standard training on x + U(-n, n) clipped to [0, 1]: the noise of `IGAM(input_noise=n)` without the matching."
    from robustnb.attacks import LinfStep
    from robustnb.recipes import Standard
    class Noisy(Standard):
        def loss(self, model, x, y, epoch):
            ball = LinfStep(x, n, 0.0)                 # the same draw as IGAM's: a uniform point of the ball ∩ [0, 1]
            return super().loss(model, ball.project(x + ball.random_start(None)), y, epoch)
    return Noisy()


def digits_setup(seed, epochs=15):
    """Per seed: the digits loader a user makes (batch 64, shuffled), the test split, and a PGD-AT teacher and a standard
    model trained with `fit(model, recipe, loader, epochs=epochs)`, in that order from the seed."""
    from robustnb.data import load_dataset
    from robustnb.models import create_model
    from robustnb.recipes import PGDAT, Standard
    from robustnb.train import fit, set_seed
    train, test = load_dataset('digits'), load_dataset('digits', 'test')
    set_seed(seed)
    loader = DataLoader(TensorDataset(train.images, train.labels), batch_size=64, shuffle=True)
    models = {}
    for name, recipe in (('PGD-AT (teacher)', PGDAT(preset='digits')), ('Standard', Standard())):
        set_seed(seed); m = create_model('smallcnn', dataset='digits')
        fit(m, recipe, loader, epochs=epochs, seed=seed, progress=False)
        models[name] = m
    return loader, (test.images, test.labels), models


def parse_args(doc, argv, add=lambda p: None):
    "The options these digits scripts share (--seeds, --threads, --csv) plus `add`'s; sets torch's thread count."
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--csv', default=None)
    add(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def main(argv=None):
    def add(p):
        p.add_argument('--epochs', type=int, default=15, help="the teacher's and the standard model's epochs (and the students')")
        p.add_argument('--student-epochs', type=int, default=None, help='the IGAM students\' epochs, when not --epochs')
        p.add_argument('--curve', type=int, default=None, metavar='N',
                       help='instead of the variants: one IGAM student (defaults) trained N epochs, judged after every epoch')
        p.add_argument('--variants', nargs='*', default=['defaults', "disc_input='raw', lr=2e-3"], choices=list(VARIANTS))
        p.add_argument('--standard-noise', type=float, default=None, metavar='N',
                       help="also a standard model trained on the images with IGAM's uniform noise of half-width N (a control)")
    args = parse_args(__doc__, argv, add)
    from robustnb.matching import IGAM
    from robustnb.models import create_model
    from robustnb.train import fit, set_seed

    rows = []
    def judge(seed, name, model, x, y, label=None, **extra):
        "Clean and foolbox PGD-20 accuracy of `model` on (x, y): one row, printed."
        clean, robust = foolbox_pgd20(model, x, y)
        rows.append(dict(seed=seed, model=name, **extra, clean=clean, pgd20=robust))
        print(f'seed {seed}  {label or name:34s} clean {clean:5.1f}  PGD-20 {robust:5.1f}', flush=True)
    for seed in args.seeds:
        loader, (x, y), models = digits_setup(seed, args.epochs)
        if args.curve:
            for name, m in models.items(): judge(seed, name, m, x, y, epoch=args.epochs)
            def after_epoch(epoch, row, model, seed=seed, x=x, y=y):
                with torch.random.fork_rng():            # the attacker's random start must not change the training
                    judge(seed, 'IGAM defaults', model, x, y, label=f'IGAM defaults, epoch {epoch:3d}', epoch=epoch)
                model.train()
            set_seed(seed); m = create_model('smallcnn', dataset='digits')
            fit(m, IGAM(models['PGD-AT (teacher)']), loader, epochs=args.curve, seed=seed, progress=False, callbacks=(after_epoch,))
            continue
        if args.standard_noise is not None:            # the noise alone, without the matching: does it buy robustness?
            set_seed(seed); m = create_model('smallcnn', dataset='digits')
            fit(m, NoisyStandard(args.standard_noise), loader, epochs=args.epochs, seed=seed, progress=False)
            models[f'Standard input_noise={args.standard_noise:g}'] = m
        for v in args.variants:
            set_seed(seed); m = create_model('smallcnn', dataset='digits')
            recipe_kw, fit_kw = VARIANTS[v]
            epochs = args.student_epochs or args.epochs
            fit(m, IGAM(models['PGD-AT (teacher)'], **recipe_kw), loader, epochs=epochs, seed=seed, progress=False, **fit_kw)
            models[f'IGAM {v}' + (f', {epochs} epochs' if args.student_epochs else '')] = m
        for name, m in models.items(): judge(seed, name, m, x, y)
    df = pd.DataFrame(rows)
    keys = ['model', 'epoch'] if args.curve else 'model'
    summary = df.groupby(keys, sort=False)[['clean', 'pgd20']].agg(['mean', 'std']).round(1)
    print(summary.to_string())
    if args.csv: df.to_csv(args.csv, index=False)
    return df


if __name__ == '__main__':
    main()
