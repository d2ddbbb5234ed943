"""`arca diagnose`: the shape of every credit signal on one model + adapter, from one set of rollouts.

`diagnose(model, tokenizer, prompts, k=4)` works along the data, one step per module:

    sample     k completions per prompt, as token ids                       (sample.py)
    score      adapter-on forward (no grad)  -> log pi(y_t), entropy H_t, last hidden state h_t
               adapter-off forward (no grad) -> log pi_ref(y_t), base hidden state h_base_t
               -> every signal's salience and weights on the same tokens    (score.py)
    oracle     (with oracle_samples=K) K continuations of every prefix of every completion:
               Monte Carlo token values, the ground truth for credit          (arca_rl.oracle)
    summarize  per completion and per signal: Gini, EffN/T, top-10% mass,
               regime, Spearman vs arca; with the oracle, oracle lift,
               Spearman vs |delta| and top match                             (summarize.py)

Per-token quantities are aligned as the trainer aligns them (`arca_rl._causal_lm`). Log-probabilities
and entropies are taken at the sampling temperature (logits / temperature), as TRL does; top-p only
shapes which tokens get sampled. The completion mask covers the generated tokens up to and including
the first EOS. Everything is float32, and every figure that would be NaN is None.

Without a PEFT adapter the adapter-off pass does not exist, so the signals that need it (`arca`,
`divergence`, or any registered signal reading `ref_logps` / `base_hidden`) are reported under
`absent` with the reason; the others are still scored.

`diagnose` itself is pipeline.py. `run_diagnose` (driver.py) is what `arca diagnose` runs: it loads a model, adapter or
run folder and a task first. Results and their JSON form are in results.py; the HTML page is written by
`arca_rl._report.diagnose_page`. Public entry point: `arca_rl.diagnose`; this package is private.
"""

from __future__ import annotations

from .._causal_lm import completion_tokens
from .driver import run_diagnose
from .pipeline import diagnose
from .results import CompletionRecord, DiagnoseResult, SignalSummary
from .sample import Sample
from .score import Scores

__all__ = [
    "CompletionRecord",
    "DiagnoseResult",
    "Sample",
    "Scores",
    "SignalSummary",
    "completion_tokens",
    "diagnose",
    "run_diagnose",
]
