#!/usr/bin/env bash
# A notebook as a Colab user runs it: in a fresh virtualenv outside the repository, with robustnb installed by the
# notebook's own install cell (from this checkout, through ROBUSTNB_SOURCE) and none of the development tools
# (nbdev, execnb, fastcore, pytest, foolbox, pyhessian, jupyter): only PyTorch, IPython as the kernel, and what the
# install cell pulls in. Run from anywhere:  bash tools/notebook_outside.sh [nbs/13_papers.ipynb]
#   TORCH_SPEC  what to pip-install for PyTorch first (default: the builds on this machine's disk)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
nb=${1:-nbs/13_papers.ipynb}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
# shellcheck disable=SC2086
pip install -q $TORCH_SPEC ipython 2>&1 | grep -v "^WARNING: Location" || true
cp "$repo/$nb" "$work/"
cd "$work"
python -c 'import robustnb' 2>/dev/null && { echo "robustnb is already importable: the install cell would not run" >&2; exit 1; }
MPLBACKEND=Agg ROBUSTNB_SOURCE="$repo" python "$repo/tools/run_notebook.py" "$(basename "$nb")"
dev=$(pip list --format=freeze 2>/dev/null | grep -iE '^(nbdev|execnb|fastcore|pytest|foolbox|pyhessian|jupyterlab|torchattacks)==' || true)
[ -z "$dev" ] || { echo "development tools got installed: $dev" >&2; exit 1; }
echo "ran outside the repository with no development tool installed"
