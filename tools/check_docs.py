"""Render the processed notebooks (`_proc/*.ipynb`, written by tools/proc_docs.py) to HTML with nbconvert and list
what a reader of the docs site should never see in an output: a local path (a home, a virtualenv, site-packages, a
temporary folder), a traceback, or a warning box (stderr that carries a warning).

    python tools/check_docs.py [_proc]        # exit status 1 and one line per problem when there are any
"""
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

LOCAL_PATH = re.compile(r'(/(?:home|root|Users|work|tmp|private/var)/[\w.-]+|site-packages|\.venv\b|[A-Z]:\\\\Users)')
TRACEBACK = re.compile(r'Traceback \(most recent call last\)')   # Python's and IPython's tracebacks both open with it
WARNING = re.compile(r'\b\w*Warning\b|warnings\.warn')


class _Outputs(HTMLParser):
    "The text of each output area of an nbconvert HTML page, with whether it is stderr."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.outputs = [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get('class') or ''
        if 'jp-OutputArea-output' in cls.split():
            self.outputs.append({'stderr': a.get('data-mime-type') == 'application/vnd.jupyter.stderr', 'text': []})
            self.stack.append(len(self.outputs) - 1)
        else: self.stack.append(None)
    def handle_endtag(self, tag):
        if self.stack: self.stack.pop()
    def handle_data(self, data):
        for i in self.stack:
            if i is not None: self.outputs[i]['text'].append(data)


def render(nb_path):
    "The notebook as nbconvert's HTML page."
    import nbformat
    from nbconvert import HTMLExporter
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(str(nb_path), as_version=4))
    return html


def problems_in_html(html, name='page'):
    "One line per local path, traceback or warning box in the outputs of an HTML page."
    parser = _Outputs(); parser.feed(html)
    found = []
    for i, out in enumerate(parser.outputs):
        text = ''.join(out['text'])
        where = f'{name}, output {i + 1}'
        if (m := LOCAL_PATH.search(text)): found.append(f'{where}: a local path ({m.group(0)!r})')
        if TRACEBACK.search(text): found.append(f'{where}: a traceback')
        if out['stderr'] and WARNING.search(text): found.append(f'{where}: a warning box ({WARNING.search(text).group(0)})')
    return found


def main(folder='_proc'):
    pages = sorted(Path(folder).glob('*.ipynb'))
    if not pages: sys.exit(f'{folder}: no processed notebook (run tools/proc_docs.py first)')
    found = [p for nb in pages for p in problems_in_html(render(nb), nb.name)]
    print('\n'.join(found) if found else f'{len(pages)} pages: no local path, traceback or warning box in any output')
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
