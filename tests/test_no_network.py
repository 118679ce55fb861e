"""No code path touches the network unless download=True: every socket is blocked while the library runs."""
import socket

import pytest
import torch

from robustnb.data import DATASETS, get_loaders, load_dataset
from robustnb.models import create_model


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError('network access attempted during a test')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket.socket, 'connect_ex', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)
    return attempts


def test_blocker_works(no_network):
    import urllib.request
    with pytest.raises(Exception):
        urllib.request.urlopen('http://example.com', timeout=1)
    assert no_network


@pytest.mark.parametrize('name', [n for n in DATASETS if n != 'digits'])
def test_missing_dataset_fails_offline(no_network, tmp_path, name):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset(name, root=tmp_path)
    assert str(tmp_path) in str(e.value) and 'download=True' in str(e.value)
    assert no_network == []


def test_digits_models_and_training_offline(no_network):
    train, test = get_loaders('digits', batch_size=64)
    assert len(train.dataset) == 1257 and len(test.dataset) == 540
    for name, ds in [('smallcnn', 'digits'), ('preactresnet20', 'cifar10'), ('wrn-16-1', 'cifar100'),
                     ('resnet18', 'tinyimagenet'), ('resnet34', 'cifar10')]:
        model = create_model(name, dataset=ds)
        assert model(torch.rand(1, *next(iter([(1, 8, 8)] if ds == 'digits' else [(3, 64, 64)] if ds == 'tinyimagenet'
                                              else [(3, 32, 32)])))).shape[0] == 1
    from robustnb.cli import quickstart
    assert quickstart(epochs=1, progress=False)['accuracy'] > 0.5
    assert no_network == []
