"""The trainers on two CPU ranks (gloo) under every sharding backend accelerate offers: DDP, DeepSpeed ZeRO-2,
ZeRO-3 and FSDP2, each launched once with the shipped accelerate config (configs/accelerate/) and running several
(trainer, credit, beta) settings in sequence (tests/dist_worker.py). Each sharded run must compute exactly what the
DDP run computes on the same data: salience, token weights, token advantages, logged credit metrics, and the LoRA
weights after 2 steps. Then save / resume under ZeRO-3 and FSDP2, and `arca train` / `arca eval` from the CLI.

FSDP on CPU ranks: accelerate (1.15, 1.16) does not shard on a host without CUDA; `arca train` makes it
(`arca_rl._config.hardware.shard_fsdp_on_cpu_ranks`), and tests/dist_worker.py, on the Python API, calls the same
function. DeepSpeed JIT-compiles a shared-memory comm extension
on first use (g++ and ninja; cached in ~/.cache/torch_extensions): without them its tests are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
HERE = Path(__file__).parent

# What each launch runs (tests/dist_worker.py: trainer:credit:beta[:resume]). DDP is the reference for all of them.
GRPO = ["grpo:uniform:0", "grpo:uniform:0.04", "grpo:arca:0", "grpo:arca:0.04"]
RLOO = ["rloo:arca:0", "rloo:arca:0.04"]
FULL_RUNS = {
    "ddp": [*GRPO, *RLOO],
    "zero2": GRPO,
    "zero3": [*GRPO[:3], "grpo:arca:0.04:resume", *RLOO],
    "fsdp2": [*GRPO[:3], "grpo:arca:0.04:resume"],
}
# `make test` stays under its 10-minute budget with a subset of each launch's runs (every backend but ZeRO-2 is still
# launched, uniform and arca, both betas, GRPO and RLOO, save / resume each stay covered), and without ZeRO-2 and
# the CLI launches. `make test-sharded` runs all of them (ARCA_TEST_ALL_BACKENDS=1).
QUICK_RUNS = {
    "ddp": ["grpo:uniform:0", "grpo:arca:0", "grpo:arca:0.04", "rloo:arca:0.04"],
    "zero2": GRPO,
    "zero3": ["grpo:arca:0", "grpo:arca:0.04:resume", "rloo:arca:0.04"],
    "fsdp2": ["grpo:uniform:0", "grpo:arca:0.04:resume"],
}
ALL_BACKENDS = os.environ.get("ARCA_TEST_ALL_BACKENDS") == "1"
RUNS = FULL_RUNS if ALL_BACKENDS else QUICK_RUNS
# every sharded run has its DDP reference in the same mode
assert all(spec.removesuffix(":resume") in RUNS["ddp"] for b in ("zero3", "fsdp2") for spec in RUNS[b])
CONFIG_FILE = {
    "ddp": "ddp.yaml",
    "zero2": "deepspeed_zero2.yaml",
    "zero3": "deepspeed_zero3.yaml",
    "fsdp2": "fsdp2.yaml",
}
# |sharded - DDP| <= TOL * max(1, max |DDP value|) for every compared tensor and metric. Measured (torch 2.13 CPU,
# deepspeed 0.19.8, accelerate 1.15): ZeRO-2 and FSDP2 are bit-identical to DDP; ZeRO-3 differs by at most 1.4e-6 in
# the salience (values up to 9), 7.6e-6 in RLOO's credit-weighted old log-probs (sums of up to 8 log-probs),
# 6.6e-7 in the LoRA weights and 9.5e-7 in a logged metric: float rounding of its gathered/partitioned arithmetic.
TOL = 1e-5


def _close(got, want) -> bool:
    scale = max(1.0, _max_abs(want))
    return _max_diff(got, want) <= TOL * scale


def _path() -> str:
    """PATH with this interpreter's bin folder first: the ninja that pip installs with deepspeed lives there."""
    return os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")]))


def _deepspeed_missing() -> str | None:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return "deepspeed is not installed (it is in the dev extra: DS_BUILD_OPS=0 pip install -e '.[dev]')"
    missing = [tool for tool in ("g++", "ninja") if shutil.which(tool, path=_path()) is None]
    if missing and not any(Path.home().joinpath(".cache", "torch_extensions").glob("*/deepspeed_shm_comm*")):
        return f"DeepSpeed's CPU comm extension is JIT-compiled and needs {' and '.join(missing)}, not found"
    return None


def launch(config_file: Path, args: list[str], *, timeout: int = 480) -> str:
    """`accelerate launch --config_file <config_file> <args>` from the repository root, in its own process group
    (killed whole on a timeout, so no rank outlives the test)."""
    if "deepspeed" in config_file.name:
        _wait_for_shm_build()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": _path()}
    launcher = Path(sys.executable).with_name("accelerate")
    # a free port per launch: two launches (or another job on the machine) never collide
    cmd = [str(launcher), "launch", "--config_file", str(config_file), "--main_process_port", "0", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{config_file.name}: timed out after {timeout} s\n{output[-4000:]}")
    assert proc.returncode == 0, f"{config_file.name}: exit {proc.returncode}\n{output[-6000:]}"
    return output


def _prebuild_shm_comm() -> subprocess.Popen | None:
    """Start compiling DeepSpeed's CPU shared-memory comm extension in the background, as DeepSpeed itself would
    (`create_op_builder("ShareMemCommBuilder").load()`), when this module is collected. On a fresh clone (a new
    venv) that compile takes about 45 s of one core; this way it runs on the spare core while the one-process
    tests run, and the DeepSpeed launches find it built. Best effort: if it fails, a launch compiles it itself.
    Never killed: torch's build lock must not be left behind (a launch waits on the lock while it builds).
    Checked without importing deepspeed here, so collection stays cheap."""
    import importlib.util

    tools = all(shutil.which(tool, path=_path()) for tool in ("g++", "ninja"))
    if importlib.util.find_spec("deepspeed") is None or not tools:
        return None
    code = (
        "from deepspeed.accelerator import get_accelerator; "
        "get_accelerator().create_op_builder('ShareMemCommBuilder').load()"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": _path()}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


_SHM_BUILD = _prebuild_shm_comm()


def _wait_for_shm_build() -> None:
    """Before a DeepSpeed launch: let the background compile finish with the extension the launch loads (after
    300 s the launch goes ahead and waits on torch's build lock itself)."""
    if _SHM_BUILD is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            _SHM_BUILD.wait(timeout=300)


_launched: dict[str, Path] = {}

_FULL_ONLY = pytest.mark.skipif(not ALL_BACKENDS, reason="in `make test-sharded` only (ARCA_TEST_ALL_BACKENDS=1)")


def _backends(*names: str) -> list:
    """`names` as parameters, those of the full matrix only (zero2) marked to run in `make test-sharded` only."""
    return [pytest.param(b, marks=_FULL_ONLY) if b == "zero2" else b for b in names]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """backend -> the folder its one launch wrote (launched on first use, once per module)."""

    def get(backend: str) -> Path:
        if backend != "ddp" and backend != "fsdp2" and (reason := _deepspeed_missing()):
            pytest.skip(reason)
        if backend not in _launched:
            out = tmp_path_factory.mktemp(backend)
            worker = str(HERE / "dist_worker.py")
            launch(CONFIGS / CONFIG_FILE[backend], [worker, str(out), *RUNS[backend]])
            _launched[backend] = out
        return _launched[backend]

    return get


def load(folder: Path, spec: str, rank: int) -> tuple[dict, dict]:
    sub = folder / spec.replace(":", "_")
    return torch.load(sub / f"rank{rank}.pt"), json.loads((sub / f"rank{rank}.json").read_text())


def _max_abs(a) -> float:
    if isinstance(a, dict):
        return max(_max_abs(v) for v in a.values())
    return a.abs().max().item() if a.numel() else 0.0


def _max_diff(a, b) -> float:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return max(_max_diff(a[k], b[k]) for k in a)
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item() if a.numel() else 0.0


@pytest.mark.parametrize("backend", _backends("ddp", "zero2", "zero3", "fsdp2"))
def test_backend_really_runs_as_configured(runs, backend):
    folder = runs(backend)
    for spec in RUNS[backend]:
        for rank in (0, 1):
            _, meta = load(folder, spec, rank)
            assert meta["world"] == 2
            sharding = meta["sharding"]
            if backend == "ddp":
                assert meta["distributed_type"] == "MULTI_CPU" and not meta["is_deepspeed_enabled"]
                assert sharding["kind"] == "plain"
            elif backend in ("zero2", "zero3"):
                assert meta["distributed_type"] == "DEEPSPEED" and meta["zero_stage"] == int(backend[-1])
                assert meta["wrapped"] == "DeepSpeedEngine"
                if backend == "zero3":  # each rank holds half of a LoRA weight: really partitioned
                    assert sharding["kind"] == "zero3" and sharding["local"] * 2 == sharding["full"] > 0
            else:
                assert meta["distributed_type"] == "FSDP" and meta["is_fsdp_enabled"]
                assert sharding["kind"] == "dtensor" and sharding["local"] * 2 == sharding["full"] > 0
            # the credit metrics are gathered over ranks: every rank logs the same finite figures, each step
            assert len(meta["logged"]) == 2
            assert meta["logged"] == load(folder, spec, 1 - rank)[1]["logged"]
            assert all(math.isfinite(v) for step in meta["logged"] for v in step.values())


SHARDED = [(b, spec) for b in ("zero2", "zero3", "fsdp2") for spec in RUNS[b]]


@pytest.mark.parametrize(
    ("backend", "spec"),
    [pytest.param(b, s, id=f"{b}-{s}", marks=[_FULL_ONLY] if b == "zero2" else []) for b, s in SHARDED],
)
def test_sharded_credit_equals_ddp(runs, backend, spec):
    reference_spec = spec.removesuffix(":resume")
    sharded_folder, ddp_folder = runs(backend), runs("ddp")
    for rank in (0, 1):
        got, meta = load(sharded_folder, spec, rank)
        want, want_meta = load(ddp_folder, reference_spec, rank)
        # the same rollouts (same completions on the same rank), so the rest is comparable
        assert torch.equal(got["completion_ids"], want["completion_ids"])
        assert got["weights"].shape[0] == 2  # one training micro-batch per step
        keys = ["salience", "weights", "token_advantages"]
        if spec.startswith("rloo"):
            keys += ["weighted_logps", "weighted_old_logps"]
        for key in keys:
            assert _close(got[key], want[key]), (key, _max_diff(got[key], want[key]))
        for step_got, step_want in zip(meta["logged"], want_meta["logged"], strict=True):
            assert step_got.keys() == step_want.keys()
            assert all(abs(step_got[k] - step_want[k]) <= TOL * max(1, abs(step_want[k])) for k in step_got)
    # non-trivial credit: arca's weights are not uniform, and the token advantages are not all zero
    want, _ = load(ddp_folder, reference_spec, 0)
    mask = want["mask"].bool()
    uniform = mask / mask.sum(-1, keepdim=True).clamp(min=1)
    spread = (want["weights"] - uniform).abs().max().item()
    assert spread > 1e-3 if ":arca:" in spec else spread < 1e-6
    assert want["token_advantages"].abs().max() > 1e-3
    # the LoRA weights after 2 steps, gathered from the shards on rank 0, equal to DDP's
    got, _ = load(sharded_folder, spec, 0)
    assert len(got["lora"]) == 12 and _close(got["lora"], want["lora"])


@pytest.mark.parametrize("backend", ["zero3", "fsdp2"])
def test_checkpoint_under_sharding_resumes_to_the_same_adapter(runs, backend):
    """checkpoint-2's adapter file holds the full trained weights (not a rank's empty partition), and a trainer
    resumed from checkpoint-1 ends with the adapter of the uninterrupted run."""
    result, meta = load(runs(backend), "grpo:arca:0.04:resume", 0)
    assert meta["resumed_step"] == 2
    trained = {k.replace(".default", ""): v for k, v in result["lora"].items()}
    assert trained.keys() == result["checkpoint2_adapter"].keys()
    assert _close(result["checkpoint2_adapter"], trained)
    assert _close(result["resumed_lora"], result["lora"])
    assert min(v.abs().max().item() for v in trained.values()) > 0  # not an empty or zeroed save


@pytest.mark.parametrize("backend", [pytest.param("zero3", marks=_FULL_ONLY), pytest.param("fsdp2", marks=_FULL_ONLY)])
def test_cli_train_under_sharding_then_arca_eval_unsharded(backend, tiny_run_config, tmp_path):
    """`accelerate launch --config_file configs/accelerate/<file> -m arca_rl.cli train`: the shipped config trains,
    the final adapter holds the full trained weights (those of checkpoint-2, not a rank's shard), the run's eval ran
    on an unsharded copy, and `arca eval` in this (single) process loads the adapter and reproduces eval.json."""
    import yaml
    from safetensors.torch import load_file

    from arca_rl.cli import main

    if backend == "zero3" and (reason := _deepspeed_missing()):
        pytest.skip(reason)
    raw = tiny_run_config  # no ddp_backend: `arca train` picks gloo for CPU ranks by itself
    config, run_dir = tmp_path / "tiny.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(raw))
    cli = ["-m", "arca_rl.cli", "train", "--config", str(config), "--output-dir", str(run_dir), "--quiet"]
    output = launch(CONFIGS / CONFIG_FILE[backend], cli)  # as docs/many-gpus.md has it: nothing patched
    # one report, from the main process (rank 1 is done before rank 0 has saved and evaluated)
    assert output.count("run finished:") == 1 and "run stopped before max_steps" not in output
    assert json.loads((run_dir / "finished.json").read_text())["global_step"] == 2
    final = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    checkpoint = load_file(str(run_dir / "checkpoint-2" / "adapter_model.safetensors"))
    assert len(final) == 8 and _max_diff(final, checkpoint) == 0.0  # r=4 LoRA on q_proj, v_proj of 2 layers
    # full (r x in, out x r) matrices, not a rank's partition; lora_A is random at init (lora_B may stay 0 here: the
    # random model scores 0 on arithmetic, so every advantage is 0)
    assert all(v.dim() == 2 and 4 in v.shape and v.numel() > 4 for v in final.values())
    assert all(v.abs().max() > 0 for k, v in final.items() if "lora_A" in k)
    assert main(["eval", "--adapter", str(run_dir), "--out", str(tmp_path / "eval.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text()) == json.loads((run_dir / "eval.json").read_text())


def _fake_trainer(*, fsdp: str | None = None, zero: dict | None = None):
    """What `_check_sharded_saving` reads of a trainer: its backend and accelerate's plugin settings."""
    from types import SimpleNamespace as NS

    state = NS(fsdp_plugin=NS(state_dict_type=fsdp), deepspeed_plugin=NS(deepspeed_config={"zero_optimization": zero}))
    return NS(is_fsdp_enabled=fsdp is not None, is_deepspeed_enabled=zero is not None, accelerator=NS(state=state))


def test_sharded_saving_settings_that_write_no_readable_weights_are_refused():
    """Before training: an FSDP sharded state dict, or ZeRO-3 full fine-tuning without the gather-on-save flag,
    would leave checkpoints and final weights that no single process can load; each is a ConfigError naming the
    setting. What the shipped files set passes."""
    from arca_rl._run.training import _check_sharded_saving
    from arca_rl.errors import ConfigError

    with pytest.raises(ConfigError, match="fsdp_state_dict_type: FULL_STATE_DICT"):
        _check_sharded_saving(_fake_trainer(fsdp="StateDictType.SHARDED_STATE_DICT"), lora=True)
    with pytest.raises(ConfigError, match="stage3_gather_16bit_weights_on_model_save: true"):
        _check_sharded_saving(_fake_trainer(zero={"stage": 3}), lora=False)
    assert _check_sharded_saving(_fake_trainer(fsdp="StateDictType.FULL_STATE_DICT"), lora=True)
    assert _check_sharded_saving(_fake_trainer(zero={"stage": 3}), lora=True)  # the Trainer gathers an adapter
    zero3 = json.loads((CONFIGS / "ds_zero3.json").read_text())["zero_optimization"]
    assert _check_sharded_saving(_fake_trainer(zero=zero3), lora=False)
    assert _check_sharded_saving(_fake_trainer(zero={"stage": 2}), lora=False)
    assert not _check_sharded_saving(_fake_trainer(), lora=True)  # DDP / one process: nothing to gather
