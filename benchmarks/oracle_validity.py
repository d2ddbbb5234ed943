"""Does the oracle predict learning? The validity study of issue 34 §4.

On a family of embedded task variants (`arca_rl.tasks.arithmetic.VARIANTS`: the same problems, prompt and reward;
the tiny model warm-started on completions whose decisive tokens sit elsewhere, `scripts/build_tiny_model.py
--variant V --init <shipped model>`), per variant:

1. **The oracle on base rollouts** (`diagnose`, `positions="all"`, no adapter): every method's placement (score minus
   its shuffled control, `arca_rl.oracle.placement`) for the signed measure and the lift, and the check that the
   value jumps sit where the variant puts them: the mean share of |delta| on the decisive tokens
   (`arithmetic.decisive_chars`) against their share under uniform credit.
2. **Training**: each of `--methods` (default: uniform, surprisal, entropy_reduction, tempo, gtpo, self_teacher and
   the shuffled controls of surprisal and entropy_reduction), `--seeds` seeds, `--steps` steps of the demo config
   from the variant's model (greedy learning curve every 5 steps on 100 held-out problems, final greedy accuracy
   on 200), paired against uniform on
   the same seed: gain = method - uniform, for the final greedy accuracy (primary, declared before any run), the
   curve area (mean over the curve), and the greedy accuracy at the curve step where uniform is mid-learning
   (`mid_step`, chosen from uniform's curves alone: where a variant saturates by the last step, this is where
   methods can still differ).
   A method `X+shuffle` is X trained with `credit_shuffle: true`; its placement is measured on X's weights permuted
   within each completion (one seeded permutation per row).

Across the (variant, method) points: Spearman's rank correlation between placement and paired gain, with a
percentile bootstrap interval that resamples variants, and within each the seeds (the paired differences), and the
R^2 of a least-squares line. arca and divergence need an adapter (there is none before training) and vine is the
oracle itself, so they have no base placement and no point. Progress is kept per variant under `--work`, so
variants can run in parallel processes (`--variants first,late`) and a final call over all of them, which finds
every run done, writes the JSON (`tasks`, `seeds`, `methods`, `points`, `correlations`, `primary`) and one figure
of scatter plots, the primary pair (signed placement, final gain) first.

    OMP_NUM_THREADS=1 nice python benchmarks/oracle_validity.py --out benchmarks/results/oracle_validity.json \\
        --plot docs/img/oracle_validity.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

VARIANTS = ("first", "two", "late", "ends", "tail", "digits")
METHODS = (
    "uniform", "surprisal", "entropy_reduction", "tempo", "gtpo", "self_teacher", "surprisal+shuffle",
    "entropy_reduction+shuffle",
)  # fmt: skip
MEASURES = ("signed", "lift")  # placement measures: the primary first
GAINS = ("final", "area", "mid")  # paired gains: the primary first
_PROMPT = re.compile(r"Q: (\d+)\+(\d+)\+(\d+)=\?")


# ---- statistics -------------------------------------------------------------------------------------------------


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = float(spearmanr(x, y).statistic)
    return rho if math.isfinite(rho) else None


def r_squared(x: Sequence[float], y: Sequence[float]) -> float | None:
    """R^2 of the least-squares line y = a + b x."""
    if len(x) < 3 or len(set(x)) < 2:
        return None
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    b, a = np.polyfit(xa, ya, 1)
    ss_res = float(((ya - (a + b * xa)) ** 2).sum())
    ss_tot = float(((ya - ya.mean()) ** 2).sum())
    return None if ss_tot == 0 else 1.0 - ss_res / ss_tot


def correlate(
    points: Sequence[dict[str, Any]], measure: str, gain: str, *, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Spearman(placement, paired gain) over the points with both, its percentile bootstrap interval (resampling
    variants, then seeds within each: a point's gain is the mean of its resampled per-seed differences, the seeds
    drawn once per variant and shared by its methods, as the differences are paired on them) and R^2 of a line."""
    use = [p for p in points if p["placement"].get(measure) is not None and p["gain"][gain].get("per_seed")]
    x = [p["placement"][measure] for p in use]
    y = [p["gain"][gain]["mean"] for p in use]
    out: dict[str, Any] = {
        "measure": measure, "gain": gain, "n_points": len(use), "spearman": spearman(x, y), "r2": r_squared(x, y),
        "ci_low": None, "ci_high": None,
    }  # fmt: skip
    variants = sorted({p["variant"] for p in use})
    if out["spearman"] is None or len(variants) < 2:
        return out
    rng = np.random.default_rng(seed)
    by_variant = {v: [p for p in use if p["variant"] == v] for v in variants}
    rhos = []
    for _ in range(resamples):
        xs, ys = [], []
        for v in rng.choice(variants, size=len(variants), replace=True):
            group = by_variant[v]
            n_seeds = len(group[0]["gain"][gain]["per_seed"])
            pick = rng.integers(0, n_seeds, size=n_seeds)
            for p in group:
                per = np.asarray(p["gain"][gain]["per_seed"], dtype=float)
                xs.append(p["placement"][measure])
                ys.append(float(per[pick].mean()))
        rho = spearman(xs, ys)
        if rho is not None:
            rhos.append(rho)
    if rhos:
        out["ci_low"], out["ci_high"] = (float(q) for q in np.quantile(rhos, [0.025, 0.975]))
        out["resamples_defined"] = len(rhos)
    return out


def mid_step(curves: Sequence[Sequence[tuple[int, float]]]) -> int | None:
    """The curve step where uniform is mid-learning, from uniform's curves alone (one per seed): the step (after 0)
    whose mean greedy accuracy is closest to halfway between step 0's and the curve's highest mean."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for step, acc in curve:
            by_step.setdefault(int(step), []).append(float(acc))
    means = {step: float(np.mean(v)) for step, v in by_step.items() if len(v) == len(curves)}
    if 0 not in means or len(means) < 2:
        return None
    target = (means[0] + max(means.values())) / 2
    return min((step for step in means if step > 0), key=lambda step: (abs(means[step] - target), step))


def paired_gain(method: dict[int, float], uniform: dict[int, float]) -> dict[str, Any]:
    """Per seed, method minus uniform on the same seed; their mean."""
    seeds = sorted(set(method) & set(uniform))
    per = [method[s] - uniform[s] for s in seeds]
    return {"mean": float(np.mean(per)) if per else None, "per_seed": per, "seeds": seeds}


# ---- the pieces -------------------------------------------------------------------------------------------------


SFT_LR = 3e-4  # gentle: 150 steps at 1e-3 lost much of the shipped model's arithmetic (measured on `two`)


def variant_model(variant: str, work: Path, sft_steps: int) -> Path:
    """The variant's warm-started model (the shipped one for `first`), built once."""
    from arca_rl.tasks.arithmetic import TINY_MODEL_PATH

    if variant == "first":
        return TINY_MODEL_PATH
    out = work / "models" / variant
    if not (out / "build_info.json").is_file():
        cmd = [sys.executable, str(ROOT / "scripts" / "build_tiny_model.py"), "--variant", variant, "--init",
               str(TINY_MODEL_PATH), "--steps", str(sft_steps), "--warmup-steps", "20", "--lr", str(SFT_LR),
               "--batch-size", "32", "--eval-n", "200", "--eval-samples", "1", "--out", str(out)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def completion_length(variant: str) -> int:
    return 96 if variant == "tail" else 32


def base_oracle(variant: str, model_path: Path, *, n: int, k: int, samples: int, seed: int) -> dict[str, Any]:
    """The oracle (every prefix) on the base model's rollouts: each method's placement, and where the jumps are."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arca_rl._diagnose import diagnose
    from arca_rl._diagnose.references import answer_tokens
    from arca_rl._diagnose.summarize import method_inputs
    from arca_rl.oracle import Measured, score_method
    from arca_rl.tasks import arithmetic, get_task

    task = get_task("arithmetic")
    data = task.test_dataset(n)
    prompts, sols = list(data["prompt"]), list(data["solution"])
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_path)
    t0 = time.time()
    res = diagnose(
        model, tok, prompts, k=k, max_new_tokens=completion_length(variant), temperature=1.0, seed=seed,
        rewards=lambda i, text: float(task.correct(text, sols[i])), oracle_samples=samples, oracle_positions="all",
        progress=False, answer_span=task.answer_span,
    )  # fmt: skip
    placement: dict[str, dict[str, float | None]] = {}
    for name, summ in res.signals.items():
        place = summ.oracle_placement or {}
        placement[name] = {m: (place.get(m) or {}).get("mean") for m in MEASURES}
    # X+shuffle: X's weights at a random place, one seeded permutation per row, scored against the same rows
    rows = [Measured.of(r.oracle) if r.oracle else None for r in res.completions]
    prompts_of = [r.prompt_index for r in res.completions]
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(r.length) for r in res.completions]
    for name in res.signals:
        weights, ranked, adv = method_inputs(res.completions, name)

        def moved(xs: Sequence[Sequence[float] | None]) -> list[Any]:
            return [None if x is None else [x[i] for i in p] for x, p in zip(xs, perms)]

        got = score_method(rows, prompts_of, moved(weights), moved(ranked), moved(adv))
        placement[f"{name}+shuffle"] = {m: got.placement[m].mean for m in MEASURES}
    # where the value jumps: the decisive tokens' share of |delta| against their share under uniform credit
    jump, even = [], []
    for rec in res.completions:
        delta = np.abs(np.asarray(rec.oracle["delta"], dtype=float))
        match = _PROMPT.search(rec.prompt)
        if delta.sum() == 0 or match is None:
            continue
        terms = tuple(int(g) for g in match.groups())
        toks = set()
        for c in arithmetic.decisive_chars(variant, terms, rec.completion):
            span = answer_tokens(tok, rec.token_ids, (c, c + 1))
            if span:
                toks.add(span[0])
        toks = {t for t in toks if t < rec.length}
        if not toks:
            continue
        jump.append(float(delta[sorted(toks)].sum() / delta.sum()))
        even.append(len(toks) / rec.length)
    rewards = [r.reward for r in res.completions if r.reward is not None]
    return {
        "placement": placement,
        "scores": {
            name: {
                "lift": (s.oracle_lift or {}).get("mean"), "signed": (s.oracle_signed or {}).get("mean"),
                "gini": s.gini,
            } for name, s in res.signals.items()
        },  # fmt: skip
        "references": {
            name: {m: ((s.oracle_placement or {}).get(m) or {}).get("mean") for m in MEASURES}
            for name, s in res.references.items()
        },
        "decisive_share_of_delta": float(np.mean(jump)) if jump else None,
        "decisive_share_uniform": float(np.mean(even)) if even else None,
        "decisive_rows": len(jump),
        "rollout_reward": float(np.mean(rewards)) if rewards else None,
        "rows": res.settings.get("n_completions"),
        "oracle_rollouts": res.settings.get("oracle_rollouts"),
        "seconds": round(time.time() - t0, 1),
    }


def train_one(variant: str, model_path: Path, method: str, seed: int, steps: int, work: Path) -> dict[str, Any]:
    """One training run (the demo config from the variant's model); its final greedy accuracy and curve."""
    from arca_rl._config import load_config
    from arca_rl._run.training import train

    run_dir = work / "runs" / variant / f"{method.replace('+', '_')}-s{seed}"
    if not (run_dir / "finished.json").is_file():
        signal = method.split("+")[0]
        overrides = [
            f"model.name_or_path={model_path}", f"training.credit={signal}", f"training.seed={seed}",
            f"training.max_steps={steps}", f"training.max_completion_length={completion_length(variant)}",
            "training.credit_log_tokens_every=0", "eval.sampled=false", "eval.n=200", "eval.every_steps=5",
            "eval.curve_n=100", f"name=validity-{variant}-{method.replace('+', '_')}-s{seed}",
        ]  # fmt: skip
        if method.endswith("+shuffle"):
            overrides.append("training.credit_shuffle=true")
        cfg = load_config("demo", overrides)
        train(cfg, run_dir=run_dir, progress=False, print_logs=False, replace=True)
    evaluation = json.loads((run_dir / "eval.json").read_text())
    curve = [json.loads(x) for x in (run_dir / "curve.jsonl").read_text().splitlines() if x.strip()]
    finished = json.loads((run_dir / "finished.json").read_text())
    steps_ = [c["step"] for c in curve]
    acc = [c["greedy_accuracy"] for c in curve]
    area = float(np.trapezoid(acc, steps_) / (steps_[-1] - steps_[0])) if len(curve) > 1 else None
    return {
        "greedy": evaluation["greedy_accuracy"],
        "curve_area": area,
        "curve": list(zip(steps_, acc)),
        "train_seconds": finished.get("train_seconds"),
    }


def plot(points: list[dict[str, Any]], correlations: dict[str, dict[str, Any]], path: Path) -> None:
    """One panel per (placement measure, gain), the primary first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = sorted({p["variant"] for p in points})
    methods = sorted({p["method"] for p in points})
    colors = {v: plt.get_cmap("tab10")(i) for i, v in enumerate(variants)}
    markers = dict(zip(methods, "osD^v<>phX*P"))
    labels = {"final": "final greedy accuracy", "area": "curve area", "mid": "greedy at uniform's mid-learning step"}
    fig, axes = plt.subplots(len(MEASURES), len(GAINS), figsize=(5.2 * len(GAINS), 4.2 * len(MEASURES)), squeeze=False)
    for i, measure in enumerate(MEASURES):
        for j, gain in enumerate(GAINS):
            ax, corr = axes[i][j], correlations[f"{measure}/{gain}"]
            for p in points:
                x, y = p["placement"].get(measure), p["gain"][gain]["mean"]
                if x is not None and y is not None:
                    ax.scatter(x, y, color=colors[p["variant"]], marker=markers.get(p["method"], "o"), s=36, alpha=0.85)
            ax.axhline(0, color="0.6", lw=0.8)
            ax.axvline(0, color="0.6", lw=0.8)
            ci = "" if corr.get("ci_low") is None else f" [{corr['ci_low']:.2f}, {corr['ci_high']:.2f}]"
            rho = "n/a" if corr.get("spearman") is None else f"{corr['spearman']:.2f}"
            r2 = "n/a" if corr.get("r2") is None else f"{corr['r2']:.2f}"
            primary = " (primary)" if (i, j) == (0, 0) else ""
            ax.set_title(f"Spearman {rho}{ci}, R² {r2}, {corr['n_points']} points{primary}", fontsize=9)
            ax.set_xlabel(f"placement on base rollouts, {measure} (score - shuffled control)", fontsize=8)
            ax.set_ylabel(f"paired gain over uniform: {labels[gain]}", fontsize=8)
    for v in variants:
        axes[0][0].scatter([], [], color=colors[v], marker="o", label=v)
    for m in methods:
        axes[0][0].scatter([], [], color="0.3", marker=markers.get(m, "o"), label=m)
    axes[0][0].legend(fontsize=6, ncol=2, loc="best", frameon=False)
    fig.suptitle("Does the oracle's placement predict the paired learning gain? (embedded task variants)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- the study --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sft-steps", type=int, default=300, help="warm-start steps of each variant's model")
    p.add_argument("--oracle-n", type=int, default=16, help="held-out prompts of the base oracle")
    p.add_argument("--oracle-k", type=int, default=4, help="completions per prompt of the base oracle")
    p.add_argument("--oracle-samples", type=int, default=8, help="K, continuations per prefix")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "validity")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    variants = args.variants.split(",")
    methods = args.methods.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if "uniform" not in methods:
        raise SystemExit("--methods: uniform is the baseline every gain is paired against")
    t0 = time.time()
    # progress, one file per variant (so that variants can run in parallel processes, and a rerun skips what is done)
    progress = args.work / "progress"
    progress.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"tasks": {}, "runs": {}}
    for f in sorted(progress.glob("*.json")):
        got = json.loads(f.read_text())
        state["tasks"].update(got["tasks"])
        state["runs"].update(got["runs"])

    def save(variant: str) -> None:
        mine = {
            "tasks": {k: v for k, v in state["tasks"].items() if k == variant},
            "runs": {k: v for k, v in state["runs"].items() if k.startswith(f"{variant}/")},
        }
        (progress / f"{variant}.json").write_text(json.dumps(mine, indent=1))

    def warm_start(variant: str) -> dict[str, Any]:
        """The variant model's build: its warm start and what it measured (the shipped model's for `first`)."""
        info = json.loads((variant_model(variant, args.work, args.sft_steps) / "build_info.json").read_text())
        keep = ("variant", "init", "steps", "learning_rate", "batch_size", "greedy_accuracy", "greedy_steps_share",
                "sampled")  # fmt: skip
        return {k: info.get(k) for k in keep}

    for variant in variants:
        model_path = variant_model(variant, args.work, args.sft_steps)
        if variant not in state["tasks"]:
            oracle = base_oracle(variant, model_path, n=args.oracle_n, k=args.oracle_k, samples=args.oracle_samples,
                                 seed=0)  # fmt: skip
            state["tasks"][variant] = {
                "model": str(model_path.relative_to(ROOT) if model_path.is_relative_to(ROOT) else model_path),
                "oracle": oracle,
            }
            save(variant)
            print(variant, "oracle", json.dumps({k: oracle[k] for k in ("decisive_share_of_delta",
                  "decisive_share_uniform", "seconds")}), flush=True)  # fmt: skip
        for seed in seeds:
            for method in methods:
                key = f"{variant}/{method}/{seed}"
                if key not in state["runs"]:
                    state["runs"][key] = train_one(variant, model_path, method, seed, args.steps, args.work)
                    save(variant)
                    print(key, state["runs"][key]["greedy"], flush=True)

    points = []
    mids: dict[str, int | None] = {}
    for variant in variants:
        oracle = state["tasks"][variant]["oracle"]
        uni = {s: state["runs"][f"{variant}/uniform/{s}"] for s in seeds}
        mid = mids[variant] = mid_step([uni[s]["curve"] for s in seeds])

        def at_mid(run: dict[str, Any], mid: int | None = mid) -> float | None:
            return next((acc for step, acc in run["curve"] if step == mid), None)

        for method in methods:
            if method == "uniform":
                continue
            runs = {s: state["runs"][f"{variant}/{method}/{s}"] for s in seeds}
            points.append({
                "variant": variant,
                "method": method,
                "placement": oracle["placement"].get(method, dict.fromkeys(MEASURES)),
                "gain": {
                    "final": paired_gain({s: r["greedy"] for s, r in runs.items()},
                                         {s: r["greedy"] for s, r in uni.items()}),
                    "area": paired_gain({s: r["curve_area"] for s, r in runs.items()},
                                        {s: r["curve_area"] for s, r in uni.items()}),
                    "mid": paired_gain({s: v for s, r in runs.items() if (v := at_mid(r)) is not None},
                                       {s: v for s, r in uni.items() if (v := at_mid(r)) is not None}),
                },
                "greedy": [runs[s]["greedy"] for s in seeds],
            })  # fmt: skip
    correlations = {f"{m}/{g}": correlate(points, m, g) for m in MEASURES for g in GAINS}
    primary = correlations[f"{MEASURES[0]}/{GAINS[0]}"]
    result = {
        "question": "does the oracle's placement on base rollouts predict which credit method learns faster than "
        "uniform?",
        "tasks": {
            v: {**state["tasks"][v], "warm_start": warm_start(v), "mid_step": mids[v],
                "uniform_greedy": [state["runs"][f"{v}/uniform/{s}"]["greedy"] for s in seeds]}
            for v in variants
        },
        "seeds": seeds,
        "methods": methods,
        "steps": args.steps,
        "settings": {
            "oracle": {"n": args.oracle_n, "k": args.oracle_k, "samples": args.oracle_samples, "positions": "all"},
            "training": "the demo config (4 prompts x 8 completions, LoRA r 16, lr 3e-4) from the variant's model",
            "sft_steps": args.sft_steps,
        },
        "points": points,
        "correlations": correlations,
        "primary": {"measure": MEASURES[0], "gain": GAINS[0], **primary},
        "not_points": {
            "arca": "needs an adapter: none before training",
            "divergence": "needs an adapter: none before training",
            "vine": "the oracle itself",
        },
        "runs": {k: v for k, v in state["runs"].items() if k.split("/")[0] in variants},
        "seconds_this_call": round(time.time() - t0, 1),  # runs already in --work are read, not rerun
        "command": " ".join(["python", "benchmarks/oracle_validity.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.plot is not None:
        plot(points, correlations, args.plot)
    print(json.dumps(correlations, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
