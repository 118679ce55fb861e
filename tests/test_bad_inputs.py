"""Every public function and class of robustnb (the `__all__` of every module) meets each class of bad input with a
`ValueError` or `TypeError` that names the argument: no raw error from inside PyTorch, no silent wrong result, no
memory blow-up. A missing file may be a `FileNotFoundError` naming it.

The walk: `CASES` holds, for every public callable, a valid call (its keyword arguments) and the class of each argument
it validates; each class has its bad values in `BAD`. `test_every_public_callable_is_walked` keeps the table complete:
a new public function without a case (or an explicit exemption with its reason) fails it."""
import atexit
import contextlib
import importlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from robustnb.models import SmallCNN, create_model

MODULES = ('checks', 'data', 'models', 'attacks', 'double_backward', 'saliency', 'losses', 'curriculum', 'hessian', 'train',
           'recipes', 'matching', 'evaluate', 'landscape', 'plots', 'cli', 'papers')

torch.manual_seed(0)
M = SmallCNN(num_classes=10, in_channels=1, input_size=8).eval()
X = torch.rand(4, 1, 8, 8)
Y = torch.tensor([0, 1, 2, 3])
L = torch.randn(4, 10)                                    # logits
J = torch.randn(4, 1, 8, 8)                               # input gradients, saliency
FEAT = torch.randn(4, 16)


class TupleModel(nn.Module):
    "A model that returns (logits, features), as some torchvision-style networks do."
    def __init__(self): super().__init__(); self.inner = M
    def forward(self, x): return self.inner(x), x


WALK = tempfile.mkdtemp(prefix='robustnb-walk-')      # files the valid calls read and write
atexit.register(shutil.rmtree, WALK, True)


class StubFigure:
    "What save_figure needs of a matplotlib Figure."
    def savefig(self, path, **kwargs): Path(path).write_bytes(b'')


def nan_at(t, i=0):
    t = t.clone(); t.view(-1)[i] = float('nan'); return t


BAD = {
    'images': [('a NaN pixel', nan_at(X)), ('an infinite pixel', X.masked_fill(X > 0.99, float('inf'))),
               ('an empty batch', X[:0]), ('one image without its batch dimension', X[0]),
               ('pixels in 0-255', X*255), ('uint8 pixels', (X*255).to(torch.uint8)),
               ('float64 images for a float32 model', X.double()), ('a list', X.tolist())],
    'labels': [('label 10 for 10 classes', torch.tensor([0, 1, 2, 10])), ('label -1', torch.tensor([0, 1, 2, -1])),
               ('label -100 (ignore_index)', torch.tensor([0, 1, 2, -100])), ('float labels', Y.float()),
               ('one label too few', Y[:3]), ('2-D labels', Y[:, None])],
    'module': [('a name instead of a module', 'resnet'), ('a function', print)],
    'model': [('a model returning a tuple', TupleModel()), ('a name instead of a model', 'resnet'),
              ('a float64 model for float32 images', SmallCNN(input_size=8).double())],
    'logits': [('NaN logits', nan_at(L)), ('1-D logits', L[0]), ('a list', L.tolist())],
    'nonneg': [('NaN', float('nan')), ('infinity', float('inf')), ('-1', -1.0), ('True', True), ("'0.1'", '0.1')],
    'positive': [('NaN', float('nan')), ('infinity', float('inf')), ('0', 0.0), ('-1', -1.0), ('True', True)],
    'fraction': [('NaN', float('nan')), ('-0.1', -0.1), ('1.5', 1.5)],
    'int': [('0', 0), ('-1', -1), ('1.5', 1.5), ('True', True), ("'3'", '3')],
    'int0': [('-1', -1), ('1.5', 1.5), ('True', True)],   # seeds and other counts that may be 0
    'bool': [("'False'", 'False'), ('None', None)],
    'device': [("'nope'", 'nope'), ("'cuda:7'", f'cuda:{max(torch.cuda.device_count(), 7)}')],
    'name': [("'nope'", 'nope'), ('3', 3)],
    'topk': [('a name', 'curriculum'), ('a number', 3)],
    'str': [('3', 3), ('None', None)],
    'callable': [("'pgd'", 'pgd'), ('3', 3)],
    'path': [('a missing file', '/nonexistent/robustnb/file.pt')],
    'grid': [('a NaN coordinate', [0.0, float('nan')]), ('no coordinate', []), ('a name', 'fine')],
}

BAD['reproduce_table'] = [('a list', [1, 2]), ('a DataFrame without the columns', pd.DataFrame({'a': [1]}))]
BAD['names'] = [("a string instead of a list", 'PGD20'), ('numbers', [20, 50])]
BAD['vector'] = [('NaN', nan_at(L[:, 0])), ('2-D', L), ('a list', L[:, 0].tolist())]
BAD['labels_any'] = [b for b in BAD['labels'] if b[0] not in ('label 10 for 10 classes', 'one label too few')]   # no class count
BAD['one_image'] = [b for b in BAD['images'] if 'batch dimension' not in b[0]]   # (C, H, W) is a valid single image
BAD['batch_nomodel'] = [b for b in BAD['images'] if 'model' not in b[0] and 'batch dimension' not in b[0]]   # any (N, ...)
BAD['images_nomodel'] = [b for b in BAD['images'] if 'model' not in b[0]]   # where no model fixes the dtype
A = {'x': 'images', 'y': 'labels', 'model': 'model', 'eps': 'nonneg', 'alpha': 'nonneg', 'steps': 'int', 'seed': 'int0'}


def case(fn, kwargs, **classes):
    "A valid call of `fn` with `kwargs`, and the class (a key of BAD) of each argument it must validate."
    return {'fn': fn, 'kwargs': kwargs, 'classes': classes}


def decorate_an_attack(model='model', home='x'):
    "on_model_device is a decorator factory: its arguments are checked against the function it decorates."
    from robustnb.attacks import on_model_device
    return on_model_device(model, home)(lambda model, x, y, eps: x)


def attack_args(**extra): return {'model': M, 'x': X, 'y': Y, 'eps': 0.1, **extra}


def build_cases():
    from robustnb import (attacks, curriculum, data, evaluate, hessian, landscape, losses, matching, models, papers, plots,
                          recipes, saliency, train)
    teacher = SmallCNN(input_size=8).eval()
    models.save_model(M, f'{WALK}/m.pt')                 # read by load_model's case
    att = dict(model='model', x='images', y='labels', eps='nonneg')
    hes = dict(model='model', x='images', y='labels')
    c = {}
    # data
    c['data.dataset_info'] = case(data.dataset_info, {'name': 'digits'}, name='name')
    c['data.TensorImageDataset'] = case(data.TensorImageDataset, {'images': X, 'labels': Y}, images='images_nomodel', labels='labels_any')
    c['data.TinyImageNet'] = case(data.TinyImageNet, {'root': '/nonexistent', 'split': 'train'}, root='path')
    c['data.load_dataset'] = case(data.load_dataset, {'name': 'digits'}, name='name', split='name', download='bool')
    c['data.get_loaders'] = case(data.get_loaders, {'name': 'digits'}, name='name', batch_size='int', test_batch_size='int',
                                 num_workers='int0', seed='int0', download='bool')
    # models
    for n in ('SmallCNN', 'MadryCNN', 'PreActResNet20', 'TorchvisionResNet'):
        c[f'models.{n}'] = case(getattr(models, n), {'num_classes': 10, 'in_channels': 1, 'input_size': 32},
                                num_classes='int', in_channels='int', input_size='int')
    c['models.WideResNet'] = case(models.WideResNet, {'depth': 10, 'widen_factor': 1, 'num_classes': 10},
                                  depth='int', widen_factor='int', num_classes='int', dropout='fraction')
    c['models.Normalize'] = case(models.Normalize, {'mean': (0.5,), 'std': (0.5,)})
    c['models.InceptionResNetV2'] = case(models.InceptionResNetV2, {'num_classes': 10, 'in_channels': 1, 'input_size': 32, 'width': 0.125},
                                         num_classes='int', in_channels='int', input_size='int', width='positive', dropout='fraction')
    c['models.VGG'] = case(models.VGG, {'num_classes': 10, 'in_channels': 1, 'input_size': 32}, depth='int',
                           num_classes='int', in_channels='int', input_size='int')
    c['models.Ensemble'] = case(models.Ensemble, {'members': [SmallCNN(input_size=8)]}, members='module', combine='name')
    c['models.PreActBlock'] = case(models.PreActBlock, {'cin': 4, 'cout': 4}, cin='int', cout='int', stride='int', dropout='fraction')
    c['models.Discriminator'] = case(models.Discriminator, {'in_channels': 1}, in_channels='int', negative_slope='nonneg')
    import torchvision
    tv = torchvision.models.resnet18(num_classes=10)
    for n in ('as_classifier', 'AdaptedClassifier'):
        c[f'models.{n}'] = case(getattr(models, n), {'net': tv}, net='module', feature_maps='name', fc='name', pool='callable',
                                builder='name')
    c['models.create_model'] = case(models.create_model, {'name': 'smallcnn', 'dataset': 'digits'}, name='name',
                                    num_classes='int', dataset='name')
    c['models.save_model'] = case(models.save_model, {'model': M, 'path': f'{WALK}/m.pt'}, model='module')
    from test_robustbench import robustbench_state_dict
    torch.save(robustbench_state_dict(prefix=''), f'{WALK}/rb.pt')
    c['models.load_robustbench_wrn'] = case(models.load_robustbench_wrn, {'path': f'{WALK}/rb.pt'}, path='path', map_location='device')
    c['models.load_model'] = case(models.load_model, {'path': f'{WALK}/m.pt'}, path='path', map_location='device')
    # attacks
    c['attacks.untracked'] = case(attacks.untracked, {'module': M}, module='module')
    c['attacks.frozen_eval'] = case(attacks.frozen_eval, {'model': M}, model='module')
    c['attacks.on_model_device'] = case(decorate_an_attack, {'model': 'model', 'home': 'x'}, model='name', home='name')
    for n in ('LinfStep', 'L2Step'):
        c[f'attacks.{n}'] = case(getattr(attacks, n), {'x': X, 'eps': 0.1, 'alpha': 0.01}, x='batch_nomodel', eps='nonneg', alpha='nonneg')
    for n in ('ce_loss', 'cw_margin'):
        c[f'attacks.{n}'] = case(getattr(attacks, n), {'logits': L, 'y': Y}, logits='logits', y='labels')
    c['attacks.pgd'] = case(attacks.pgd, attack_args(steps=2), **att, alpha='nonneg', steps='int', targeted='bool',
                            restarts='int', seed='int0', momentum='nonneg', norm='name', loss='name')
    c['attacks.fgsm'] = case(attacks.fgsm, attack_args(), **att)
    c['attacks.bim'] = case(attacks.bim, attack_args(steps=2), **att, alpha='nonneg', steps='int')
    c['attacks.mim'] = case(attacks.mim, attack_args(steps=2), **att, alpha='nonneg', steps='int', momentum='nonneg')
    c['attacks.cw_pgd'] = case(attacks.cw_pgd, attack_args(steps=2), **att, steps='int')
    c['attacks.pgd_l2'] = case(attacks.pgd_l2, attack_args(steps=2), **att, steps='int')
    c['attacks.transfer_attack'] = case(attacks.transfer_attack, {'source': M, 'target': teacher, 'x': X, 'y': Y, 'eps': 0.1},
                                        source='model', target='module', x='images', y='labels', attack='callable')
    c['attacks.autoattack'] = case(attacks.autoattack, attack_args(version='custom', attacks=['apgd-ce'], n_iter=2), **att, progress='bool',
                                   seed='int0', batch_size='int', n_iter='int', n_queries='int',
                                   n_target_classes='int', norm='name', version='name')
    # saliency
    c['saliency.input_grad'] = case(saliency.input_grad, {'model': M, 'x': X, 'y': Y}, **hes, kind='name', create_graph='bool')
    for n in ('alignment', 'linearized_robustness', 'binarized_alignment'):
        c[f'saliency.{n}'] = case(getattr(saliency, n), {'model': M, 'x': X}, model='model', x='images', batch_size='int')
    c['saliency.topk_mask'] = case(saliency.topk_mask, {'saliency': J, 'k': 50}, saliency='logits', k='positive')
    c['saliency.topk_saliency'] = case(saliency.topk_saliency, {'J': J, 'k': 50}, J='logits', k='positive')
    c['saliency.attention_map'] = case(saliency.attention_map, {'model': M, 'x': X}, model='model', x='images', upsample='bool')
    c['saliency.gradcam'] = case(saliency.gradcam, {'model': M, 'x': X}, model='model', x='images', relu='bool', upsample='bool')
    c['saliency.class_attention_map'] = case(saliency.class_attention_map, {'model': M, 'x': X, 'target': Y}, model='model', x='images',
                                             target='labels', relu='bool', upsample='bool', create_graph='bool', eps='positive')
    c['saliency.attribute'] = case(saliency.attribute, {'model': M, 'x': X, 'y': Y, 'method': 'saliency'}, **hes,
                                   method='name', n_steps='int', nt_samples='int', stdev='nonneg', seed='int0')
    c['saliency.Resize'] = case(saliency.Resize, {'size': 16}, size='int', mode='name')
    c['saliency.CenterCrop'] = case(saliency.CenterCrop, {'size': 4}, size='int')
    c['saliency.Pad'] = case(saliency.Pad, {'size': 16}, size='int', mode='name', seed='int0')
    c['saliency.TransposeConvUpsample'] = case(saliency.TransposeConvUpsample, {'channels': 1}, channels='int',
                                               kernel_size='int', stride='int')
    c['saliency.crop_gradients'] = case(saliency.crop_gradients, {'j_student': J, 'j_teacher': J.flip(0),
                                                                  'crop': saliency.CenterCrop(4)},
                                        j_student='logits', j_teacher='logits')
    # losses
    two = {'logits_nat': L, 'logits_adv': L.flip(0)}
    c['losses.kl_div'] = case(losses.kl_div, {'p_logits': L, 'q_logits': L.flip(0)}, p_logits='logits', q_logits='logits')
    c['losses.logit_mse'] = case(losses.logit_mse, {'a': L, 'b': L.flip(0)}, a='logits', b='logits')
    c['losses.soft_cross_entropy'] = case(losses.soft_cross_entropy, {'logits': L, 'target_probs': L.softmax(1)},
                                          logits='logits', target_probs='logits')
    c['losses.trades_loss'] = case(losses.trades_loss, {**two, 'y': Y}, logits_nat='logits', logits_adv='logits', y='labels', beta='nonneg')
    c['losses.alp_loss'] = case(losses.alp_loss, {**two, 'y': Y}, logits_nat='logits', logits_adv='logits', y='labels', alpha='nonneg')
    c['losses.mart_kl'] = case(losses.mart_kl, {**two, 'y': Y}, logits_nat='logits', logits_adv='logits', y='labels')
    c['losses.mart_loss'] = case(losses.mart_loss, {**two, 'y': Y}, logits_nat='logits', logits_adv='logits', y='labels', beta='nonneg')
    c['losses.adversarial_distillation_loss'] = case(losses.adversarial_distillation_loss,
                                                     {'student_adv': L, 'teacher_nat': L.flip(0), 'y': Y},
                                                     student_adv='logits', teacher_nat='logits', y='labels', kind='name',
                                                     kl_order='name')
    c['losses.gradient_adversarial_loss'] = case(losses.gradient_adversarial_loss, {'d_teacher': L[:, 0], 'd_student': L[:, 1]},
                                                 non_saturating='bool')
    c['losses.gradient_l2'] = case(losses.gradient_l2, {'j_student': J, 'j_teacher': J.flip(0)}, j_student='logits', j_teacher='logits')
    c['losses.attention_l1'] = case(losses.attention_l1, {'a_student': J, 'a_teacher': J.flip(0)}, a_student='logits', a_teacher='logits')
    c['losses.angular_distance'] = case(losses.angular_distance, {'a': FEAT, 'b': FEAT.flip(0)}, a='logits', b='logits')
    c['losses.angular_triplet_loss'] = case(losses.angular_triplet_loss, {'anchor': FEAT, 'positive': FEAT.flip(0), 'negative': FEAT*2},
                                            anchor='logits', margin='nonneg')
    # curriculum
    c['curriculum.TopKSchedule'] = case(curriculum.TopKSchedule, {}, start='positive', stop='positive', step='positive',
                                        epochs_per_k='positive')
    c['curriculum.LinearSchedule'] = case(curriculum.LinearSchedule, {}, start='nonneg', stop='nonneg', begin='nonneg', end='positive')
    c['curriculum.StepSchedule'] = case(curriculum.StepSchedule, {}, start='nonneg', stop='nonneg')
    c['curriculum.check_reaches'] = case(curriculum.check_reaches, {'schedule': curriculum.LinearSchedule(), 'name': 'lambda_schedule',
                                                                    'epochs': 20}, schedule='callable', epochs='positive')
    c['curriculum.probability_gap'] = case(curriculum.probability_gap, {'logits': L, 'y': Y}, logits='logits', y='labels')
    c['curriculum.hessian_subset'] = case(curriculum.hessian_subset, {'estimates': L[:, 0], 'fraction': 0.5},
                                          estimates='vector', fraction='fraction')
    # hessian
    v = [torch.randn_like(p) for p in M.parameters()]
    c['hessian.hvp'] = case(hessian.hvp, {'model': M, 'x': X, 'y': Y, 'v': v}, **hes, method='name', loss_fn='callable')
    c['hessian.top_eigenvalues'] = case(hessian.top_eigenvalues, {'model': M, 'x': X, 'y': Y, 'max_iter': 3}, **hes, progress='bool', k='int',
                                        tol='positive', max_iter='int', seed='int0', method='name', loss_fn='callable', algorithm='name')
    c['hessian.hessian_trace'] = case(hessian.hessian_trace, {'model': M, 'x': X, 'y': Y, 'n_samples': 2}, **hes, progress='bool',
                                      n_samples='int', seed='int0', loss_fn='callable', probes_per_pass='int',
                                      method='name')
    c['hessian.grad_norm'] = case(hessian.grad_norm, {'model': M, 'x': X, 'y': Y}, **hes, loss_fn='callable')
    c['hessian.taylor_bounds'] = case(hessian.taylor_bounds, {'model': M, 'x': X, 'y': Y}, **hes, alpha_frac='positive', sub_batch='int', form='name')
    c['hessian.per_sample_eigen_estimate'] = case(hessian.per_sample_eigen_estimate, {'model': M, 'x': X, 'y': Y, 'sub_batch': 2},
                                                  **hes, sub_batch='int', alpha_frac='positive', bound='name',
                                                  estimator='name', iterations='int', form='name')
    c['hessian.per_sample_top_eigenvalue'] = case(hessian.per_sample_top_eigenvalue, {'model': M, 'x': X[:2], 'y': Y[:2], 'max_iter': 2},
                                                  model='model', tol='positive', max_iter='int', seed='int0')
    # train
    c['train.set_seed'] = case(train.set_seed, {'seed': 0}, seed='int0')
    c['train.default_device'] = case(train.default_device, {'device': 'cpu'}, device='device')
    c['train.as_loader'] = case(train.as_loader, {'data': (X, Y)}, batch_size='int', shuffle='bool', seed='int0')
    c['train.accuracy'] = case(train.accuracy, {'model': M, 'data': (X, Y)}, model='model', batch_size='int', device='device',
                               attack='callable')
    c['train.train_standard'] = case(train.train_standard, {'model': SmallCNN(input_size=8), 'loader': (X, Y), 'epochs': 1,
                                                            'progress': False},
                                     model='model', epochs='int', lr='positive', momentum='fraction', weight_decay='nonneg',
                                     device='device', perturb='callable')
    c['train.piecewise_lr'] = case(train.piecewise_lr, {}, factor='positive')
    c['train.linear_lr'] = case(train.linear_lr, {'epochs': 10}, epochs='positive', end_factor='nonneg')
    c['train.cosine_lr'] = case(train.cosine_lr, {'epochs': 10}, epochs='positive')
    c['train.load_checkpoint'] = case(train.load_checkpoint, {'path': '/nonexistent/last.pt'}, path='path')
    c['train.resolve_fit_config'] = case(train.resolve_fit_config, {'recipe': recipes.Standard(), 'epochs': 1}, recipe='callable',
                                         epochs='int', lr='positive', momentum='fraction', weight_decay='nonneg', batch_size='int')
    c['train.run_fingerprint'] = case(train.run_fingerprint, {'model': M, 'recipe': recipes.Standard(), 'train_data': (X, Y),
                                                              'cfg': train.resolve_fit_config(recipes.Standard(), epochs=1), 'seed': 0},
                                      model='module', recipe='callable', seed='int0')
    c['train.fit'] = case(train.fit, {'model': SmallCNN(input_size=8), 'recipe': recipes.Standard(), 'train_data': (X, Y),
                                      'epochs': 1, 'progress': False},
                          model='model', recipe='callable', epochs='int', lr='positive', weight_decay='nonneg', batch_size='int',
                          device='device', seed='int0', momentum='fraction', max_grad_norm='positive', resume='bool', keep_best='bool',
                          amp='name', channels_last='bool', compile='bool', sync_batchnorm='bool')
    # recipes
    adv = dict(eps='nonneg', alpha='nonneg', steps='int', preset='name')
    for n in ('AdversarialRecipe', 'PGDAT'): c[f'recipes.{n}'] = case(getattr(recipes, n), {'eps': 0.1}, **adv)
    c['recipes.TRADES'] = case(recipes.TRADES, {'eps': 0.1}, **adv, beta='nonneg')
    c['recipes.ALP'] = case(recipes.ALP, {'eps': 0.1}, **adv, pair_weight='nonneg')
    c['recipes.MART'] = case(recipes.MART, {'eps': 0.1}, **adv, beta='nonneg')
    c['recipes.ADT'] = case(recipes.ADT, {'teacher': teacher, 'eps': 0.1}, teacher='module', **adv, T='positive', kd_beta='nonneg', loss='name',
                            kl_order='name', max_grad_norm='positive')
    c['recipes.AODT'] = case(recipes.AODT, {'teacher': teacher, 'eps': 0.1}, teacher='module', **adv, beta='nonneg', teacher_lr='positive',
                             teacher_weight_decay='nonneg', teacher_momentum='fraction', kl_order='name')
    c['recipes.PSAT'] = case(recipes.PSAT, {'eps': 0.1}, **adv, lambda_schedule='callable')
    c['recipes.HSAT'] = case(recipes.HSAT, {'eps': 0.1}, **adv, sub_batch='int', alpha_frac='positive', reselect='name')
    c['recipes.AGKDBML'] = case(recipes.AGKDBML, {'teacher': teacher, 'eps': 0.1}, teacher='module', **adv, label_smoothing='fraction',
                                beta='nonneg', attention_weight='nonneg', triplet_weight='nonneg', mart='bool',
                                attention='name', partners='name', memory_size='int')
    c['recipes.trades_attack'] = case(recipes.trades_attack, {'model': M, 'x': X, 'y': Y, 'recipe': recipes.TRADES(eps=0.1, steps=1)},
                                      model='model', x='images', y='labels')
    c['recipes.most_confusing_class'] = case(recipes.most_confusing_class, {'logits': L, 'y': Y}, logits='logits', y='labels')
    c['recipes.partner_indices'] = case(recipes.partner_indices, {'y': Y, 'wanted': Y.flip(0)}, y='labels_any', wanted='labels_any')
    c['recipes.ClassMemory'] = case(recipes.ClassMemory, {'num_classes': 10}, num_classes='int', size='int')
    # matching
    c['matching.student_input_grads'] = case(matching.student_input_grads, {'model': M, 'x': X, 'y': Y}, **hes, kinds='name')
    c['matching.disc_view'] = case(matching.disc_view, {'j': J}, j='logits', disc_input='name')
    c['matching.GradientMatchingRecipe'] = case(matching.GradientMatchingRecipe, {'teacher': teacher, 'in_channels': 1}, teacher='module',
                                                disc_every='int', disc_lr='positive', in_channels='int')
    c['matching.finetune_logit_layer'] = case(matching.finetune_logit_layer, {'teacher': SmallCNN(input_size=8), 'data': (X, Y), 'epochs': 1},
                                              teacher='module', epochs='int', lr='positive', batch_size='int')
    c['matching.IGAM'] = case(matching.IGAM, {'teacher': teacher, 'in_channels': 1}, teacher='module', lambda_adv='nonneg',
                              lambda_diff='nonneg', disc_every='int', grad_kind='name', disc_lr='positive', match_start='fraction',
                              input_noise='fraction')
    c['matching.SaliencyCurriculum'] = case(matching.SaliencyCurriculum, {'teacher': teacher, 'in_channels': 1}, teacher='module',
                                            beta='nonneg', gamma_phase1='nonneg', gamma_phase2='nonneg', phase2_target='name',
                                            schedule='topk')
    # evaluate
    c['evaluate.evaluation_subset'] = case(evaluate.evaluation_subset, {'data': (X, Y), 'n': 2}, n='int', seed='int0')
    c['evaluate.robust_accuracy'] = case(evaluate.robust_accuracy, {'model': M, 'data': (X, Y), 'attacks': {}, 'progress': False},
                                         model='model', n='int', batch_size='int', seed='int0')
    c['evaluate.paper_attacks'] = case(evaluate.paper_attacks, {'paper': 'sat'}, paper='name', dataset='name', eps='nonneg')
    c['evaluate.sanity_check'] = case(evaluate.sanity_check, attack_args(aa_version='custom', aa_attacks=['apgd-ce']), **att)
    c['evaluate.KNNClassifier'] = case(evaluate.KNNClassifier, {'model': M, 'train_data': (X, Y), 'k': 2}, model='model', k='int',
                                       metric='name', features='callable', batch_size='int')
    c['evaluate.knn_accuracy'] = case(evaluate.knn_accuracy, {'model': M, 'train_data': (X, Y), 'test_x': X, 'test_y': Y, 'k': 2},
                                      model='model', test_x='images', test_y='labels', k='int', metric='name', attack='callable',
                                      seed='int0', batch_size='int')
    c['evaluate.Quantize'] = case(evaluate.Quantize, {'model': M, 'levels': 4}, model='module', levels='int', straight_through='bool')
    # landscape
    dirs = landscape.random_directions(M, 2)
    c['landscape.normalize_direction'] = case(landscape.normalize_direction, {'model': M, 'direction': dirs[0]}, model='module', norm='name')
    c['landscape.random_directions'] = case(landscape.random_directions, {'model': M}, model='module', n='int', norm='name', seed='int0')
    c['landscape.loss_on'] = case(landscape.loss_on, {'x': X, 'y': Y}, x='images_nomodel', y='labels_any', batch_size='int', loss_fn='callable')
    c['landscape.loss_surface'] = case(landscape.loss_surface, {'model': M, 'loss_of_model': landscape.loss_on(X, Y), 'directions': dirs,
                                                                'grid': [-0.1, 0.0, 0.1]}, model='module', loss_of_model='callable',
                                       grid='grid')
    c['landscape.decision_slice'] = case(landscape.decision_slice, {'model': M, 'x': X[:1], 'y': Y[:1], 'grid': [-0.1, 0.0, 0.1]},
                                         model='model', x='one_image', seed='int0', batch_size='int')
    c['landscape.embed_features'] = case(landscape.embed_features, {'model': M, 'x': X.repeat(3, 1, 1, 1), 'perplexity': 2.0},
                                         model='model', x='images', perplexity='positive', seed='int0', batch_size='int')
    # plots
    c['plots.to_hwc'] = case(plots.to_hwc, {'img': X[0]}, img='callable')
    c['plots.display_normalize'] = case(plots.display_normalize, {'m': J}, mode='name')
    c['plots.show_deltas'] = case(plots.show_deltas, {'x': X, 'adversarials': {'PGD': X.flip(0)}}, x='images_nomodel', n='int', mode='name')
    c['plots.show_saliency'] = case(plots.show_saliency, {'images': X, 'saliencies': {'TCI': J}}, images='images_nomodel', n='int', mode='name')
    c['plots.show_attention'] = case(plots.show_attention, {'images': X, 'maps': {'att': X}}, images='images_nomodel', n='int', alpha='fraction')
    c['plots.plot_landscape'] = case(plots.plot_landscape, {'surface': landscape.Surface((np.zeros(3),), np.zeros(3))},
                                     surface='callable', kind='name', levels='int')
    c['plots.plot_eigen_scatter'] = case(plots.plot_eigen_scatter, {'exact': np.ones(3), 'approx': np.ones(3)}, log='bool')
    c['plots.plot_history'] = case(plots.plot_history, {'history': pd.DataFrame({'epoch': [1, 2], 'loss': [2.0, 1.0]})}, history='callable')
    c['plots.plot_tsne'] = case(plots.plot_tsne, {'emb': np.zeros((4, 2)), 'y': Y.numpy()}, y='labels_any')
    c['plots.save_figure'] = case(plots.save_figure, {'fig': StubFigure(), 'name': 'walk', 'folder': WALK}, fig='callable',
                                  name='str', dpi='int')
    # papers
    c['papers.registry'] = case(papers.registry, {'paper': 'sat'}, paper='name')
    c['papers.slug'] = case(papers.slug, {'text': 'Table 2'})
    c['papers.find_entry'] = case(papers.find_entry, {'paper': 'sat', 'item': 'Table 2'}, paper='name', item='name')
    c['papers.resolve'] = case(papers.resolve, {'paper': 'sat', 'item': 'Table 2', 'row': 'AT (MNIST, eps=0.3)'}, paper='name',
                               item='name', row='name', scale='name', seed='int0')
    c['papers.jobs'] = case(papers.jobs, {'paper': 'sat', 'item': 'Table 2'}, paper='name', scale='name')
    c['papers.parse_job'] = case(papers.parse_job, {'job_id': 'sat/table-2/at-mnist-eps-0.3/0'}, job_id='name')
    c['papers.listing'] = case(papers.listing, {'paper': 'sat'}, paper='name')
    table = pd.DataFrame({'item': 'Table 1', 'row': 'r', 'column': ['Clean'], 'paper': ['90'], 'paper_value': [90.0], 'ours': [91.0],
                          'std': [float('nan')], 'delta': [1.0]})
    c['papers.side_by_side'] = case(papers.side_by_side, {'table': table}, table='reproduce_table', columns='names')
    c['papers.check_registry'] = case(papers.check_registry, {'paper': 'sat'}, paper='name')
    c['papers.reproduce'] = case(papers.reproduce, {'paper': 'sat', 'item': 'Fig. 2', 'scale': 'smoke', 'device': 'cpu', 'progress': False,
                                                    'root': f'{WALK}/runs'},
                                 paper='name', item='name', scale='name', device='device', force='bool')
    c['papers.run'] = case(papers.run, {'paper': 'sat', 'item': 'Fig. 2', 'row': 'x', 'scale': 'smoke'}, paper='name', scale='name',
                           seed='int0', device='device')
    c['cli.quickstart'] = case(__import__('robustnb.cli', fromlist=['quickstart']).quickstart, {'epochs': 1, 'progress': False},
                               epochs='int', seed='int0', device='device')
    return c


# Public names that are not walked, each with the reason.
EXEMPT = {
    'attacks.PixelLevels': 'a float that prints as n/255 (any number works)',
    'plots.figures_folder': 'takes no argument',
    **{f'checks.{n}': 'the checkers themselves: each bad-input class is tested on them in 00a_checks'
       for n in importlib.import_module('robustnb.checks').__all__},
    'data.DatasetInfo': 'a record of constants returned by dataset_info, not built by users',
    'data.default_root': 'takes no argument',
    'models.Classifier': 'an abstract base class: its subclasses are walked',
    'attacks.on_model_device': 'walked through decorate_an_attack (a decorator factory checks its names when it decorates)',
    'attacks.evaluating': 'documented as a no-op for anything that is not a module (plain callables are models too)',
    'double_backward.fast_double_backward': 'takes no argument',
    'saliency.ChannelMean': 'takes no argument',
    'hessian.Eigenpairs': 'a named tuple returned by top_eigenvalues',
    'hessian.TraceEstimate': 'a named tuple returned by hessian_trace',
    'train.Recipe': 'an abstract base class: its subclasses are walked',
    'train.distributed_context': 'takes no argument',
    'train.main_process': 'takes no argument',
    'train.local_module': 'returns anything but a DistributedDataParallel wrapper unchanged: there is no bad input',
    'train.average_gradients': 'takes its modules positionally (a non-module is a TypeError, tested in 07_train)',
    'recipes.Standard': 'takes no argument',
    'landscape.Surface': 'a record returned by loss_surface',
    'landscape.Slice': 'a record returned by decision_slice',
    'plots.plot_decision_slice': "draws a Slice returned by decision_slice; its bad inputs are decision_slice's",
    'cli.main': "the command line: every bad value is one line and exit status 2, tested in tests/test_cli.py",
    'papers.recipe_hparams': 'internal to resolve: reads a training spec that resolve builds',
    'papers.fingerprint': 'hashes any JSON-able spec: there is no bad input',
    'papers.trained_model': 'internal to run: reads a training spec that resolve builds',
    'papers.job_folder': 'internal to run: reads a configuration that resolve builds',
    'papers.compare': 'internal to reproduce: reads results that run returns',
    'papers.code_path': 'internal to reproduce: reads a configuration that resolve builds',
    'papers.papers_dir': 'takes no argument',
}

CASES = build_cases()


def public_callables():
    for m in MODULES:
        mod = importlib.import_module(f'robustnb.{m}')
        for n in mod.__all__:
            if callable(getattr(mod, n)): yield f'{m}.{n}'


def test_every_public_callable_is_walked():
    missing = [n for n in public_callables() if n not in CASES and n not in EXEMPT]
    assert not missing, f'public callables with neither a bad-input case nor an exemption: {missing}'
    stale = [n for n in list(CASES) + list(EXEMPT) if n not in set(public_callables()) and n != 'attacks.on_model_device']
    assert not stale, f'cases or exemptions for names that are not public: {stale}'


@pytest.mark.parametrize('name', sorted(CASES))
def test_the_valid_call_works(name, tmp_path, monkeypatch):
    "Each case's valid call runs: the bad values below are the only thing that changes."
    monkeypatch.chdir(tmp_path)
    c = CASES[name]
    if name == 'models.load_model': c['fn'].__globals__  # noqa: B018 (the file is written by save_model's case)
    if name in ('data.TinyImageNet', 'train.load_checkpoint', 'papers.run'): pytest.skip('its valid call needs a file or a GPU run')
    if name == 'models.load_model':
        from robustnb.models import save_model
        save_model(M, f'{WALK}/m.pt')
    with _quiet(): out = c['fn'](**c['kwargs'])
    if isinstance(out, contextlib.AbstractContextManager) and not isinstance(out, (nn.Module, Path)):
        with out: pass


def bad_calls():
    for name, c in sorted(CASES.items()):
        for arg, cls in c['classes'].items():
            for label, value in BAD[cls]:
                yield pytest.param(name, arg, value, id=f'{name}({arg}={label})')


@contextlib.contextmanager
def _quiet():
    import warnings
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: yield
        finally: plt.close('all')


@pytest.mark.parametrize('name,arg,value', list(bad_calls()))
def test_bad_input_is_a_clear_error(name, arg, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = CASES[name]
    kwargs = {**c['kwargs'], arg: value}
    with _quiet():
        try:
            out = c['fn'](**kwargs)
            if isinstance(out, contextlib.AbstractContextManager) and not isinstance(out, (nn.Module, Path)):
                with out: pass
        except (ValueError, TypeError, FileNotFoundError) as e:
            text = str(e)
            assert 'unexpected keyword argument' not in text, f'{name} has no argument {arg!r}: fix the case'
            named = arg in text or (c['classes'][arg] == 'path' and str(value) in text)   # a missing file: its path
            assert named, f'{name}: the error does not name {arg!r}: {type(e).__name__}: {text[:300]}'
            assert 'Traceback' not in text
        except Exception as e:                           # noqa: BLE001 (any other error class is the failure we test for)
            pytest.fail(f'{name}({arg}={value!r:.60}): {type(e).__name__} instead of a ValueError/TypeError naming {arg!r}: {str(e)[:300]}')
        else:
            pytest.fail(f'{name}({arg}={value!r:.60}) was accepted')


def test_tiny_or_huge_numbers_are_refused_before_allocating():
    "Numbers that would ask for absurd amounts of memory or time: refused at construction, naming the argument."
    from robustnb.curriculum import TopKSchedule
    from robustnb.models import create_model
    for kwargs, arg in ((dict(step=1e-9), 'step'), (dict(epochs_per_k=1e9), 'epochs_per_k')):
        with pytest.raises(ValueError, match=f'^{arg}:'): TopKSchedule(100, 50, **{'step': 10, **kwargs})
    with pytest.raises((ValueError, TypeError), match='^depth:'): create_model('wrn-1200004-10')
    with pytest.raises((ValueError, TypeError), match='^num_classes:'): create_model('smallcnn', num_classes=10**9)
