"""Every training loss, one a file behind one interface (dissertation Sections 2.3 and 4.1).

The interface and what each loss declares about itself: :mod:`.base`; the
options machinery: :mod:`.options`; the negative sampler: :mod:`.sampler`;
the table of losses and :func:`~srs_core.losses.registry.build_loss`: :mod:`.registry`.

Adding a loss takes its own file and one line of the registry: the class
(``compute``, and ``build`` when it takes options), its options dataclass
(fields made by :func:`~srs_core.losses.options.option`, with defaults, help,
checks and identity rules; ``srs train`` gets their flags and
``TrainConfig`` their fields), and its facts as class attributes (``label``,
``dense_gradient``, ``data_parallel``, ``recent``) and class methods
(``graph_reason``, ``cost_key``, ``describe``, ``check_device``) where the
defaults of :class:`~srs_core.losses.base.Loss` do not fit.
"""
from .base import Loss
from .cce import CCE_KERNELS, ChunkedCrossEntropy
from .ce import CrossEntropy
from .gbce import GeneralisedBCE
from .ns import NegativeSampling
from .registry import (LOSSES, build_loss, check_settings, experiment2_losses, identity_options, is_extension, loss_class,
                       option_fields)
from .sampled_softmax import LOGQ_MODES, SampledSoftmax
from .sampler import DISTRIBUTIONS, NegativeSampler
from .sce import ScalableCrossEntropy
from .triplet import Triplet

__all__ = ["CCE_KERNELS", "DISTRIBUTIONS", "LOGQ_MODES", "LOSSES", "experiment2_losses", "ChunkedCrossEntropy", "CrossEntropy",
           "GeneralisedBCE", "Loss", "NegativeSampler", "NegativeSampling", "SampledSoftmax", "ScalableCrossEntropy",
           "Triplet", "build_loss", "check_settings", "identity_options", "is_extension", "loss_class",
           "option_fields"]
