"""The registry of backbone forms: lookups read no torch, each key names one model class."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import backbones
from backbones.mmgcn import OriginalMMGCN, SPCLMMGCN

from conftest import DIMS


def test_looking_up_a_forms_protocol_imports_no_torch():
    code = "import sys, backbones; backbones.lookup('mm_dfn', 'original').training_defaults('meld'); print('torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "SPCL_SEARCH_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=300)
    assert out.stdout.strip() == "False"


def test_each_form_names_its_own_model_class():
    assert backbones.lookup("mmgcn", "spcl").model_class() is SPCLMMGCN
    assert backbones.lookup("mmgcn", "original").model_class() is OriginalMMGCN


def test_a_dataset_entry_is_laid_over_the_forms_default():
    form = backbones.lookup("mm_dfn", "original")
    assert form.model_defaults("meld")["speaker_weights"] == {"a": 0.5, "t": 1.5, "v": 0.5}
    assert form.model_defaults("meld")["n_layers"] == form.model_defaults()["n_layers"] == 16


def test_the_spcl_code_forms_take_the_fused_adam_and_the_reference_arithmetic():
    for name in backbones.names():
        spcl, original = backbones.lookup(name, "spcl"), backbones.lookup(name, "original")
        assert spcl.fused_optimizer and "reference_arithmetic" in spcl.accepts
        assert not original.fused_optimizer and "reference_arithmetic" not in original.accepts


def test_a_form_class_refuses_to_be_built_as_another_form():
    with pytest.raises(ValueError, match="OriginalMMGCN is the original form of mmgcn, not 'spcl'"):
        OriginalMMGCN("atv", DIMS, 4, 2, variant="spcl")


def test_an_unknown_form_names_the_forms_of_that_backbone():
    with pytest.raises(backbones.UnknownForm, match="unknown variant 'paper'; choose one of spcl, original") as caught:
        backbones.lookup("biddin", "paper")
    assert (caught.value.field, caught.value.choices) == ("variant", ["spcl", "original"])
