"""spcl-search: hyperparameter search for SPCL-wrapped multimodal ERC backbones."""

import os as _os

# Idle OpenMP threads sleep instead of spinning. Workers share CPUs with other workers and jobs; a
# spinning pool then wastes the cores it waits on (measured: a 2-thread DialogueGCN epoch took 30-41 s
# spinning vs 7.4 s passive on a loaded 2-core machine). Set OMP_WAIT_POLICY yourself to override.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
