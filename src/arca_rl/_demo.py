"""`arca demo`: the whole loop, offline, on the embedded tiny model and arithmetic task.

1. Evaluate the base model on the held-out split (200 problems: greedy accuracy, pass@4).
2. For each credit method (uniform and arca first, then entropy_reduction, surprisal and divergence
   while the time budget allows) and each seed (default 0, 1, 2), train from the same base with the
   same budget (`arca_rl.train`: 40 steps of 4 prompts x 8 completions, LoRA r=16, lr 3e-4) and
   evaluate again. Seed 0's run of a method is runs/demo/<method>/ (so `arca diagnose --adapter
   runs/demo/arca` works afterwards), the other seeds' runs/demo/<method>-s<seed>/.
3. After each method's training, its oracle lift and signed oracle measure (`arca_rl.oracle`): the
   method's own credit on 16 rollouts of its seed-0 final adapter (4 held-out prompts x 4 completions,
   so every prompt's completions form a group: group methods and every A_i need one), scored against
   Monte Carlo token values with K = 16 continuations per prefix (`arca diagnose --adapter
   runs/demo/<method> --n 4 --k 4 --oracle 16 --signals <method>`, written to runs/demo/<method>/oracle/).
   `vine` gets none: its token advantages are the oracle's own values.
4. Print a table (means over seeds; the oracle lift is seed 0's) and write runs/demo/summary.json:
   {"methods": {name: {"greedy_before", "greedy_after", "pass_at_k", "gini",
   "effective_token_ratio", "decisive_token_share", "oracle_lift", "oracle_lift_ci", "train_seconds",
   "seconds_per_step", ...}},
   "seconds": ...}.

Gini and EffN/T are the means over logging steps of the trainer's `credit/gini` and
`credit/effective_token_ratio`. The decisive-token share is the mean weight that the method put on
the first completion token (the token that picks the direct or the step-by-step strategy,
`arca_rl.tasks.arithmetic.DECISIVE_TOKEN_INDEX`), over every completion the trainer logged to
`credit_tokens.jsonl` during training (the demo config logs all completions of every step), i.e.
the credit as it was used for the gradient, not a re-scoring afterwards. Uniform credit gives 1/T
there, so compare methods against it.

A method may also be a variant (`arca_rl.variants`): a signal, then `+mix<lambda>` (credit_mix),
`+warmup<N>` (credit_warmup_steps) and/or `+topent<q>` (TRL's top_entropy_quantile), e.g.
`arca demo --methods uniform,arca,arca+mix0.5,arca+warmup10,uniform+topent0.2`; each trains with the
same budget as the plain methods, in runs/demo/<variant>/. The default method list has no variants.
`sdpo` is a method too: TRL's own SDPO trainer (`trainer: sdpo`, uniform credit) with the same budget.

The oracle lift is T * sum_t w_t o_t averaged over the rollouts, o_t being the share of the
completion's total |change in expected reward| that token t made: 1 for uniform credit, above 1
when the method's credit lands on the tokens that changed the expected reward.

The budget check: uniform and arca always run; every later method runs only if the time used so
far plus a projection of its cost (the measured time of arca's last run for signals that need the
adapter-off pass, of uniform's otherwise, times the number of seeds, plus that method's oracle
time) stays within the budget. `vine`, wherever it is in the list, is projected from its own continuations
(`vine_projection`: uniform's measured training time plus the continuations' generated tokens at the base
evaluation's cost per token) and skipped up front when that does not fit, with the --budget that would hold it;
summary.json lists every skipped method under "skipped", with its projection under "skipped_why".

torch runs single-threaded here (`arca demo --threads`): the model's matrices are too small to
gain from a second thread, and on a shared CPU OpenMP's spin-waiting made steps 5-10x slower.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from . import rundir
from ._config import RunConfig, load_config
from ._diagnose import run_diagnose
from ._run.evaluation import evaluate, load_model_for_eval, write_eval_json
from ._run.training import build_task, train
from .errors import ConfigError
from .group_credit import is_sampled_method, method_needs_base, registered_methods
from .variants import parse_variant

__all__ = [
    "DEFAULT_BUDGET_S", "DEFAULT_SEEDS", "DEMO_CONFIG_PATH", "DEMO_METHODS", "decisive_token_share", "demo_config",
    "run_demo", "vine_projection",
]  # fmt: skip

logger = logging.getLogger(__name__)

DEFAULT_BUDGET_S = 540.0
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_ORACLE_SAMPLES = 16  # K: continuations per prefix
ORACLE_PROMPTS, ORACLE_K = 4, 4  # the oracle scores 4 held-out prompts x 4 completions each: a group per prompt
ORACLE_ROLLOUTS = ORACLE_PROMPTS * ORACLE_K  # completions whose credit the oracle scores
DEMO_METHODS = ("uniform", "arca", "entropy_reduction", "surprisal", "divergence")
REQUIRED_METHODS = 2  # the first two methods always run
BASE_EVAL_FILE = "base_eval.json"
SUMMARY_FILE = "summary.json"

#: The demo's base config, shipped in the package; the repository's configs/demo.yaml links to it.
DEMO_CONFIG_PATH = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def demo_config(overrides: Sequence[str] = ()) -> RunConfig:
    """The validated demo config (`DEMO_CONFIG_PATH`), with optional `section.key=value` overrides."""
    return load_config(DEMO_CONFIG_PATH, overrides)


def decisive_token_share(credit_tokens_path: str | Path, index: int = 0) -> float | None:
    """Mean weight on completion token `index` over the completions logged in credit_tokens.jsonl (the path
    of a run folder or of the file; the active signal's rows, shadow signals' rows are skipped). Where the row
    records TRL's entropy mask (`top_entropy_quantile` < 1), a token the mask drops counts 0: its advantage never
    reaches the gradient."""
    shares = []
    for record in rundir.read_token_log(credit_tokens_path)[0]:
        if record.active is False or len(record.weights) <= index:
            continue
        keep = record.entropy_mask  # TRL's top_entropy_quantile mask, applied on top of the credit
        kept = 1.0 if keep is None or len(keep) <= index else float(keep[index])
        shares.append(record.weights[index] * kept)
    return sum(shares) / len(shares) if shares else None


SDPO_METHOD = "sdpo"  # `--methods sdpo`: TRL's SDPOTrainer (`trainer: sdpo`) on the same task, budget and evaluation


def _method_overrides(method: str, fields: dict[str, Any], *, seed: int, suffix: bool = False) -> list[str]:
    """The config overrides of one demo run: the method's signal and variant fields, the seed, the run name
    (`demo-<method>`, with '+' written '_' since run names are folder-safe; `-s<seed>` after the first seed)."""
    signal = method.split("+")[0]
    name = f"demo-{method.replace('+', '_')}" + (f"-s{seed}" if suffix else "")
    if method == SDPO_METHOD:  # TRL's own SDPO trainer: uniform credit, its loss is the method
        return ["trainer=sdpo", "training.credit=uniform", f"training.seed={seed}", f"name={name}"]
    return [
        f"training.credit={signal}",
        *(f"training.{key}={value}" for key, value in fields.items()),
        f"training.seed={seed}",
        f"name={name}",
    ]


def _mean_metric(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    return sum(values) / len(values) if values else None


def _method_figures(run_dir: Path, before: Any) -> dict[str, Any]:
    """One finished run's row of the demo table."""
    after = rundir.read_eval(run_dir) or {}
    finished = rundir.read_finished(run_dir) or {}
    rows = rundir.read_metrics(run_dir)
    return {
        "greedy_before": before.greedy_accuracy,
        "greedy_after": after.get("greedy_accuracy"),
        "pass_at_k_before": before.pass_at_k,
        "pass_at_k": after.get("pass_at_k"),
        "gini": _mean_metric(rows, "credit/gini"),
        "effective_token_ratio": _mean_metric(rows, "credit/effective_token_ratio"),
        "decisive_token_share": decisive_token_share(run_dir),
        "mean_train_reward": _mean_metric(rows, "reward"),
        "train_seconds": finished.get("train_seconds"),
        # the training time over the optimizer steps it took (vine's sampling included)
        "seconds_per_step": (
            finished["train_seconds"] / finished["global_step"] if finished.get("global_step") else None
        ),
    }


def _oracle_figures(run_dir: Path, signal: str, samples: int, progress: bool) -> dict[str, Any]:
    """The oracle lift of the run's own credit (`signal`, weighted as the run weighted it, its
    final credit mix included) on rollouts of the run's final adapter."""
    result, _files = run_diagnose(
        adapter=run_dir, n=ORACLE_PROMPTS, k=ORACLE_K, signals=[signal], oracle_samples=samples,
        out=run_dir / "oracle", progress=progress, log=None,
    )  # fmt: skip
    summ = result.signals.get(signal)
    lift = (summ.oracle_lift if summ is not None else None) or {}
    ci = [lift["ci_low"], lift["ci_high"]] if lift.get("ci_low") is not None else None
    signed = (summ.oracle_signed if summ is not None else None) or {}
    return {
        "oracle_lift": lift.get("mean"),
        "oracle_lift_ci": ci,
        "oracle_signed": signed.get("mean"),
        "oracle_signed_ci": [signed["ci_low"], signed["ci_high"]] if signed.get("ci_low") is not None else None,
        "oracle_rows": lift.get("n"),
        "oracle_top_match": summ.oracle_top_match if summ is not None else None,
        "oracle_seconds": result.settings.get("oracle_seconds"),
    }


def vine_projection(
    cfg: RunConfig, *, slot_seconds: float, train_seconds: float, mean_length: float | None
) -> dict[str, Any]:
    """The projected cost of one vine run of `cfg` (one seed): `train_seconds` (a run's training without vine, e.g.
    uniform's measured time) plus its continuations, each generated token slot at `slot_seconds` (the base
    evaluation's cost per slot). Per step, K continuations of each prompt (V_0, budget L) and of each sampled prefix
    of each completion (on average a budget of L - T/2 slots), T the completions' mean length (`mean_length`, else
    L). Sampled prefixes per completion: `credit_vine_positions: all`, every one of 1 .. T - 1; adaptive, as many
    as halving [0, T] takes to find one token where the value moves, ceil(log2 T) (at least T / 32, its largest
    gap), at most T - 1. Conservative: on the embedded task adaptive sampled about a third of that."""
    args = cfg.training_args("unused", for_validation=True)
    steps, length, k = int(args.max_steps), int(args.max_completion_length), int(args.credit_vine_samples)
    completions = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    prompts = completions // args.num_generations
    t = min(float(mean_length), float(length)) if mean_length else float(length)
    prefixes = max(t - 1.0, 0.0)
    if args.credit_vine_positions != "all" and t > 1:
        prefixes = min(prefixes, max(float(math.ceil(math.log2(t))), t / 32))
    rollouts = k * (prompts + completions * prefixes)
    slots = k * (prompts * length + completions * prefixes * (length - t / 2))
    return {
        "projected_seconds": train_seconds + steps * slots * slot_seconds,
        "rollouts_per_step": round(rollouts),
        "samples": k,
        "steps": steps,
    }


def _average(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean of each figure over seeds (None where a seed has none)."""
    rows = list(per_seed.values())
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        out[key] = None if any(v is None for v in values) else sum(values) / len(values)
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(methods: dict[str, dict[str, Any]], k: int) -> str:
    """The demo's table as aligned text."""
    header = [
        "method", "greedy before", "greedy after", f"pass@{k}", "Gini", "EffN/T", "decisive share", "oracle lift",
        "signed cos", "train s", "s/step",
    ]  # fmt: skip
    lines = [header]
    for name, m in methods.items():
        lines.append(
            [
                name,
                _fmt(m["greedy_before"]),
                _fmt(m["greedy_after"]),
                _fmt(m["pass_at_k"]),
                _fmt(m["gini"]),
                _fmt(m["effective_token_ratio"]),
                _fmt(m["decisive_token_share"]),
                _fmt(m.get("oracle_lift")),
                _fmt(m.get("oracle_signed")),
                _fmt(m.get("train_seconds"), 0),
                _fmt(m.get("seconds_per_step"), 2),
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for j, row in enumerate(lines):
        cells = (cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        out.append("  ".join(cells))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def run_demo(
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    methods: Sequence[str] | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    out_dir: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    oracle_samples: int = DEFAULT_ORACLE_SAMPLES,
) -> dict[str, Any]:
    """Run the demo; returns the summary (also written to <out_dir>/summary.json).

    `seeds` (default 0, 1, 2) trains each method once per seed; the table and summary hold means
    over seeds, with per-seed figures under "seeds" when there are several. The first seed's run
    is <out_dir>/<method>/, the others <out_dir>/<method>-s<seed>/. The output folder (default
    runs/demo) belongs to the demo: the folders of the runs it trains are replaced.
    `oracle_samples` (K, default 16; 0 turns it off) is the oracle's continuations per prefix.
    """
    t_start = time.perf_counter()
    if not isinstance(oracle_samples, int) or isinstance(oracle_samples, bool) or oracle_samples < 0:
        raise ConfigError(f"--oracle: must be an integer >= 0 (0 = no oracle), got {oracle_samples!r}")
    base = load_config(config, overrides) if config is not None else demo_config(overrides)
    methods = list(methods) if methods is not None else list(DEMO_METHODS)
    if not methods:
        raise ConfigError("--methods: needs at least one method, e.g. --methods uniform,arca")

    # Each method is a signal or a variant (arca+mix0.5, arca+warmup10, uniform+topent0.2): check them all,
    # and every config they make, before the base model is evaluated.
    signal_of: dict[str, str] = {}
    fields_of: dict[str, dict[str, Any]] = {}
    for method in methods:
        if method == SDPO_METHOD:  # `trainer: sdpo`; its oracle measure scores its credit, uniform
            signal_of[method], fields_of[method] = "uniform", {}
            continue
        try:
            signal_of[method], fields_of[method] = parse_variant(method, registered_methods())
        except ValueError as exc:
            raise ConfigError(f"--methods: {exc}") from None
    out = Path(out_dir) if out_dir is not None else rundir.default_run_dir("demo")
    seeds = list(seeds) if seeds is not None else list(DEFAULT_SEEDS)
    if not seeds:
        raise ConfigError("--seeds: needs at least one seed")
    for method in methods:
        for seed in seeds:  # every run's config, every seed included, is valid before any work
            base.with_overrides(_method_overrides(method, fields_of[method], seed=seed))
    # The demo holds its folder for its whole length (a second demo there is refused), and each run
    # folder is only ever emptied by `train(replace=True)` under that run's own lock. Refused before
    # any work: a folder of someone else's files, a run folder another process is training in.
    planned = {
        _run_dir(out, method, j, seed): _method_overrides(method, fields_of[method], seed=seed, suffix=j > 0)[-1]
        for method in methods
        for j, seed in enumerate(seeds)
    }
    ours = tuple(d.name for d in planned if rundir.is_ours(d) and d.is_dir())
    rundir.check_ours(out, also=(BASE_EVAL_FILE, SUMMARY_FILE, *ours))
    for run_dir, name_override in planned.items():
        rundir.check_ours(run_dir)
        held = _held_run(run_dir)
        if rundir.is_running(run_dir):
            raise rundir.RunLockedError(
                f"{run_dir} is in use by another run{f' ({held[1]})' if held else ''}; wait for it to end or "
                "stop it, or pick another --output-dir"
            )
        if held is not None and held[0] != name_override.removeprefix("name="):
            raise rundir.RunExistsError(
                f"{run_dir} holds another run ({held[1]}), not this demo's {name_override.removeprefix('name=')}; "
                "the demo would replace it: move it away, or pick another --output-dir"
            )
    with rundir.lock(out):
        return _run_demo_locked(
            base, methods, signal_of, fields_of, out=out, seeds=seeds, budget_s=budget_s, progress=progress,
            oracle_samples=oracle_samples, t_start=t_start,
        )


def _held_run(run_dir: Path) -> tuple[str, str] | None:
    """(name, description) of the run a folder's config.yaml records, None without one: what is in the folder,
    read from the run itself rather than guessed from the folder's name."""
    try:
        cfg = yaml.safe_load((run_dir / rundir.CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(cfg, dict):
        return None
    section = cfg.get("training")
    training: dict[str, Any] = section if isinstance(section, dict) else {}
    what = f"trainer {cfg['trainer']}" if cfg.get("trainer") not in (None, "grpo") else (
        "credit "
        f"{training.get('credit')}"
    )
    name = str(cfg.get("name"))
    return name, f"run {name!r}, {what}, seed {training.get('seed')}"


def _run_dir(out: Path, method: str, j: int, seed: int) -> Path:
    """Seed 0's (the first seed's) run of a method is <out>/<method>/, the others <out>/<method>-s<seed>/."""
    return out / method if j == 0 else out / f"{method}-s{seed}"


def _run_demo_locked(
    base: RunConfig,
    methods: list[str],
    signal_of: dict[str, str],
    fields_of: dict[str, dict[str, Any]],
    *,
    out: Path,
    seeds: list[int],
    budget_s: float,
    progress: bool,
    oracle_samples: int,
    t_start: float,
) -> dict[str, Any]:
    eval_kwargs = {**base.eval_arguments(), "progress": progress}
    base.model_path(check=True)
    print(f"arca demo: model {base.model_path()}, task {base.task.name}, methods {', '.join(methods)}, budget "
          f"{budget_s:.0f} s")
    model, tokenizer = load_model_for_eval(base.model_path(), dtype=base.model.dtype)
    task = build_task(base)
    task.use_tokenizer(tokenizer)  # chat prompts in the model's chat template, as `arca train` renders them
    t_eval = time.perf_counter()
    before = evaluate(model, tokenizer, task, **eval_kwargs)
    eval_seconds = time.perf_counter() - t_eval
    write_eval_json(before, out / BASE_EVAL_FILE)
    del model
    print(f"base model: greedy {before.greedy_accuracy:.3f}, pass@{before.k} {before.pass_at_k:.3f} on {before.n} "
          "held-out problems")

    results: dict[str, dict[str, Any]] = {}
    seconds_of: dict[str, float] = {}  # method -> seconds of its last run (for the projection)
    oracle_seconds = 0.0  # the last oracle's time (for the projection)
    skipped: list[str] = []
    skipped_why: dict[str, dict[str, Any]] = {}
    # the base evaluation's cost per generated token slot (greedy + sampled completions of max_new_tokens each)
    slot_seconds = eval_seconds / max(before.n * (1 + before.samples_per_problem) * eval_kwargs["max_new_tokens"], 1)
    for i, method in enumerate(methods):
        elapsed = time.perf_counter() - t_start
        if is_sampled_method(signal_of[method]):  # vine: its own continuations, whatever its place in the list
            plain = {m: v for m, v in seconds_of.items() if not is_sampled_method(signal_of[m])}
            uniform = plain.get("uniform", max(plain.values(), default=0.0))
            cfg0 = base.with_overrides(_method_overrides(method, fields_of[method], seed=seeds[0]))
            lengths = [r["completions/mean_length"] for r in rundir.read_metrics(out / "uniform") if "uniform" in plain
                       and isinstance(r.get("completions/mean_length"), int | float)]  # fmt: skip
            vine = vine_projection(cfg0, slot_seconds=slot_seconds, train_seconds=uniform,
                                   mean_length=sum(lengths) / len(lengths) if lengths else None)  # fmt: skip
            projected = vine["projected_seconds"] * len(seeds)
            if elapsed + projected > budget_s:
                needed = math.ceil((elapsed + projected) * 1.1)
                skipped.append(method)
                skipped_why[method] = {**vine, "projected_seconds": projected, "budget_needed": needed}
                print(
                    f"skipping {method}: about {projected:.0f} s for {len(seeds)} seed(s) ({vine['steps']} steps, each "
                    f"sampling about {vine['rollouts_per_step']:,} continuations, K={vine['samples']} per prefix), "
                    f"{elapsed:.0f} s used of the {budget_s:.0f} s budget; include it with --budget {needed} "
                    "(or fewer --seeds)"
                )
                continue
        elif i >= REQUIRED_METHODS and seconds_of:
            if method_needs_base(signal_of[method]) and "arca" in seconds_of:
                like: str | None = "arca"
            else:
                like = "uniform" if "uniform" in seconds_of else None
            projected = (seconds_of[like] if like else max(seconds_of.values())) * len(seeds) + oracle_seconds
            if elapsed + projected > budget_s:
                print(f"skipping {method}: {elapsed:.0f} s used, about {projected:.0f} s more would pass the "
                      f"{budget_s:.0f} s budget")
                skipped.append(method)
                needed = math.ceil((elapsed + projected) * 1.1)
                skipped_why[method] = {"projected_seconds": projected, "budget_needed": needed}
                continue
        per_seed: dict[str, dict[str, Any]] = {}
        for j, seed in enumerate(seeds):
            overrides_m = _method_overrides(method, fields_of[method], seed=seed, suffix=j > 0)
            run_dir = _run_dir(out, method, j, seed)
            cfg = base.with_overrides(overrides_m)
            seed_note = f", seed {seed}" if len(seeds) > 1 else ""
            print(f"[{i + 1}/{len(methods)}] training {method} ({cfg.training.get('max_steps')} steps{seed_note}) ...")
            t0 = time.perf_counter()
            train(cfg, run_dir=run_dir, progress=progress, print_logs=False, replace=True)
            seconds_of[method] = time.perf_counter() - t0
            per_seed[str(seed)] = _method_figures(run_dir, before)
            after = per_seed[str(seed)]
            print(
                f"    {method}{seed_note}: greedy {before.greedy_accuracy:.3f} -> {after['greedy_after']:.3f}, "
                f"pass@{before.k} {after['pass_at_k']:.3f} ({seconds_of[method]:.0f} s)"
            )
        results[method] = _average(per_seed)
        if oracle_samples and is_sampled_method(signal_of[method]):
            print(f"    {method}: no oracle lift (its token advantages are the oracle's own values)")
        elif oracle_samples:
            t0 = time.perf_counter()
            results[method].update(_oracle_figures(out / method, signal_of[method], oracle_samples, progress))
            oracle_seconds = time.perf_counter() - t0
            lift, signed = results[method]["oracle_lift"], results[method]["oracle_signed"]
            print(
                f"    {method}: oracle lift {_fmt(lift)}, signed cos {_fmt(signed)} on {ORACLE_ROLLOUTS} rollouts "
                f"({ORACLE_PROMPTS} prompts x {ORACLE_K}), K={oracle_samples} ({oracle_seconds:.0f} s)"
            )
        if len(seeds) > 1:
            results[method]["seeds"] = per_seed

    total = time.perf_counter() - t_start
    summary = {
        "methods": results,
        "seconds": round(total, 1),
        "k": before.k,
        "n": before.n,
        "steps": base.training.get("max_steps"),
        "seeds": seeds,
        "skipped": skipped,
        "skipped_why": skipped_why,  # each skipped method's projected seconds and the budget that would hold it
        "budget_seconds": budget_s,
        "oracle": (
            {"samples": oracle_samples, "rollouts": ORACLE_ROLLOUTS, "prompts": ORACLE_PROMPTS, "k": ORACLE_K,
             "seed": 0}
            if oracle_samples
            else None
        ),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(format_table(results, before.k))
    if len(seeds) > 1:
        print(f"(means over seeds {', '.join(map(str, seeds))}; per-seed figures in summary.json)")
    if skipped:
        about = ", ".join(f"{m} (about {skipped_why[m]['projected_seconds']:.0f} s)" for m in skipped)
        # a demo of those alone: the base evaluation, then their projected time (with a tenth to spare)
        need = math.ceil((eval_seconds + sum(skipped_why[m]["projected_seconds"] for m in skipped)) * 1.1)
        print(f"(skipped for time: {about}; run them with --methods {','.join(skipped)} --budget {need})")
    print(f"\n{total:.0f} s in all; summary in {out / SUMMARY_FILE}")
    return summary
