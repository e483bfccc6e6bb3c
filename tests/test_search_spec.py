"""Study specs: files, options, defaults, conflicts; the paper's table."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from spcl_search.errors import ConfigError
from spcl_search.schema import spec as specs
from spcl_search.search.paper import PAPER_HPARAMS, paper_setting, warm_start_params

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def test_default_spec_is_small_search_on_synthetic():
    s = specs.build({"backbone": "dialoguegcn"})
    assert (s.name, s.kind, s.dataset, s.data) == ("dialoguegcn-synthetic-search", "search", "synthetic", "synthetic")
    assert s.n_trials <= 10 and s.epochs <= 10
    assert set(s.space) == {"cl_threshold", "cl_growth"}


def test_balance_defaults_use_nsga2_no_pruner_and_baseline():
    s = specs.build({"backbone": "mmgcn", "kind": "balance"})
    assert (s.sampler, s.pruner, s.baseline) == ("nsga2", "none", True)
    assert s.modalities == ("atv", "at", "av", "tv")
    assert s.metrics == ("dev_f1_atv", "gain")


def test_every_study_file_builds_a_valid_spec_for_both_kinds():
    files = [p for p in STUDIES.glob("*.toml") if p.name != "paper_hparams.toml"]
    assert len(files) == 9
    for path in files:
        for kind in ("search", "balance"):
            s = specs.build(specs.requested_fields(path, kind=kind))
            assert s.kind == kind
            assert s.name == f"{s.backbone}-{s.dataset}-{kind}"


def test_paper_ranges_hold_every_paper_setting():
    space = specs.default_space("spcl")
    for per_dataset in PAPER_HPARAMS.values():
        for per_modality in per_dataset.values():
            for growth, threshold in per_modality.values():
                assert space["cl_growth"].contains(growth) and space["cl_threshold"].contains(threshold)


def test_paper_hparams_toml_matches_the_module():
    data = tomllib.loads((STUDIES / "paper_hparams.toml").read_text())
    as_table = {b: {d: {m: (v["growth"], v["threshold"]) for m, v in ms.items()} for d, ms in ds.items()} for b, ds in data.items()}
    assert as_table == PAPER_HPARAMS


def test_options_override_the_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('backbone = "mmgcn"\nepochs = 40\n[search]\nn_trials = 50\n')
    req = specs.requested_fields(f, epochs=3, space=["lr=1e-5:1e-3:log"])
    s = specs.build(req)
    assert s.epochs == 3 and s.n_trials == 50
    assert s.space["lr"] == specs.ParamRange(1e-5, 1e-3, log=True)
    assert "cl_threshold" in s.space  # per-parameter merge keeps the defaults


def test_unknown_field_is_refused_with_its_name(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('backbone = "mmgcn"\nepoch = 3\n')
    with pytest.raises(ConfigError, match="unknown field.*epoch"):
        specs.requested_fields(f)


def test_balance_with_pruner_is_refused():
    with pytest.raises(ConfigError, match="cannot prune"):
        specs.build({"backbone": "mmgcn", "kind": "balance", "pruner": "median"})


def test_real_dataset_without_data_is_refused():
    with pytest.raises(ConfigError, match="--data"):
        specs.build({"backbone": "mmgcn", "dataset": "iemocap"})


def test_log_range_with_nonpositive_low_is_refused():
    with pytest.raises(ConfigError, match="log scale"):
        specs.build({"backbone": "mmgcn", "space": {"lr": {"low": 0, "high": 1, "log": True}}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cl_threshold=0.1:1.5", ("cl_threshold", {"low": 0.1, "high": 1.5})),
        ("lr=1e-5:1e-3:log", ("lr", {"low": 1e-5, "high": 1e-3, "log": True})),
        ("hidden=64:256:step=64", ("hidden", {"low": 64.0, "high": 256.0, "step": 64.0})),
        ("hidden=100,200", ("hidden", {"choices": [100, 200]})),
    ],
)
def test_space_option_parses(text, expected):
    assert specs.parse_space_option(text) == expected


def test_stored_spec_round_trips_through_its_dict():
    s = specs.build({"backbone": "mmgcn", "space": {"hidden": {"choices": [100, 200]}}, "seeds": [0, 1]})
    assert specs.from_dict(s.to_dict()) == s


def test_conflicts_name_only_explicit_fields_that_differ():
    s = specs.build({"backbone": "mmgcn", "epochs": 5})
    assert specs.conflicts(s, {"backbone": "mmgcn", "epochs": 5}) == {}
    assert set(specs.conflicts(s, {"epochs": 6, "sampler": "tpe"})) == {"epochs"}


def test_budget_and_data_never_conflict():
    s = specs.build({"backbone": "mmgcn"})
    assert specs.conflicts(s, {"n_trials": 99, "data": "/elsewhere/x.pkl"}) == {}


def test_space_conflict_names_the_parameter():
    s = specs.build({"backbone": "mmgcn"})
    diff = specs.conflicts(s, {"space": {"cl_growth": {"low": 1.0, "high": 3.0}}})
    assert list(diff) == ["space.cl_growth"]


def test_paper_setting_reads_the_table():
    assert paper_setting("mmgcn", "iemocap", "at") == {"cl_growth": 1.4, "cl_threshold": 1.3}
    assert paper_setting("MM-DFN", "meld", "tv") == {"cl_growth": 1.8, "cl_threshold": 0.2}


def test_warm_start_on_a_dataset_outside_the_paper_says_what_to_do():
    with pytest.raises(ConfigError, match="paper:iemocap"):
        warm_start_params("mmgcn", "synthetic", "paper", "search", ("atv",))


def test_warm_start_gives_one_setting_per_modality_set():
    params = warm_start_params("dialoguegcn", "iemocap", "paper", "search", ("atv", "at", "av", "tv"))
    assert [p["modalities"] for p in params] == ["atv", "at", "av", "tv"]
    assert params[2] == {"cl_growth": 1.25, "cl_threshold": 0.8, "modalities": "av"}


def test_warm_start_for_balance_uses_the_tri_modal_setting():
    assert warm_start_params("biddin", "meld", "paper", "balance", ("atv", "at", "av", "tv")) == [{"cl_growth": 1.05, "cl_threshold": 0.75}]


def test_unknown_backbone_is_refused_before_a_study_exists():
    with pytest.raises(ConfigError, match="unknown backbone 'mmgnc'"):
        specs.build({"backbone": "mmgnc"})


def test_the_synthetic_demo_trains_at_a_higher_learning_rate_than_the_protocol():
    assert specs.build({"backbone": "dialoguegcn"}).train == {"lr": 1e-3}
    assert specs.build({"backbone": "mmgcn", "dataset": "iemocap", "data": "x.pkl"}).train == {}


def test_a_train_table_adds_to_the_default_training_settings():
    built = specs.build({"backbone": "dialoguegcn", "train": {"batch_size": 8}})
    assert built.train == {"lr": 1e-3, "batch_size": 8}
    assert specs.build({"backbone": "dialoguegcn", "train": {"lr": 5e-4}}).train == {"lr": 5e-4}


def test_the_spcl_form_is_the_default_and_the_study_files_name_it():
    assert specs.build({"backbone": "mmgcn"}).variant == "spcl"
    for path in STUDIES.glob("*_*.toml"):
        if path.name != "paper_hparams.toml":
            assert specs.load_file(path)["variant"] == "spcl"


def test_an_unknown_form_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown variant 'paper'; choose one of spcl, original"):
        specs.build({"backbone": "mmgcn", "variant": "paper"})


def test_a_stored_spec_from_before_the_forms_reads_as_the_original_form():
    stored = specs.build({"backbone": "mmgcn"}).to_dict()
    del stored["variant"]
    assert specs.from_dict(stored).variant == "original"


def test_real_dataset_epochs_follow_the_forms_protocol():
    spcl = specs.build({"backbone": "mmgcn", "dataset": "iemocap", "data": "x.pkl"})
    original = specs.build({"backbone": "mmgcn", "dataset": "iemocap", "data": "x.pkl", "variant": "original"})
    assert (spcl.epochs, original.epochs) == (60, 50)


def test_a_methods_study_searches_its_own_settings_and_is_named_after_it():
    spec = specs.build({"backbone": "mmgcn", "method": "opm"})
    assert spec.name == "mmgcn-synthetic-opm-search" and set(spec.space) == {"alpha", "q_base", "p_exe"}
    assert specs.build({"backbone": "mmgcn", "method": "none"}).space == {}
    assert specs.build({"backbone": "mmgcn", "variant": "original", "method": "ogm_ge"}).name == "mmgcn-synthetic-original-ogm_ge-search"


def test_a_setting_of_another_method_is_refused_naming_it():
    with pytest.raises(ConfigError, match="space.gamma is not a setting of method ogm_ge; its settings are alpha"):
        specs.build({"backbone": "mmgcn", "method": "ogm_ge", "space": {"alpha": {"low": 0.1, "high": 1.0}, "gamma": {"low": 1, "high": 2}}})


def test_an_spcl_study_file_run_with_another_method_keeps_only_what_applies():
    spec = specs.build(specs.requested_fields(STUDIES / "mmgcn_iemocap.toml", method="ogm_ge", data="x.pkl"))
    assert spec.method == "ogm_ge" and set(spec.space) == {"alpha"}


def test_a_methods_fixed_options_are_parsed_checked_and_stored():
    spec = specs.build(specs.requested_fields(backbone="mmgcn", method="ogm_ge", method_option=["smooth=true", "modulation_ends=9"]))
    assert spec.method_options == {"smooth": True, "modulation_ends": 9}
    assert specs.from_dict(spec.to_dict()).method_options == spec.method_options


def test_a_bad_fixed_option_is_refused_naming_it():
    with pytest.raises(ConfigError, match="^--method ogm_ge: option smooth must be true or false, got 2$"):
        specs.build({"backbone": "mmgcn", "method": "ogm_ge", "method_options": {"smooth": 2}})
    with pytest.raises(ConfigError, match="^method_options.alpha is searched \\(space.alpha\\); fix it in one place only$"):
        specs.build({"backbone": "mmgcn", "method": "ogm_ge", "method_options": {"alpha": 0.5}})


def test_the_papers_warm_start_is_for_spcl_only():
    with pytest.raises(ConfigError, match="--warm-start paper: the paper's settings are SPCL's; method mmpareto has none"):
        specs.build({"backbone": "mmgcn", "method": "mmpareto", "warm_start": "paper"})


def test_a_stored_spec_from_before_the_methods_reads_as_spcl():
    stored = specs.build({"backbone": "mmgcn"}).to_dict()
    del stored["method"]
    assert specs.from_dict(stored).method == "spcl"


def test_precision_is_fp32_unless_asked_and_part_of_the_stored_spec():
    assert specs.build({"backbone": "mmgcn"}).precision == "fp32"
    spec = specs.build({"backbone": "mmgcn", "precision": "bf16"})
    assert spec.to_dict()["precision"] == "bf16" and specs.from_dict(spec.to_dict()).precision == "bf16"


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, got 'fp16'"):
        specs.build({"backbone": "mmgcn", "precision": "fp16"})


def test_a_stored_spec_from_before_precision_reads_as_fp32():
    stored = specs.build({"backbone": "mmgcn"}).to_dict()
    del stored["precision"]
    assert specs.from_dict(stored).precision == "fp32"


def test_another_precision_than_the_studys_conflicts():
    stored = specs.build({"backbone": "mmgcn"})
    assert specs.conflicts(stored, {"precision": "bf16"}) == {"precision": ("fp32", "bf16")}
