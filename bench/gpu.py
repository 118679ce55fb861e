"""The GPU path, measured: PGD-10 of robustnb vs torchattacks, mixed precision and torch.compile on and off, and images per
second of PGD-AT training steps (PGD-10, eps 8/255) for PreAct-ResNet-20 and WideResNet-34-10 on CIFAR-shaped batches.

Run on a machine with a GPU, from the repository root:  python bench/gpu.py        (about 3-4 minutes on one H100)
`--device cpu --small` runs the same code on a CPU with small settings, to check the script itself.

Each training configuration is timed over `--steps` optimizer steps after `--warmup` steps (compilation and cuDNN's
autotuning happen in the warm-up), with the device synchronized around the timed window. The training step is the one
`fit` takes: the recipe's loss under autocast when `amp` is set, the fp16 gradient scaler, SGD. Attacks: the median of
alternating runs (bench/common.py). Not a test: numbers depend on the GPU, the driver and the other jobs on the machine.
"""
import contextlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import _sync, bench_parser, parse_bench_args, ratio_table, time_alternating  # noqa: E402

from robustnb.attacks import pgd  # noqa: E402
from robustnb.models import create_model  # noqa: E402
from robustnb.recipes import PGDAT  # noqa: E402
from robustnb.train import AMP_DTYPES  # noqa: E402

EPS, ALPHA, STEPS = 8/255, 2/255, 10


def train_steps_per_second(model, x, y, amp, compile_, steps, warmup):
    "Optimizer steps per second of PGD-AT (fit's step: autocast, scaler, SGD) on one fixed batch."
    recipe = PGDAT(eps=EPS, alpha=ALPHA, steps=STEPS)
    dev = x.device
    train_model = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == 'fp16')
    autocast = (lambda: torch.autocast(dev.type, dtype=AMP_DTYPES[amp])) if amp else contextlib.nullcontext
    def step():
        model.train()
        with autocast(): loss = recipe.loss(train_model, x, y, 0.0)['loss']
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    for _ in range(warmup): step()
    _sync(); t = time.perf_counter()
    for _ in range(steps): step()
    _sync()
    return steps/(time.perf_counter() - t)


def main(argv=None):
    p = bench_parser(__doc__, repeats=5)
    p.add_argument('--small', action='store_true', help='small batches and few steps (to check the script on a CPU)')
    p.add_argument('--steps', type=int, default=None, help='timed training steps per configuration (default 20; 2 with --small)')
    p.add_argument('--warmup', type=int, default=None, help='untimed steps first (default 5; 1 with --small)')
    args = parse_bench_args(p, argv)
    if args.amp: p.error('--amp: this script times float32 and bf16 side by side; leave --amp out')
    dev = torch.device(args.device)
    batch = 16 if args.small else 128
    steps, warmup = args.steps or (2 if args.small else 20), args.warmup or (1 if args.small else 5)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'
    print(f'{name}, torch {torch.__version__}; PGD-{STEPS} eps {EPS:.4f}, batch {batch}')
    torch.manual_seed(0)
    wrn = 'wrn-16-2' if args.small else 'wrn-34-10'      # --small checks the script, not WRN-34-10's speed
    models = {'PreAct-ResNet-20': lambda: create_model('preactresnet20', dataset='cifar10'),
              f'WideResNet-{wrn[4:]}': lambda: create_model(wrn, dataset='cifar10')}
    x = torch.rand(batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    # --- the attack alone: robustnb vs torchattacks, fp32 and bf16
    model = models['PreAct-ResNet-20']().to(dev).eval()
    fns = {'robustnb pgd fp32': lambda: pgd(model, x, y, EPS, ALPHA, STEPS, seed=0)}
    def bf16_pgd():
        with torch.autocast(dev.type, dtype=torch.bfloat16): return pgd(model, x, y, EPS, ALPHA, STEPS, seed=0)
    fns['robustnb pgd bf16 autocast'] = bf16_pgd
    try:
        import torchattacks
        atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
        fns['torchattacks PGD fp32'] = lambda: atk(x, y)
    except ImportError:
        print('(torchattacks is not installed: see bench/attacks.py for a throwaway venv)')
    med = time_alternating(fns, repeats=args.repeats, warmup=2)
    print()
    print(ratio_table(med, 'robustnb pgd fp32', title=f'PreAct-ResNet-20, PGD-{STEPS} on a batch of {batch}'))

    # --- PGD-AT training steps: images per second
    print(f'\n{"model":<20}{"amp":>6}{"compile":>9}{"images/s":>12}{"s per CIFAR-10 epoch":>24}')
    for mname, make in models.items():
        for amp in (None, 'bf16'):
            for compile_ in (False, True):
                torch.manual_seed(0)
                m = make().to(dev)
                try:
                    sps = train_steps_per_second(m, x, y, amp, compile_, steps, warmup)
                    ips = sps*batch
                    print(f'{mname:<20}{amp or "-":>6}{str(compile_):>9}{ips:>12.0f}{50000/ips:>24.0f}', flush=True)
                except Exception as e:                       # e.g. no compiler for torch.compile on this machine
                    print(f'{mname:<20}{amp or "-":>6}{str(compile_):>9}{"failed":>12}  {type(e).__name__}: {str(e)[:80]}')
                del m
                if dev.type == 'cuda': torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
