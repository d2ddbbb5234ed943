"""`ARCAGRPOTrainer` / `ARCARLOOTrainer` take exactly TRL's constructor (issue 17, item 12): the same parameters
and defaults, a default config when `args` is None, TRL's own argument checks before the credit checks; and
the shipped tiny model has a chat template, so conversational data sets run on it."""

from __future__ import annotations

import inspect

import pytest
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer, RLOOTrainer

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer, ARCARLOOConfig, ARCARLOOTrainer
from arca_rl.tasks import tiny_model_path

pytestmark = pytest.mark.slow


def reward_len(completions, **kwargs):
    return [float(len(c)) for c in completions]


def _params(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("ours, theirs", [(ARCAGRPOTrainer, GRPOTrainer), (ARCARLOOTrainer, RLOOTrainer)])
def test_the_constructor_signature_is_trls(ours, theirs):
    assert _params(ours.__init__) == _params(theirs.__init__)
    assert _params(ours) == _params(theirs)
    assert inspect.signature(GRPOTrainer.__init__).parameters["reward_funcs"].default is None  # TRL 1.16


@pytest.fixture
def data():
    return Dataset.from_dict({"prompt": ["Q: 1+2=?\nA: ", "Q: 3+4=?\nA: "] * 4})


@pytest.mark.parametrize(
    "ours, config, suffix", [(ARCAGRPOTrainer, ARCAGRPOConfig, "GRPO"), (ARCARLOOTrainer, ARCARLOOConfig, "RLOO")]
)
def test_args_none_builds_the_default_config_as_trl_does(ours, config, suffix, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # TRL's default config trains in bf16, which transformers refuses on a machine without a bf16 GPU; the
    # constructor is what is tested here, not the hardware.
    import transformers.training_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: True)
    # no peft_config either: the default credit is stock TRL's (uniform), which needs no adapter
    trainer = ours(model=str(tiny_model_path()), reward_funcs=reward_len, train_dataset=data)
    assert type(trainer.args) is config
    assert trainer.args.output_dir.endswith(f"tiny-{suffix}")  # TRL's "<model name>-<trainer>"
    assert trainer.args.credit == config(output_dir="x").credit == "uniform"  # the credit defaults
    assert not trainer._is_peft


def _outcome(build):
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - the test compares whatever each constructor raises
        return type(exc), str(exc)
    return None


BROKEN = {
    "no reward and no environment": dict(reward_funcs=None),
    "no data set": dict(train_dataset=None),
    "reward processing classes mismatch": dict(reward_processing_classes=[None, None]),
}


@pytest.mark.parametrize("broken", list(BROKEN), ids=list(BROKEN))
def test_trls_own_checks_speak_before_the_credit_checks(broken, data, tmp_path):
    """A full fine-tune (no adapter) with beta = 0 and credit=arca is also a credit error; TRL's error comes first,
    word for word what stock GRPOTrainer says about the same broken setup."""
    kwargs = dict(model=str(tiny_model_path()), reward_funcs=reward_len, train_dataset=data)
    kwargs.update(BROKEN[broken])
    stock = _outcome(
        lambda: GRPOTrainer(args=GRPOConfig(output_dir=str(tmp_path / "a"), report_to="none", bf16=False), **kwargs)
    )
    ours = _outcome(lambda: ARCAGRPOTrainer(
        args=ARCAGRPOConfig(output_dir=str(tmp_path / "b"), report_to="none", bf16=False, credit="arca"), **kwargs))
    assert stock is not None and ours == stock
    assert "bf16" not in stock[1]  # the error is about the broken argument, not the hardware


def test_the_credit_check_still_refuses_a_base_less_setup(data, tmp_path):
    args = ARCAGRPOConfig(output_dir=str(tmp_path), report_to="none", bf16=False, credit="arca")
    with pytest.raises(ValueError, match="compares the model against its base"):
        ARCAGRPOTrainer(model=str(tiny_model_path()), reward_funcs=reward_len, args=args, train_dataset=data)


def test_the_tiny_model_has_a_chat_template_in_its_own_format():
    from transformers import AutoTokenizer

    from arca_rl.tasks import arithmetic

    tok = AutoTokenizer.from_pretrained(tiny_model_path())
    question = "80+33+95=?"
    rendered = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                       add_generation_prompt=True)
    assert rendered == arithmetic.prompt_text((80, 33, 95))  # a lone user turn is the prompt it was trained on
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids


def test_a_conversational_data_set_trains_on_the_tiny_model(tmp_path):
    from peft import LoraConfig

    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": f"{a}+{a}=?"}] for a in range(8)]})
    args = ARCAGRPOConfig(output_dir=str(tmp_path), report_to="none", credit="arca", max_steps=1,
                          per_device_train_batch_size=4, num_generations=4, max_completion_length=4,
                          logging_steps=1, save_strategy="no", use_cpu=True, bf16=False)
    trainer = ARCAGRPOTrainer(model=str(tiny_model_path()), reward_funcs=reward_len, args=args, train_dataset=data,
                              peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    trainer.train()
    assert trainer.state.global_step == 1
