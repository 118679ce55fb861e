"""The gradient-matching student's step with and without `robustnb.double_backward.fast_double_backward()`.

One step of IGAM's student (Chan et al. 2020, Eq. 13-14) on PreAct-ResNet-20 (32x32x3, batch 128, train mode, CPU):
forward, J = grad_x CE with a graph, backward of CE + ||J - J_t||^2 to the parameters. "PyTorch" records PyTorch's own
autograd nodes; "fast_double_backward" runs the forward pass inside the context (hand-written second derivatives of
convolution, batch norm and ReLU). A PGD-10 step (10 input-gradient passes + one training pass, parameters untracked
during the attack) is shown as the unit the recipes are compared with in bench/recipes.py. A second table times
Hessian-vector products as `robustnb.hessian` takes them (Pearlmutter's double backprop: the gradient graph once, then 5
products on it) on the same network in eval mode. Median of >= 5 alternating rounds (bench/common.py).

    OMP_NUM_THREADS=1 python bench/double_backward.py --threads 1      # from the repository root
"""
import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, parse_bench_args, ratio_table, time_alternating, under_amp  # noqa: E402

from robustnb.attacks import pgd  # noqa: E402
from robustnb.double_backward import fast_double_backward  # noqa: E402
from robustnb.models import create_model  # noqa: E402

BATCH = 128


def contenders(device='cpu'):
    torch.manual_seed(0)
    x, y = torch.rand(BATCH, 3, 32, 32, device=device), torch.randint(0, 10, (BATCH,), device=device)
    j_t = 1e-3*torch.randn_like(x)
    model = create_model('preactresnet20', dataset='cifar10').to(device).train()

    def student_step(fast):
        xg = x.clone().requires_grad_()
        with fast_double_backward() if fast else contextlib.nullcontext():
            logits = model(xg)
        (j,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction='sum'), xg, create_graph=True)
        model.zero_grad(set_to_none=True)
        (F.cross_entropy(logits, y) + 10*(j - j_t).pow(2).sum((1, 2, 3)).mean()).backward()

    def pgd_step():
        x_adv = pgd(model, x, y, eps=8/255, alpha=2/255, steps=10)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x_adv), y).backward()

    return {'PyTorch double backward': lambda: student_step(False),
            'fast_double_backward': lambda: student_step(True),
            'PGD-10 AT step (reference)': pgd_step}


def hvp_contenders(device='cpu', products=5):
    torch.manual_seed(0)
    x, y = torch.rand(BATCH, 3, 32, 32, device=device), torch.randint(0, 10, (BATCH,), device=device)
    model = create_model('preactresnet20', dataset='cifar10').to(device).eval()
    params = list(model.parameters())
    v = [torch.randn_like(p) for p in params]

    def products_on_graph(fast):
        with fast_double_backward() if fast else contextlib.nullcontext():
            loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        for _ in range(products): torch.autograd.grad(grads, params, v, retain_graph=True)

    return {'PyTorch double backward': lambda: products_on_graph(False),
            'fast_double_backward': lambda: products_on_graph(True)}


def main(argv=None):
    args = parse_bench_args(bench_parser(__doc__), argv)
    print(f'torch {torch.__version__}, {args.device}, amp {args.amp or "off"}, {torch.get_num_threads()} threads; PreActResNet-20 32x32x3, batch {BATCH}, train mode, '
          f'median of {args.repeats} alternating rounds')
    med = time_alternating(under_amp(contenders(args.device), args), repeats=args.repeats, warmup=1)
    print()
    print(ratio_table(med, 'PyTorch double backward', title='seconds per student step, ratio to PyTorch double backward'))
    med = time_alternating(under_amp(hvp_contenders(args.device), args), repeats=args.repeats, warmup=1)
    print()
    print(ratio_table(med, 'PyTorch double backward', title='Hessian-vector products, eval mode: gradient graph + 5 products'))


if __name__ == '__main__':
    main()
