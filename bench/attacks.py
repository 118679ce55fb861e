"""PGD-10 (L-inf, eps=8/255, alpha=2/255, random start) time: robustnb vs torchattacks vs foolbox vs the floor.

The floor is what any PGD-10 must spend: 10 x (one forward pass + one backward pass with respect to the input), with the
model in eval mode and its parameters frozen. Models: SAT's SmallCNN on 28x28x1 inputs and PreAct-ResNet-20 on 32x32x3,
random weights, batch 128, CPU. Each contender is timed as the median of at least 5 runs, run in alternation
(bench/common.py). Targets: robustnb <= 1.00x torchattacks and <= 1.05x the floor.

torchattacks is not in robustnb's extras (it pins requests 2.25.1, which has CVE-2023-32681, and ships a top-level
`robustbench` folder), so run this in a throwaway venv outside the repository (about 1 minute and 5.5 GB):

    python3 -m venv /tmp/ta-venv
    /tmp/ta-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 torchattacks foolbox
    /tmp/ta-venv/bin/pip install --no-deps -e /path/to/robustnb
    /tmp/ta-venv/bin/python bench/attacks.py            # from the repository root

Without torchattacks (e.g. in the project venv) the script still times robustnb, foolbox and the floor. On a busy
machine `--threads 1` gives much steadier numbers (two OpenMP threads stall whenever another process holds a core).
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, parse_bench_args, ratio_table, time_alternating, under_amp  # noqa: E402

from robustnb.attacks import frozen_eval, pgd  # noqa: E402
from robustnb.models import create_model  # noqa: E402

EPS, ALPHA, STEPS, BATCH = 8/255, 2/255, 10, 128


def floor(model, x, y):
    "10 x (forward + backward w.r.t. the input): the least a 10-step gradient attack can cost."
    with frozen_eval(model), torch.enable_grad():
        for _ in range(STEPS):
            xr = x.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xr), y, reduction='sum'), xr)


def contenders(model, x, y):
    fns = {'floor: 10 x (fwd + bwd input)': lambda: floor(model, x, y),
           'robustnb pgd': lambda: pgd(model, x, y, EPS, ALPHA, steps=STEPS, seed=0)}
    try:
        import torchattacks
        atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
        fns['torchattacks PGD'] = lambda: atk(x, y)
    except ImportError:
        print('torchattacks is not installed here: see this script\'s docstring for the throwaway venv', file=sys.stderr)
    try:
        import foolbox
        fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
        fb = foolbox.attacks.LinfPGD(abs_stepsize=ALPHA, steps=STEPS, random_start=True)
        fns['foolbox LinfPGD'] = lambda: fb(fmodel, x, y, epsilons=EPS)
    except ImportError:
        print('foolbox is not installed here', file=sys.stderr)
    return fns


def main(argv=None):
    p = bench_parser(__doc__)
    p.add_argument('--models', default='smallcnn,prn20', help='comma-separated subset of smallcnn, prn20')
    args = parse_bench_args(p, argv)
    print(f'torch {torch.__version__}, {args.device}, amp {args.amp or "off"}, {torch.get_num_threads()} threads; PGD-{STEPS}, eps {EPS:.4f}, alpha {ALPHA:.4f}, batch {BATCH}')
    torch.manual_seed(0)
    setups = {'smallcnn': ('SmallCNN 28x28x1', lambda: create_model('smallcnn', dataset='mnist'), (1, 28, 28)),
              'prn20': ('PreActResNet-20 32x32x3', lambda: create_model('preactresnet20', dataset='cifar10'), (3, 32, 32))}
    for key in args.models.split(','):
        name, make, shape = setups[key]
        model = make().to(args.device)
        model.eval()
        x, y = torch.rand(BATCH, *shape, device=args.device), torch.randint(0, 10, (BATCH,), device=args.device)
        fns = under_amp(contenders(model, x, y), args)
        med = time_alternating(fns, repeats=args.repeats, warmup=2)
        print()
        print(ratio_table(med, 'floor: 10 x (fwd + bwd input)', title=f'{name}: ratio to the floor'))
        if 'torchattacks PGD' in med:
            print(f"{'robustnb / torchattacks':<32}{'':>12}{med['robustnb pgd']/med['torchattacks PGD']:>9.2f}x")


if __name__ == '__main__':
    main()
