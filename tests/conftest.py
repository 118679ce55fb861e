import warnings

warnings.filterwarnings('ignore', message='IProgress not found')


def pytest_configure(config):
    # pytest-xdist registers it too; declared here so that a run without xdist does not warn
    config.addinivalue_line('markers', 'xdist_group(name): tests sharing a module fixture, run in one pytest-xdist worker')
    config.addinivalue_line('markers', 'gpu: needs a CUDA device (skipped without one); `pytest -m gpu` runs only these')


# Longest units of work first (pytest-xdist balances best that way): the smoke reproduction of every paper, then the
# other groups that share a module fixture, then single tests in their usual order (a stable sort). Started first, the
# smoke run goes on in one worker while the other works through the rest, instead of holding up the end.
FIRST = 'smoke-all'


def pytest_collection_modifyitems(config, items):
    def rank(item):
        groups = [m.args[0] for m in item.iter_markers('xdist_group') if m.args]
        return 0 if FIRST in groups else 1 if groups else 2
    items.sort(key=rank)
