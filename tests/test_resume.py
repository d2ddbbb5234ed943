"""--resume: a run interrupted at step 2 and resumed ends with the same adapter as one never interrupted."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from arca_rl._config import parse_config
from arca_rl._run import training as run_module
from arca_rl._run.training import train
from arca_rl.rundir import RunExistsError, is_finished, last_checkpoint, read_metrics
from tiny import VariedReward

pytestmark = pytest.mark.slow


class StopAfter(TrainerCallback):
    """Simulates an interruption: stop training once `step` optimizer steps are done (after their checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, tiny_run_config, monkeypatch):
    real_build_task = run_module.build_task
    monkeypatch.setattr(run_module, "build_task", lambda cfg: VariedReward(real_build_task(cfg)))
    raw = tiny_run_config
    raw["training"].update(
        max_steps=4, save_steps=2, num_iterations=1, gradient_accumulation_steps=1, credit_log_tokens_every=1
    )
    raw["eval"]["enabled"] = False
    cfg = parse_config(raw)

    straight = train(cfg, run_dir=tmp_path / "straight", progress=False)
    assert is_finished(straight)

    interrupted = tmp_path / "interrupted"
    train(cfg, run_dir=interrupted, callbacks=[StopAfter(2)], progress=False)
    assert not is_finished(interrupted)
    assert last_checkpoint(interrupted).name == "checkpoint-2"
    assert not (interrupted / "adapter").exists()
    with pytest.raises(RunExistsError, match="unfinished run.*--resume"):
        train(cfg, run_dir=interrupted, progress=False)

    train(cfg, run_dir=interrupted, resume=True, progress=False)
    assert is_finished(interrupted)

    a = load_file(straight / "adapter" / "adapter_model.safetensors")
    b = load_file(interrupted / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    moved = 0
    for key in a:
        assert (a[key] - b[key]).abs().max().item() <= 1e-6, key
        moved += int(a[key].abs().sum().item() > 0)
    assert moved > 0  # lora_B left zero-init: training did move the adapter
    # metrics.jsonl of the resumed run has each step exactly once and matches the straight run's rewards
    rows_a, rows_b = read_metrics(straight), read_metrics(interrupted)
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    assert [r["reward"] for r in rows_a] == pytest.approx([r["reward"] for r in rows_b])
    # and so does the token dump (no duplicated steps after the resume)
    dump_a = (straight / "credit_tokens.jsonl").read_text().splitlines()
    dump_b = (interrupted / "credit_tokens.jsonl").read_text().splitlines()
    assert len(dump_a) == 4 * 4 and dump_a == dump_b


class TailAnswer(VariedReward):
    """VariedReward whose answer is a completion's last two characters, so that grail / oar_g find one in the tiny
    model's random completions and run their gradient pass."""

    def answer_span(self, text):
        n = len(text)
        return (max(0, n - 3), n, max(0, n - 2), n) if n else None


@pytest.mark.parametrize("credit", ["tempo", "grail", "oar_g", "delta"])
@pytest.mark.parametrize(
    "shape", [{"steps_per_generation": 2}, {"num_iterations": 2}], ids=["steps_per_generation=2", "num_iterations=2"]
)
def test_resume_inside_a_generation_batch_equals_uninterrupted(tmp_path, tiny_run_config, monkeypatch, shape, credit):
    """Issue 28 §1: TRL generates once per steps_per_generation x num_iterations micro-batches and keeps the rest in
    memory; a checkpoint at step 1 falls inside that batch. The resumed run is still the uninterrupted one: same
    adapter bit for bit, same metrics and token dump, and finished.json's train_loss covers every step. For every
    method computed once per generation batch: a group method (tempo) and the ones that read the model (grail and
    oar_g with their gradient pass and its RNG, delta)."""
    real_build_task = run_module.build_task
    monkeypatch.setattr(run_module, "build_task", lambda cfg: TailAnswer(real_build_task(cfg)))
    raw = tiny_run_config
    raw["training"].update(max_steps=4, save_steps=1, gradient_accumulation_steps=1, credit_log_tokens_every=1,
                           credit=credit, **shape)
    raw["eval"]["enabled"] = False
    cfg = parse_config(raw)
    straight = train(cfg, run_dir=tmp_path / "straight", progress=False)
    interrupted = tmp_path / "interrupted"
    train(cfg, run_dir=interrupted, callbacks=[StopAfter(1)], progress=False)
    assert last_checkpoint(interrupted).name == "checkpoint-1"
    train(cfg, run_dir=interrupted, resume=True, progress=False)

    a = load_file(straight / "adapter" / "adapter_model.safetensors")
    b = load_file(interrupted / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[key], b[key]) for key in a), [(a[k] - b[k]).abs().max().item() for k in a]
    rows_a, rows_b = read_metrics(straight), read_metrics(interrupted)
    drop = ("step_time",)  # wall-clock
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows_b
    ]
    assert (straight / "credit_tokens.jsonl").read_bytes() == (interrupted / "credit_tokens.jsonl").read_bytes()
    loss_a = json.loads((straight / "finished.json").read_text())["train_summary"]["train_loss"]
    loss_b = json.loads((interrupted / "finished.json").read_text())["train_summary"]["train_loss"]
    assert loss_b == pytest.approx(loss_a, rel=1e-5, abs=1e-9)
