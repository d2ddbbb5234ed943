"""What `arca diagnose` runs: load a model (+ adapter, or a run folder of `arca train`) and a task,
`diagnose` it, write the page."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _checks as checks
from .. import _credit_fields, _outfolder, group_credit, rundir
from .._config import ConfigError, RunConfig, default_model_path, load_config
from .._run import evaluation as _evaluation
from ..group_credit import registered_methods
from ..oracle import MAX_ROLLOUTS, POSITIONS, max_rollouts
from ..tasks import get_task
from .pipeline import diagnose

if TYPE_CHECKING:  # pragma: no cover
    from .results import DiagnoseResult

__all__ = ["run_diagnose"]


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# Without a run to take them from: sampling as a plain GRPO run; the weights (power, eps, min_salience, ...)
# and the mix lambda at the credit settings' defaults.
_SAMPLING_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 128}


def _default_settings() -> dict[str, Any]:
    return {
        **_SAMPLING_DEFAULTS,
        **_credit_fields.weight_kwargs({}),
        "mix": _credit_fields.final_lambda(_credit_fields.defaults()),
    }


def run_settings(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """What a run folder's validated config (`rundir.read_config`) sets for a diagnosis: sampling, every
    `credit.token_weights` keyword of its credit settings (`token_weight_kwargs`) and the mix lambda it ended with
    (its last logged `credit/mix`, else `_credit_fields.final_lambda` of its config; a warm-up with no step count:
    the full `credit_mix`)."""
    args = cfg.training_args(run_dir, for_validation=True)
    logged = [m["credit/mix"] for m in rundir.read_metrics(run_dir) if _finite(m.get("credit/mix"))]
    lam = _credit_fields.final_lambda(cfg.training, logged)
    return {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_completion_length,
        **args.token_weight_kwargs(),
        "mix": float(args.credit_mix) if lam is None else lam,
    }


def config_settings(cfg: RunConfig) -> tuple[dict[str, Any], Any]:
    """What a config (no run folder) sets for a diagnosis, and its training arguments (whose group-method settings
    diagnose then uses): sampling, every `credit.token_weights` keyword and the mix lambda in force at its last
    step (`_credit_fields.final_lambda`; a warm-up with no step count: the full `credit_mix`)."""
    args = cfg.training_args(Path(tempfile.gettempdir()) / "arca-diagnose-config", for_validation=True)
    lam = _credit_fields.final_lambda(cfg.training)
    return {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_completion_length,
        **args.token_weight_kwargs(),
        "mix": float(args.credit_mix) if lam is None else lam,
    }, args


def _settings_line(settings: Mapping[str, Any], group_args: Any) -> str:
    """The credit settings every method is scored with, as the printed table states them."""
    given = {kwarg: settings[kwarg] for kwarg in _credit_fields.weight_kwargs({})}
    text = ", ".join(f"{k} = {v:g}" for k, v in given.items()) + f", mix lambda = {float(settings['mix']):g}"
    group = {
        name: (getattr(group_args, name) if group_args is not None else value)
        for name, value in _credit_fields.defaults().items()
        if _credit_fields.settings()[name].use is _credit_fields.Use.GROUP
        and name not in ("credit_vine_samples", "credit_vine_batch_rows", "credit_vine_positions")  # vine: not scored
    }
    return text + "; " + ", ".join(f"{name.removeprefix('credit_')} = {value!r}" for name, value in group.items())


def run_diagnose(
    *,
    config: str | Path | RunConfig | None = None,
    task: str | None = None,
    task_options: Mapping[str, Any] | None = None,
    model: str | None = None,
    adapter: str | Path | None = None,
    n: int = 32,
    k: int = 4,
    out: str | Path | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    power: float | None = None,
    eps: float | None = None,
    mix: float | None = None,
    seed: int = 0,
    batch_size: int = 16,
    signals: Sequence[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    oracle_samples: int | None = None,
    oracle_positions: str | None = None,
    oracle_step_seeds: bool = False,
) -> tuple[DiagnoseResult, dict[str, Path]]:
    """What `arca diagnose` does: load model (+ adapter) and task, `diagnose`, write the outputs.

    With `adapter` a run folder of `arca train`, the run's validated config (`rundir.read_config`)
    gives the defaults: model, task (its options and prompt truncation), temperature, top-p,
    completion length, and every credit field that shapes the weights
    (`ARCAGRPOConfig.token_weight_kwargs`: power, eps, min_salience) plus the credit_mix lambda the
    run ended with (its last logged `credit/mix`, else `credit_lambda(max_steps)`), so the weights
    shown are the ones the trainer used last. Otherwise: the adapter's recorded base model or the
    embedded tiny model, temperature 1, top-p 1, power 1, mix 1, 128 new tokens. Arguments given here win. The model
    runs in float32. `out` defaults to `diagnose/<name>`, <name> being the run's name, the adapter
    folder's name or the model's. `oracle_samples=K` adds the Monte Carlo oracle, at `oracle_positions`
    ("adaptive", the default, or "all"; `oracle_step_seeds`: step boundaries first, adaptive only; see
    `diagnose`); either without `oracle_samples` is refused (ConfigError), as it would do nothing.
    `config` (a config file, a packaged config's name, or a `RunConfig`): every method is scored with that config's
    credit settings (power, eps, min_salience, the mix lambda it ends with, every group method's settings); without a
    run folder it also gives the model, task and sampling, as a run folder would. Over a run folder's, a config's
    credit settings win. The printed table says which settings were used and where they came from.
    Returns the result and the written files.
    """
    # Every argument is checked here, before any model or data loads (the CLI checked its flags already).
    checks.check_count(n, "--n")
    checks.check_count(k, "--k")
    checks.check_count(batch_size, "--batch-size")
    checks.check_seed(seed, "--seed")
    if oracle_samples is not None:
        checks.check_count(oracle_samples, "--oracle")
    if oracle_samples is None:  # the oracle's own settings do nothing without it: said, not ignored
        if oracle_positions is not None:
            raise ConfigError("--oracle-positions: only with --oracle K (it picks the prefixes the oracle samples); "
                              "add --oracle K or drop --oracle-positions")  # fmt: skip
        if oracle_step_seeds:
            raise ConfigError("--oracle-step-seeds: only with --oracle K (it picks the prefixes the oracle samples); "
                              "add --oracle K or drop --oracle-step-seeds")  # fmt: skip
    oracle_positions = "adaptive" if oracle_positions is None else oracle_positions
    if oracle_positions not in POSITIONS:
        raise ConfigError(f"--oracle-positions: must be one of {', '.join(POSITIONS)}, got {oracle_positions!r}")
    if oracle_step_seeds and oracle_positions != "adaptive":
        raise ConfigError("--oracle-step-seeds: only with --oracle-positions adaptive (all samples every prefix); "
                          "drop one of them")  # fmt: skip
    if signals is not None:
        signals = checks.check_names(signals, "--signals", valid=registered_methods, what="signal")
    if device is not None:
        checks.check_device(device, "--device")
    if out is not None:
        checks.check_output_folder(out, "--out")

    say = log or (lambda _m: None)
    config_cfg = None
    if config is not None:  # read and validated before anything loads
        config_cfg = config if isinstance(config, RunConfig) else load_config(config)
    settings = _default_settings()
    settings_from = "the defaults (no run folder or config)"
    run_name = run_task = None
    run_options: dict[str, Any] = {}
    max_prompt_tokens = None
    model_path = model
    adapter_dir = run_dir = None
    group_args = None  # the run's config, whose group-method settings diagnose then uses
    if adapter is not None:
        adapter_dir, run_dir = rundir.resolve_adapter(adapter)
    if run_dir is not None:
        cfg = rundir.read_config(run_dir)
        settings.update(run_settings(cfg, run_dir))
        group_args = cfg.training_args(run_dir, for_validation=True)
        run_name, run_task, run_options = cfg.name, cfg.task.name, dict(cfg.task.options)
        max_prompt_tokens = cfg.task.max_prompt_tokens
        model_path = model_path or cfg.model.name_or_path
        settings_from = f"the run {run_dir}"
    if config_cfg is not None:
        credit_part, group_args = config_settings(config_cfg)
        if run_dir is None:  # the config stands for the run: its model, task and sampling too
            settings.update(credit_part)
            run_name, run_task, run_options = config_cfg.name, config_cfg.task.name, dict(config_cfg.task.options)
            max_prompt_tokens = config_cfg.task.max_prompt_tokens
            model_path = model_path or config_cfg.model.name_or_path
        else:  # over a run folder: only the credit settings
            settings.update({k: credit_part[k] for k in (*_credit_fields.weight_kwargs({}), "mix")})
        settings_from = f"the config {config if not isinstance(config, RunConfig) else config_cfg.name}"
    if model_path is None and adapter_dir is not None:
        model_path = _evaluation.adapter_base_model(adapter_dir)
    if model_path is None:
        model_path = default_model_path()
        if not Path(model_path).is_dir():
            raise FileNotFoundError(
                f"the embedded tiny model is not built ({model_path}); run `make tiny-model` or pass --model"
            )
    given = {
        "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "power": power, "eps": eps,
        "mix": mix,
    }  # fmt: skip
    settings.update({key: value for key, value in given.items() if value is not None})
    checks.check_count(settings["max_new_tokens"], "--max-new-tokens")
    checks.check_number(settings["temperature"], "--temperature", low=0, low_open=True)
    checks.check_number(settings["top_p"], "--top-p", low=0, low_open=True, high=1)
    checks.check_number(settings["power"], "--power", low=0, low_open=True)
    if oracle_samples is not None:  # its cost is bounded before anything is spent (memory is bounded whatever K)
        most = max_rollouts(n, n * k, int(settings["max_new_tokens"]), oracle_samples)
        if most > MAX_ROLLOUTS:
            raise ConfigError(
                f"--oracle: K={oracle_samples} asks for up to {most:,} sampled continuations (K x (n + n*k x "
                f"(max_new_tokens - 1)) with n={n}, k={k}, max_new_tokens={int(settings['max_new_tokens'])}), "
                f"more than the {MAX_ROLLOUTS:,} one run may sample; lower --oracle, --n, --k or --max-new-tokens"
            )
    mix_in_force = settings["mix"]
    if not _credit_fields.MIX_RANGE.contains(mix_in_force):
        raise ConfigError(
            f"--mix: must be {_credit_fields.MIX_RANGE.describe()} (the credit_mix lambda; 1 = the signals alone), "
            f"got {mix_in_force!r}"
        )
    if mix is None and mix_in_force != 1.0:
        whose = "config" if config_cfg is not None else "run"
        say(f"applying the {whose}'s final credit mix lambda = {mix_in_force:g} to every signal's weights")

    task_name = task or run_task
    if not task_name:
        raise ConfigError("task: name a task (--task arithmetic|math|gsm8k); there is no run config to take it from")
    opts = dict(run_options) if task_name == run_task else {}
    opts.update(task_options or {})
    try:
        task_obj = get_task(task_name, **opts)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"task: {exc}") from exc
    if out is None:
        if run_name:
            name = run_name
        elif adapter_dir is not None:
            name = (adapter_dir.parent if adapter_dir.name == "adapter" else adapter_dir).name
        else:
            name = Path(str(model_path)).name or "model"
        out = checks.check_output_folder(Path("diagnose") / name, "--out")
    out = Path(out)
    # A folder of the user's is refused here, before the lock file goes in and before any model loads; the files an
    # earlier diagnosis recorded writing there are replaced, and only those (`_outfolder`).
    _outfolder.claim(out, command="diagnose")
    with rundir.lock(out):  # a second diagnosis into `out` is refused while this one runs
        earlier = _outfolder.claim(out, command="diagnose")  # again: no other diagnosis can change it now
        say(f"loading {model_path}" + (f" + adapter {adapter_dir}" if adapter_dir else " (no adapter)"))
        lm, tok = _evaluation.load_model_for_eval(str(model_path), adapter_dir, dtype="float32", device=device)
        task_obj.use_tokenizer(tok)  # chat prompts in the model's chat template, as `arca train` renders them
        try:
            data = task_obj.test_dataset(n)
        except ValueError as exc:  # the task's own data checks (missing columns, empty prompts)
            raise ConfigError(f"task: {exc}") from exc
        if max_prompt_tokens is not None:
            data = task_obj.truncate_prompts(data, tok, max_prompt_tokens)
        prompts = list(data["prompt"])[:n]
        solutions = list(data["solution"])[: len(prompts)] if "solution" in data.column_names else None

        if oracle_samples is not None and solutions is None:
            raise ConfigError(f"task {task_name}: its test split has no solution column, so the oracle has no reward")

        # the run's (or given) credit.token_weights keywords: numbers, as diagnose takes them
        weights: dict[str, Any] = {kwarg: float(settings[kwarg]) for kwarg in _credit_fields.weight_kwargs({})}

        def reward(i: int, text: str) -> float | None:  # the oracle's success: a correct answer (never partial)
            return None if solutions is None else float(task_obj.correct(text, solutions[i]))

        result = diagnose(
            lm,
            tok,
            prompts,
            k=k,
            max_new_tokens=int(settings["max_new_tokens"]),
            temperature=float(settings["temperature"]),
            top_p=float(settings["top_p"]),
            signals=signals,
            mix=float(mix_in_force),
            **weights,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
            rewards=reward,
            oracle_samples=oracle_samples,
            oracle_positions=oracle_positions,
            oracle_step_seeds=oracle_step_seeds,
            group_kwargs=_group_kwargs(group_args, tok),
            answer_span=task_obj.answer_span,
        )
        result.settings.update(
            model=str(model_path), adapter=str(adapter_dir) if adapter_dir else None, task=task_name,
            credit_settings=_settings_line({**settings, "mix": mix_in_force}, group_args),
            credit_settings_from=settings_from + (" and the flags given" if any(
                v is not None for k, v in given.items() if k in ("power", "eps", "mix")) else ""),
        )  # fmt: skip
        title = f"arca diagnose: {Path(str(model_path)).name}" + (f" + {adapter}" if adapter else " (no adapter)")
        files = result.write(out, title=title)
        say(result.table())
        seen = [r.reward for r in result.completions if r.reward is not None]
        if seen:
            say(f"mean reward of the {len(seen)} sampled completions: {sum(seen) / len(seen):.3f}")
        say(f"wrote {', '.join(sorted(files))} to {out}/")
        _outfolder.record(out, files.values(), earlier, command="diagnose")
    return result, files


def _group_kwargs(args: Any, tokenizer: Any) -> dict[str, dict[str, Any]] | None:
    """A run's group-method settings (`group_credit_kwargs`, HICRA's grams tokenized as the trainer tokenizes
    them); None without a run (the methods' defaults)."""
    if args is None:
        return None
    return {name: args.group_credit_kwargs(name, tokenizer) for name in group_credit.registered_group_methods()}
