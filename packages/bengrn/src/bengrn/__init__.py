"""BenGRN: benchmark gene-network inference against ground truths with exact metrics.

* :func:`bengrn.metrics.score`: precision, recall, AUPRC, AP, EPR (+ odds ratio, random
  precision, AUPRC ratio) of a network (rows = regulators, columns = targets) over an explicit
  edge universe, exact at genome scale;
* :mod:`bengrn.datasets`: the registry of ground truths and expression sets (offline first);
* :mod:`bengrn.tasks`: literature, McCalla, Perturb-seq, enrichment and BEELINE tasks, and
  :class:`~bengrn.tasks.BenGRN` to score one network on several;
* :mod:`bengrn.methods` and :func:`bengrn.runner.run_benchmark`: benchmark any inference method
  (the ``bengrn`` command line wraps it).
"""

__version__ = "0.1.0"

from bengrn.metrics import score
from bengrn.runner import run_benchmark
from bengrn.tasks import BenGRN, get_task

__all__ = ["BenGRN", "__version__", "get_task", "run_benchmark", "score"]
