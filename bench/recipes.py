"""Training time per epoch of the gradient-matching recipes relative to PGD-10 adversarial training.

Each contender trains PreAct-ResNet-20 (32x32x3, batch 128, CPU) for one `robustnb.train.fit` epoch over the same few
batches of random images, so the numbers are time per training epoch on a small epoch:

- PGD-10 AT: `PGDAT(preset='cifar10')` (eps 8/255, 10 steps of 2/255, random start), the baseline;
- IGAM: `IGAM(teacher, preset='digits')`, its defaults (J = grad of the CE loss, discriminator 8-16-32-64 on normalized
  gradients, stepped every 5 batches; on 32x32 images the digits' weights must be asked for by name),
  and `IGAM(teacher, preset='cifar100/cifar10')` (IGAM App. A: 16-32-64-128-256, every 10 batches);
- Sarkar et al., phase 1: `SaliencyCurriculum(teacher, preset='cifar10')` in its first phase (J^TCI, a discriminator
  step every batch); phase 2 (two student gradients, the teacher's CE gradient for the default sign-consistent target,
  and two discriminators).

The teacher is another PreAct-ResNet-20 (no input transform). Contenders run in alternation, median of >= 5 rounds
(bench/common.py). `--channels-last` puts every network (the students, the baseline's model and the teacher) in
PyTorch's channels-last memory format, the one its convolution kernels prefer; the ratios then compare like with like.
Targets (the Sarkar/IGAM issue, presets included): IGAM <= 0.40x, Sarkar phase 1 <= 0.45x and phase 2 <= 0.65x a
PGD-10 AT epoch (the papers: IGAM 347 s vs 815 s for PGD-7, 0.43x; Sarkar about 20 % of AT's time).

    OMP_NUM_THREADS=1 python bench/recipes.py --csv bench/results/recipes_sarkar_igam.csv   # repository root, project env
    OMP_NUM_THREADS=1 python bench/recipes.py --channels-last --csv bench/results/recipes_sarkar_igam_channels_last.csv
    OMP_NUM_THREADS=1 python bench/recipes.py --malloc system --csv bench/results/recipes_sarkar_igam_malloc_system.csv
    OMP_NUM_THREADS=1 python bench/recipes.py --malloc keep --csv bench/results/recipes_sarkar_igam_malloc_keep.csv

`--malloc keep` (bench/common.py, `keep_freed_memory`) makes glibc keep freed memory for reuse, as a GPU's caching
allocator does; the page-fault count printed per contender shows what it changes: phase 2 keeps each step's gradients
alive until the double backward, and glibc's defaults hand the freed pages back and fault them in again every step.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, minor_page_faults, parse_bench_args, ratio_table, time_alternating  # noqa: E402

from robustnb.matching import IGAM, SaliencyCurriculum  # noqa: E402
from robustnb.models import create_model  # noqa: E402
from robustnb.recipes import PGDAT  # noqa: E402
from robustnb.train import fit  # noqa: E402

BATCH = 128


def contenders(batches, device='cpu', amp=None, channels_last=False):
    torch.manual_seed(0)
    data = (torch.rand(batches*BATCH, 3, 32, 32), torch.randint(0, 10, (batches*BATCH,)))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    network = lambda: create_model('preactresnet20', dataset='cifar10').to(memory_format=fmt)
    teacher = network().eval()
    sarkar2 = SaliencyCurriculum(teacher, preset='cifar10', phase1_epochs=0)
    recipes = {'PGD-10 AT': PGDAT(preset='cifar10'),
               'IGAM (defaults)': IGAM(teacher, preset='digits'),
               'IGAM (cifar100/cifar10 preset)': IGAM(teacher, preset='cifar100/cifar10'),
               'Sarkar phase 1 (cifar10 preset)': SaliencyCurriculum(teacher, preset='cifar10'),
               'Sarkar phase 2 (cifar10 preset)': sarkar2,
               # where phase 2's time goes: each variant drops one piece of work
               'Sarkar phase 2, literal target (no teacher CE gradient)': SaliencyCurriculum(teacher, preset='cifar10', phase1_epochs=0, phase2_target='literal'),
               'Sarkar phase 2, beta=0 (no discriminators)': SaliencyCurriculum(teacher, preset='cifar10', phase1_epochs=0, beta=0.0),
               'Sarkar phase 2, no alignment terms (one student gradient)': SaliencyCurriculum(teacher, preset='cifar10', phase1_epochs=0, keep_alignment_in_phase2=False)}
    fns = {}
    for name, recipe in recipes.items():
        model = network()
        fns[name] = (lambda m, r: lambda: fit(m, r, data, epochs=1, batch_size=BATCH, lr=0.01, device=device, amp=amp, progress=False))(model, recipe)
    return fns


def main(argv=None):
    p = bench_parser(__doc__, repeats=5)
    p.add_argument('--batches', type=int, default=3, help='batches of 128 per epoch (default 3)')
    p.add_argument('--channels-last', action='store_true', help='every network in the channels-last memory format')
    p.add_argument('--csv', default=None, help='also write contender, seconds, ratio, target and whether it is met')
    args = parse_bench_args(p, argv)
    print(f'torch {torch.__version__}, {args.device}, amp {args.amp or "off"}, {torch.get_num_threads()} threads; PreActResNet-20 32x32x3, batch {BATCH}, '
          f'{args.batches} batches per epoch, median of {args.repeats} alternating rounds, malloc {args.malloc}'
          + (', every network channels-last' if args.channels_last else ''))
    fns = contenders(args.batches, args.device, args.amp, args.channels_last)
    med = time_alternating(fns, repeats=args.repeats, warmup=1)
    faults = {k: minor_page_faults(f) for k, f in fns.items()}     # one more, untimed epoch each
    print()
    print(ratio_table(med, 'PGD-10 AT', title='seconds per training epoch, ratio to a PGD-10 AT epoch'))
    if args.device == 'cpu' and None not in faults.values():
        print()
        print(f'minor page faults per epoch (pages the C allocator handed out afresh; --malloc {args.malloc}):')
        for k, n in faults.items(): print(f'  {k:<62}{n:>10,}')
    targets = {'IGAM (defaults)': 0.40, 'IGAM (cifar100/cifar10 preset)': 0.40, 'Sarkar phase 1 (cifar10 preset)': 0.45,
               'Sarkar phase 2 (cifar10 preset)': 0.65}
    print()
    rows = []
    for name, sec in med.items():
        r, target = sec/med['PGD-10 AT'], targets.get(name)
        rows.append(dict(contender=name, seconds=round(sec, 3), ratio=round(r, 3), target=target,
                         met=None if target is None else r <= target, malloc=args.malloc, minor_page_faults=faults[name]))
        if target is not None: print(f'{name}: {r:.2f}x (target <= {target}x): {"met" if r <= target else "MISSED"}')
    if args.csv:
        import pandas as pd
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == '__main__':
    main()
