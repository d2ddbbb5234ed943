"""How much of a reasoning-gym generator's probability the held-out/training overlap carries (issue 39, section 2).

Estimates each question's probability p_q from `--draws` generator items (a seed range no split uses), then prints:

- `distinct questions`: how many distinct questions the draws hold;
- `trained-on mass, n training draws`: sum_q p_q (1 - (1 - p_q)^n), the expected share of an i.i.d. held-out split
  whose question is among n i.i.d. training draws: what `split: iid` leaves out of an evaluation when the run
  trains on n prompts (`Task.held_out_seen`);
- `distinct held-out mass, m questions`: the probability carried by the first m distinct questions of an i.i.d.
  sequence: what `split: distinct` removes from the training split.

    python benchmarks/rg_split_mass.py --dataset basic_arithmetic \\
        --config '{"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}' --train 80 160 1000
"""

from __future__ import annotations

import argparse
import collections
import json

import reasoning_gym


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="basic_arithmetic")
    parser.add_argument("--config", default='{"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}')
    parser.add_argument("--draws", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=4_000_000_000, help="first item seed of the estimate")
    parser.add_argument("--train", type=int, nargs="+", default=[80, 160, 1000])
    parser.add_argument("--distinct", type=int, nargs="+", default=[200, 1000])
    args = parser.parse_args()
    config = json.loads(args.config)
    source = reasoning_gym.create_dataset(args.dataset, seed=args.seed, size=args.draws, **config)
    questions = [source[i]["question"] for i in range(args.draws)]
    counts = collections.Counter(questions)
    p = {q: c / args.draws for q, c in counts.items()}
    print(f"{args.dataset} {config}: {args.draws} draws, {len(counts)} distinct questions")
    for n in args.train:
        mass = sum(pq * (1 - (1 - pq) ** n) for pq in p.values())
        print(f"  trained-on mass, {n} training draws: {mass:.4f}")
    order = list(dict.fromkeys(questions))  # distinct questions in the order they first appear
    for m in args.distinct:
        print(f"  distinct held-out mass, {m} questions: {sum(p[q] for q in order[:m]):.4f}")


if __name__ == "__main__":
    main()
