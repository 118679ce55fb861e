import re
import warnings

import pytest

warnings.filterwarnings('ignore', message='IProgress not found')


def pytest_configure(config):
    # pytest-xdist registers it too; declared here so that a run without xdist does not warn
    config.addinivalue_line('markers', 'xdist_group(name): tests sharing a module fixture, run in one pytest-xdist worker')
    config.addinivalue_line('markers', 'gpu: needs a CUDA device (skipped without one); `pytest -m gpu` runs only these')
    if config.getoption('dist', 'no') == 'loadgroup' and not hasattr(config, 'workerinput') and _groups_lost():
        raise pytest.UsageError(f"--dist loadgroup: pytest {pytest.__version__} with pytest-xdist {_xdist_version()} drops "
                                "the xdist_group marks (pytest-dev/pytest-xdist#1386), so tests sharing a module fixture "
                                "would run in several workers; install 'pytest<9.2', as the development requirements say")


def _version(v):
    return tuple(int(n) for n in re.findall(r'\d+', v)[:2])


def _xdist_version():
    import xdist
    return xdist.__version__


def _groups_lost():
    "pytest >= 9.2 ignores the node ids pytest-xdist <= 3.8 rewrites to carry a group."
    return _version(pytest.__version__) >= (9, 2) and _version(_xdist_version()) <= (3, 8)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    "In a `--dist loadgroup` worker, fail (loudly, if not clearly) when xdist's groups were lost all the same."
    result = yield
    if getattr(config.option, 'loadgroup', False):
        lost = [item.nodeid for item in items if item.get_closest_marker('xdist_group') and '@' not in item.nodeid]
        if lost:
            raise pytest.UsageError(f'--dist loadgroup: pytest {pytest.__version__} dropped the xdist_group of {len(lost)} tests '
                                    f'(e.g. {lost[0]}), so tests sharing a module fixture would run in several workers; '
                                    "install 'pytest<9.2' (pytest-dev/pytest-xdist#1386)")
    return result
