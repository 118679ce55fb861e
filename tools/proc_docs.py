"""Process the notebooks for the docs site (into `_proc/`) as `nbdev_proc_nbs` does, minus its first step: nbdev
2.4.14's `nbdev_proc_nbs` installs Quarto (with sudo) when it is missing, which also reinstalls the project into the
active environment. Processing needs no Quarto; rendering the site (`nbdev_preview`, `nbdev_docs`) does.

    python tools/proc_docs.py [--force]      # from the repository root; --force ignores nbdev's cache
"""
import sys

import nbdev.doclinks
from nbdev.config import get_config
from nbdev.quarto import nbdev_sidebar, proc_nbs, refresh_quarto_yml


def main(force=False, n_workers=1):
    cfg = get_config()
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    return proc_nbs(cfg.nbs_path, n_workers=n_workers, force=force)


if __name__ == '__main__':
    print(main(force='--force' in sys.argv[1:]))
