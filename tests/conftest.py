import warnings

warnings.filterwarnings('ignore', message='IProgress not found')
