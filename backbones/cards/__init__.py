"""The built-in backbones' forms, one module per backbone (no torch: the study schema reads them).

Each module defines a card per form (:class:`backbones.registry.Form`): the SPCL code's form (``"spcl"``,
np4s/SPCL ``code/backbone/*.py``, trained with its scripts' settings ``scripts/train_*.sh``; the paper's numbers
and its cl_growth/cl_threshold table belong to these) and the backbone's own paper's (``"original"``, trained
with the SPCL protocol: Adam 2e-4, batch 16, 50 epochs; the originals' own scripts differ: MMGCN IEMOCAP lr 3e-4
l2 3e-5 20 epochs; MM-DFN lr 1e-4..1e-3 batch 32 30 epochs; DialogueGCN lr 1e-4 l2 1e-5 batch 32 60 epochs; BiDDIN
lr 1e-4 l2 1e-5 batch 30 60 epochs). The SPCL scripts train with Adam, weight decay 1e-8 (train.py's default),
gradient-norm clip 2.0 and batch 32; late fusion has no script: train.py's defaults.
:func:`backbones.registry.discover` imports every module here.
"""
