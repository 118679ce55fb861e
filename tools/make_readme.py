#!/usr/bin/env python3
"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does, without Quarto, which cannot be installed here).

Markdown cells are copied; code cells become ```python blocks followed by their stored text outputs; cells marked
`#| hide` are dropped and `#|` directive lines removed. `--check` exits 1 when README.md is not what this would write.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'


def _source(cell):
    src = cell['source']
    return ''.join(src) if isinstance(src, list) else src


def _directives(src):
    return {l[3:].strip().split()[0] for l in src.splitlines() if l.startswith('#|') and l[3:].strip()}


def _outputs(cell):
    texts = []
    for out in cell.get('outputs', []):
        if out['output_type'] == 'stream' and out.get('name') == 'stdout': texts.append(''.join(out['text']))
        elif out['output_type'] in ('execute_result', 'display_data') and 'text/plain' in out.get('data', {}):
            if 'image/png' in out['data']: continue          # figures are not inlined in the README
            texts.append(''.join(out['data']['text/plain']) + '\n')
    return ''.join(texts).rstrip('\n')


def render(nb_path):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = _source(cell)
        if cell['cell_type'] == 'markdown':
            parts.append(src.strip('\n'))
        elif cell['cell_type'] == 'code':
            if 'hide' in _directives(src): continue
            code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip('\n')
            if code: parts.append(f'```python\n{code}\n```')
            out = _outputs(cell)
            if out: parts.append(f'```\n{out}\n```')
    return HEADER + '\n\n'.join(parts) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true', help='exit 1 if README.md is stale instead of writing it')
    args = p.parse_args(argv)
    text = render(ROOT/'nbs'/'index.ipynb')
    readme = ROOT/'README.md'
    if args.check:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            print('README.md is stale: run `python tools/make_readme.py` and commit it', file=sys.stderr)
            return 1
        return 0
    readme.write_text(text, encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
