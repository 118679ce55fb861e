import warnings

warnings.filterwarnings('ignore', message='IProgress not found')


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA device (skipped without one); `pytest -m gpu` runs only these')
