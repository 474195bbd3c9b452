"""BenGRN: benchmark gene-network inference against ground truths with exact metrics.

* :func:`bengrn.metrics.score`: precision, recall, AUPRC, AP, EPR (+ odds ratio, random
  precision, AUPRC ratio) of a network (rows = regulators, columns = targets) over an explicit
  edge universe, exact at genome scale (two same-shape matrices need no gene names);
* :mod:`bengrn.datasets`: the registry of ground truths and expression sets (data folder first,
  then a pooch download cache), their parsers and loaders;
* :mod:`bengrn.tasks`: literature, McCalla, Perturb-seq, enrichment and BEELINE tasks, your own
  truth (:class:`~bengrn.tasks.CustomTask`), and :class:`~bengrn.tasks.BenGRN` to score one
  network on several;
* :mod:`bengrn.methods` and :func:`bengrn.runner.run_benchmark`: benchmark any inference method,
  built-in or registered by another package in the ``bengrn.methods`` entry-point group (the
  ``bengrn`` command line wraps it).
"""

__version__ = "0.1.0"

from bengrn.metrics import score
from bengrn.runner import run_benchmark
from bengrn.tasks import BenGRN, CustomTask, get_task

__all__ = ["BenGRN", "CustomTask", "__version__", "get_task", "run_benchmark", "score"]
