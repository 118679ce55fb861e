"""Why PGD-AT at eps = 0.3 sticks at chance: live ReLUs of SAT's MNIST network in the first steps of the 'mnist' preset.

Not a timing. For each SmallCNN layout (`'sat'`, `'cleverhans'`) with and without MNIST's (0.1307, 0.3081)
normalization, it takes the first `--steps` SGD steps of `PGDAT(preset='mnist')` (SGD 0.01, momentum 0.9, weight decay
5e-4, batch 128, PGD-40 with step 0.02 from a uniform start at eps 0.3) on the MNIST-shaped digits of
`mnist_presets.upsampled` and prints, every `--every` steps, the adversarial loss, the share of the third convolution's
ReLUs that are active on the clean batch, and the spread of the logits over the batch (0 when the network answers every
input alike: chance accuracy, loss ln 10 = 2.3026). A ReLU that no input activates gets no gradient again: once all
are dead the network cannot leave chance, whatever the schedule does later.

    python bench/mnist_relus.py                       # all four networks, 40 steps
    python bench/mnist_relus.py --steps 80 --layouts sat --norms raw
    python bench/mnist_relus.py --checkpoint CKPT/last.pt   # a saved fit checkpoint of mnist_presets.py instead

`--checkpoint` inspects the SmallCNN ('sat' layout, raw pixels) of a `fit` checkpoint written by `mnist_presets.py
--checkpoint-dir` after some epochs: per ReLU layer the share of activations that are on and the share of units that any
training digit switches on, clean and under the preset's PGD-40, the spread of the logits, and the norm of every
parameter's gradient of the adversarial loss on the first 512 training digits. Units that some input switches on still
carry gradient, so the state is not absorbing: whether the run leaves chance later is for the full schedule to show.
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from mnist_presets import upsampled  # noqa: E402

NORMS = {'raw': ((0.0,), (1.0,)), 'mnist': ((0.1307,), (0.3081,))}


def accuracy(model, x, y, eps=None, steps=40, alpha=0.01):
    "Clean accuracy (%) of `model` on `x`, or PGD-`steps` accuracy (step `alpha`, uniform start) at `eps`."
    from robustnb.attacks import pgd
    model.eval()
    if eps is not None: x = pgd(model, x, y, eps, alpha, steps)
    with torch.no_grad(): return 100*(model(x).argmax(1) == y).float().mean().item()


def run(layout, norm, steps, every, eps, seed, x, y, test=None, pgd_every=0):
    """The first `steps` of PGD-AT with the MNIST preset (its first phase: lr 0.01 throughout); one row per `every` steps.
    With `test` = (x, y) each row also gives the clean test accuracy, and every `pgd_every` steps the PGD-40 accuracy
    (step 0.01, uniform start, at `eps`) on those test digits."""
    from robustnb.models import create_model
    from robustnb.recipes import PGDAT
    from robustnb.train import resolve_fit_config, set_seed
    set_seed(seed)
    mean, std = NORMS[norm]
    model = create_model('smallcnn', dataset='mnist', layout=layout, mean=mean, std=std)
    recipe = PGDAT(preset='mnist', eps=eps)
    cfg = resolve_fit_config(recipe)
    opt = torch.optim.SGD(model.parameters(), lr=cfg['lr'], momentum=cfg['momentum'], weight_decay=cfg['weight_decay'])
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in range(1, steps + 1):
        idx = torch.randperm(len(y), generator=g)[:cfg['batch_size']]
        xb, yb = x[idx], y[idx]
        model.train()
        loss = recipe.loss(model, xb, yb, 0.0)['loss']
        opt.zero_grad(); loss.backward(); opt.step()
        if t % every == 0 or t == 1:
            model.eval()
            with torch.no_grad():
                h = F.relu(model.conv3(model.feature_maps(xb)))
                logits = model.fc(torch.flatten(h, 1))
            clean = accuracy(model, *test) if test is not None else float('nan')
            rob = accuracy(model, *test, eps=eps) if test is not None and pgd_every and t % pgd_every == 0 else float('nan')
            rows.append((t, loss.item(), (h > 0).float().mean().item(), logits.std(0).mean().item(), clean, rob))
            print(f'{layout:>10} {norm:>5} {t:5d} {loss.item():9.4f} {100*rows[-1][2]:8.1f} {rows[-1][3]:10.4f} '
                  f'{clean:8.1f} {rob:6.1f}', flush=True)
    return rows


def inspect_checkpoint(path, eps, style, seed=0, batch=256):
    "The `--checkpoint` report (see the module's docstring): one line per layer and input kind, then the gradient norms."
    from robustnb.attacks import pgd
    from robustnb.models import create_model
    from robustnb.recipes import PGDAT
    ck = torch.load(path, map_location='cpu', weights_only=False)
    model = create_model('smallcnn', dataset='mnist', layout='sat')
    model.load_state_dict(ck['model'])
    model.eval()
    x, y = upsampled('train', style)
    recipe = PGDAT(preset='mnist', eps=eps)
    torch.manual_seed(seed)
    adv = torch.cat([pgd(model, x[i:i + batch], y[i:i + batch], recipe.eps, recipe.alpha, recipe.steps)
                     for i in range(0, len(y), batch)])
    print(f'{path}: epoch {ck["epoch"]} of {ck["epochs"]}, history {ck["history"][-1]}')
    print(f"{'input':>6} {'layer':>6} {'on %':>7} {'units on %':>11} {'max':>7} {'logit sd':>9}")
    for kind, xs in (('clean', x), ('PGD-40', adv)):
        with torch.no_grad():
            a1 = F.relu(model.conv1(model.normalize(xs)))
            a2 = F.relu(model.conv2(a1))
            a3 = F.relu(model.conv3(a2))
            sd = model.fc(torch.flatten(a3, 1)).std(0).mean().item()
        for name, a in (('conv1', a1), ('conv2', a2), ('conv3', a3)):
            print(f'{kind:>6} {name:>6} {100*(a > 0).float().mean().item():7.2f} '
                  f'{100*(a > 0).flatten(1).any(0).float().mean().item():11.2f} {a.max().item():7.3f} {sd:9.5f}')
    model.zero_grad()
    F.cross_entropy(model(adv[:512]), y[:512]).backward()
    print('gradient norms of the adversarial loss (first 512 training digits): '
          + ', '.join(f'{n} {p.grad.norm().item():.2e}' for n, p in model.named_parameters()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--layouts', nargs='+', default=['cleverhans', 'sat'], choices=['sat', 'cleverhans'])
    p.add_argument('--norms', nargs='+', default=['mnist', 'raw'], choices=list(NORMS))
    p.add_argument('--steps', type=int, default=40)
    p.add_argument('--every', type=int, default=10)
    p.add_argument('--eps', type=float, default=0.3)
    p.add_argument('--style', choices=('mnist', 'bilinear'), default='mnist')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--test', type=int, default=0, help='also report accuracy on the first N test digits (0: none)')
    p.add_argument('--pgd-every', type=int, default=0, help='PGD-40 accuracy on those digits every N steps (0: never)')
    p.add_argument('--checkpoint', default=None, help="inspect this fit checkpoint of mnist_presets.py instead (see above)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.checkpoint: return inspect_checkpoint(args.checkpoint, args.eps, args.style, args.seed)
    x, y = upsampled('train', args.style)
    test = None
    if args.test: test = tuple(t[:args.test] for t in upsampled('test', args.style))
    print(f'PGDAT(preset=mnist, eps={args.eps}) on {len(y)} MNIST-shaped digits ({args.style!r} style), seed {args.seed}')
    print(f"{'layout':>10} {'norm':>5} {'step':>5} {'adv loss':>9} {'live %':>8} {'logit sd':>10} {'clean %':>8} {'PGD %':>6}")
    for layout in args.layouts:
        for norm in args.norms:
            run(layout, norm, args.steps, args.every, args.eps, args.seed, x, y, test, args.pgd_every)


if __name__ == '__main__':
    main()
