"""Shared benchmark helpers: the command line, alternating repeated timing and a ratio table."""
import argparse
import statistics
import time


def _sync():
    "Wait for queued CUDA work, so that a timing covers the kernels a call launched (a no-op without CUDA)."
    import torch
    if torch.cuda.is_available(): torch.cuda.synchronize()


def time_alternating(fns, repeats=5, warmup=1):
    """Median seconds per call of each function in the dict `fns`, run in alternation (A, B, A, B, ...).

    Every function is called `warmup` times first (lazy initialization, allocator warm-up), then `repeats` rounds."""
    if repeats < 5: raise ValueError(f'repeats: expected at least 5, got {repeats}')
    for f in fns.values():
        for _ in range(warmup): f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            _sync(); t = time.perf_counter(); f(); _sync(); times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def ratio_table(medians, baseline, title=''):
    "A plain-text table of medians and their ratio to `baseline` (a key of `medians`)."
    rows = [f'{title}'] if title else []
    w = max(32, *(len(k) + 2 for k in medians))           # long names keep the columns aligned
    rows.append(f'{"contender":<{w}}{"median s":>12}{"ratio":>10}')
    for k, v in medians.items():
        rows.append(f'{k:<{w}}{v:>12.4f}{v / medians[baseline]:>9.2f}x')
    return '\n'.join(rows)


def bench_parser(doc, repeats=7):
    "An argument parser described by the first line of `doc`, with the options every script has: --repeats, --threads, --device, --amp."
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument('--repeats', type=int, default=repeats, help=f'alternating rounds (>= 5; default {repeats})')
    p.add_argument('--threads', type=int, default=None, help="torch intra-op threads (default: torch's default)")
    p.add_argument('--device', default='cpu', help="where models and data live: 'cpu' (default) or 'cuda'")
    p.add_argument('--amp', choices=('bf16', 'fp16'), default=None,
                   help="time every contender under torch.autocast with this dtype (default: float32)")
    return p


def under_amp(fns, args):
    "Each function of `fns` run under `torch.autocast(args.device, args.amp)`; `fns` itself when --amp is not given."
    if not args.amp: return fns
    import torch
    dtype, dev = {'bf16': torch.bfloat16, 'fp16': torch.float16}[args.amp], torch.device(args.device).type
    def wrap(f):
        def run():
            with torch.autocast(dev, dtype=dtype): return f()
        return run
    return {k: wrap(f) for k, f in fns.items()}


def parse_bench_args(parser, argv=None):
    "Parse the command line and apply --threads."
    args = parser.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    return args
