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
    p.add_argument('--malloc', choices=('system', 'keep'), default='system',
                   help="'system' (default): the C allocator as it comes; 'keep': glibc keeps freed memory for reuse "
                        "(keep_freed_memory), as a GPU's caching allocator does")
    return p


def keep_freed_memory(limit=1 << 30):
    """Make glibc's malloc keep freed blocks of up to `limit` bytes for reuse instead of handing them back to the system.

    By default glibc serves large blocks from fresh pages (mmap) or trims the top of its heap once enough of it is free,
    so a training step whose tensors outlive the allocator's reuse pattern touches new pages every time and pays a
    page fault (and the zeroing) for each 4 KiB. PyTorch's CUDA caching allocator never does that, and PyTorch's CPU
    tuning guide recommends jemalloc or tcmalloc for the same reason. The same settings from the shell, for any run:
    `MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 python ...`. Both thresholds must be set:
    fixing only the trim threshold turns off glibc's adaptive mmap threshold and makes every large block a fresh mmap."""
    import ctypes
    import ctypes.util
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3            # glibc's malloc.h
    try: mallopt = ctypes.CDLL(ctypes.util.find_library('c')).mallopt
    except (OSError, AttributeError, TypeError):
        raise SystemExit('--malloc keep: needs glibc (mallopt); on other systems preload jemalloc or tcmalloc instead') from None
    if not (mallopt(M_MMAP_THRESHOLD, limit) and mallopt(M_TRIM_THRESHOLD, limit)):
        raise SystemExit(f'--malloc keep: glibc refused mallopt thresholds of {limit} bytes')


def minor_page_faults(f):
    "Minor page faults of the process during one call of `f` (Unix; None elsewhere): pages the allocator touched afresh."
    try: import resource
    except ImportError: return None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


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
    "Parse the command line and apply --threads and --malloc."
    args = parser.parse_args(argv)
    if args.malloc == 'keep': keep_freed_memory()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    return args
