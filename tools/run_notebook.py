"""Run a notebook's code cells top to bottom in one IPython shell, as Colab's "Run all" does, and stop at the first
error with the cell's number and the traceback. Needs only IPython (what any notebook kernel has), not nbdev.

    python tools/run_notebook.py path/to/notebook.ipynb
"""
import json
import sys
from pathlib import Path


def run(path):
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    cells = [c for c in json.loads(Path(path).read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'code']
    for i, c in enumerate(cells):
        src = ''.join(c['source'])
        result = shell.run_cell(src, store_history=False)
        if not result.success:
            print(f'\n{path}: code cell {i + 1} of {len(cells)} failed:\n{src}', file=sys.stderr)
            return 1
    print(f'{path}: {len(cells)} code cells ran')
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 2: sys.exit(__doc__)
    sys.exit(run(sys.argv[1]))
