"""Hessian benchmarks: top eigenvalue of robustnb vs PyHessian 0.1, the two Hessian-vector-product methods, the trace,
and the cost of SAT's Taylor bounds in units of one forward+backward pass.

Run from the repository root with the project's environment: `python bench/hessian.py [--repeats 7]`.
PyHessian is a dev requirement of the project (`pip install pyhessian`); nothing else is needed.

Setup: SAT's SmallCNN trained for 3 epochs on the embedded digits, one batch of 32 training images, tol 1e-3, at most 100
iterations, CPU, the model in eval mode for both libraries (PyHessian puts it there itself). PyHessian runs power
iteration and stops when its estimate moves by less than tol between iterations; robustnb runs Lanczos (its default)
and stops on the same rule or on the gap theorem's error estimate, whichever comes first; its power iteration
(`algorithm='power'`) starts from PyHessian's vector and runs the same iterations. The table prints the
Hessian-vector products each took and each result's relative error against a tol-1e-9 reference, so that equal
tolerance can be checked as equal (or better) accuracy. The trace: both libraries average the same number of
Rademacher probes (different draws), printed with their standard errors; robustnb's default (forward-over-forward) and
its double backprop use the same probes, so their estimates must agree to rounding. Contenders run alternately
(A, B, A, B, ...), median of `--repeats` runs (see common.py).
"""
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_bench_args, ratio_table, time_alternating  # noqa: E402

from robustnb.data import load_dataset  # noqa: E402
from robustnb.hessian import (_HessianOperator, hessian_trace, hvp, per_sample_eigen_estimate,  # noqa: E402
                              taylor_bounds, top_eigenvalues)
from robustnb.models import create_model  # noqa: E402
from robustnb.train import set_seed, train_standard  # noqa: E402


def pyhessian_top(model, x, y, tol):
    "PyHessian's top eigenvalue from scratch (graph included); returns (value, number of Hessian-vector products)."
    import pyhessian
    module = sys.modules['pyhessian.hessian']
    calls = [0]
    product = module.hessian_vector_product
    def counted(*args, **kwargs):
        calls[0] += 1
        return product(*args, **kwargs)
    module.hessian_vector_product = counted
    try:
        model.zero_grad(set_to_none=True)          # PyHessian accumulates into .grad: start clean every run
        torch.manual_seed(0)
        values, _ = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(maxIter=100, tol=tol)
        model.zero_grad(set_to_none=True)
    finally:
        module.hessian_vector_product = product
    return values[0], calls[0]


def pyhessian_trace(model, x, y, n):
    import pyhessian
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    draws = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).trace(maxIter=n, tol=-1.0)
    model.zero_grad(set_to_none=True)
    return sum(draws) / len(draws)


def main(repeats=7):
    digits = load_dataset('digits')
    set_seed(0)
    model = create_model('smallcnn', dataset='digits')
    train_standard(model, DataLoader(digits, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)),
                   epochs=3, progress=False)
    model.eval().zero_grad(set_to_none=True)
    x, y = digits.images[:32], digits.labels[:32]
    tol = 1e-3
    print(f'SmallCNN on digits, {sum(p.numel() for p in model.parameters()):,} parameters, batch {len(x)}, tol {tol}, '
          f'{torch.get_num_threads()} threads, median of {repeats} alternating runs\n')

    # --- top eigenvalue
    reference = top_eigenvalues(model, x, y, tol=1e-9, max_iter=60, progress=False).values[0].item()
    runs = {'robustnb double_backprop': dict(tol=tol, progress=False),          # no bar: not part of the timing
            'robustnb forward_over_reverse': dict(tol=tol, method='forward_over_reverse', progress=False),
            'robustnb power iteration': dict(tol=tol, algorithm='power', progress=False)}
    ours = {name: top_eigenvalues(model, x, y, **kw) for name, kw in runs.items()}
    ph_value, ph_iters = pyhessian_top(model, x, y, tol)
    fns = {'PyHessian 0.1': lambda: pyhessian_top(model, x, y, tol)}
    fns.update({name: (lambda kw: lambda: top_eigenvalues(model, x, y, **kw))(kw) for name, kw in runs.items()})
    t = time_alternating(fns, repeats=repeats)
    print(ratio_table(t, 'PyHessian 0.1', 'top eigenvalue, total time (gradient graph + products)'))
    print(f'\n{"contender":<32}{"eigenvalue":>12}{"rel. error":>12}{"products":>10}{"ms/product":>12}   (reference {reference:.5f})')
    results = {'PyHessian 0.1': (ph_value, ph_iters)}
    results.update({name: (e.values[0].item(), e.iterations[0]) for name, e in ours.items()})
    for k, (v, it) in results.items():
        print(f'{k:<32}{v:>12.5f}{abs(v - reference) / abs(reference):>12.1e}{it:>10d}{1000 * t[k] / it:>12.2f}')

    # --- one Hessian-vector product
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=gen) for p in model.parameters()]
    op = _HessianOperator(model, [(x, y)])
    fns = {'forward+backward': lambda: torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters())),
           'hvp double_backprop': lambda: hvp(model, x, y, v),
           'hvp forward_over_reverse': lambda: hvp(model, x, y, v, method='forward_over_reverse'),
           'product on a kept graph': lambda: op(v)}
    print('\n' + ratio_table(time_alternating(fns, repeats=repeats), 'forward+backward',
                             'one Hessian-vector product, in units of one forward+backward pass'))

    # --- trace
    n = 30
    fns = {'PyHessian 0.1 trace': lambda: pyhessian_trace(model, x, y, n),
           'robustnb forward_over_forward': lambda: hessian_trace(model, x, y, n_samples=n, progress=False),
           'robustnb double_backprop': lambda: hessian_trace(model, x, y, n_samples=n, method='double_backprop',
                                                             progress=False)}
    print('\n' + ratio_table(time_alternating(fns, repeats=repeats), 'PyHessian 0.1 trace', f'Hutchinson trace, {n} probes'))
    import statistics
    model.zero_grad(set_to_none=True); torch.manual_seed(0)
    import pyhessian
    draws = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).trace(maxIter=n, tol=-1.0)
    model.zero_grad(set_to_none=True)
    fof = hessian_trace(model, x, y, n_samples=n, progress=False)
    db = hessian_trace(model, x, y, n_samples=n, method='double_backprop', progress=False)
    assert fof.method == 'forward_over_forward'
    print(f'estimates: PyHessian {statistics.mean(draws):.2f} +- {statistics.stdev(draws) / n**0.5:.2f} (its own probes), '
          f'robustnb {fof.mean:.2f} +- {fof.std_error:.2f} (forward-over-forward) and {db.mean:.2f} +- {db.std_error:.2f} '
          f'(double backprop) on the same probes: relative difference {abs(fof.mean - db.mean) / abs(db.mean):.1e}')

    # --- the trace on a network with batch norm and residual additions
    torch.manual_seed(0)
    prn = create_model('preactresnet20', dataset='cifar10').eval()
    xc, yc = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    fns = {'double_backprop': lambda: hessian_trace(prn, xc, yc, n_samples=10, method='double_backprop', progress=False),
           'forward_over_forward': lambda: hessian_trace(prn, xc, yc, n_samples=10, progress=False)}
    print('\n' + ratio_table(time_alternating(fns, repeats=max(5, repeats // 3)), 'double_backprop',
                             'Hutchinson trace on PreAct ResNet-20 (untrained), 16 random 32x32 images, 10 probes'))

    # --- SAT's Taylor bounds
    xb, yb = digits.images[:128], digits.labels[:128]
    fns = {'forward+backward (32)': lambda: torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters())),
           'taylor_bounds (32)': lambda: taylor_bounds(model, x, y),
           'forward+backward (128)': lambda: torch.autograd.grad(F.cross_entropy(model(xb), yb), list(model.parameters())),
           'per_sample_eigen_estimate sat (128)': lambda: per_sample_eigen_estimate(model, xb, yb, estimator='sat', sub_batch=32),
           'per_sample_eigen_estimate own (128)': lambda: per_sample_eigen_estimate(model, xb, yb, sub_batch=32)}
    t = time_alternating(fns, repeats=repeats)
    print(f'\nSAT Taylor bounds, cost in forward+backward passes of the same batch')
    print(f'{"taylor_bounds, batch 32":<96}{t["taylor_bounds (32)"] / t["forward+backward (32)"]:>6.2f}')
    for est, what in (('sat', "SAT's heuristic, estimator='sat'"), ('own', "each sample's own gradient, the default 'own'")):
        print(f'{f"per_sample_eigen_estimate, batch 128, sub_batch 32, {what}":<96}'
              f'{t[f"per_sample_eigen_estimate {est} (128)"] / t["forward+backward (128)"]:>6.2f}')


if __name__ == '__main__':
    args = parse_bench_args(bench_parser(__doc__))
    main(args.repeats)
