"""A group method's group spread over two gloo ranks (tests/dist_group.py under `accelerate launch` with the shipped
DDP config): every group method's token advantages on each rank equal its rows of the same method computed in one
process on the whole generation batch; self_teacher's salience on each rank equals its rows of the whole batch
scored with every row on one process (a row's teacher may sit on the other rank)."""

import pytest
import torch

from arca_rl import group_credit
from test_distributed import CONFIGS, launch

pytestmark = pytest.mark.slow


def test_group_spread_over_two_ranks_equals_one_process(tmp_path):
    """2 completions per rank, 4 per prompt, so every group spans both ranks; both ranks' rows, in rank order, are
    the generation batch as TRL gathers it."""
    launch(CONFIGS / "ddp.yaml", [str(CONFIGS.parents[1] / "tests" / "dist_group.py"), str(tmp_path)])
    ranks = [torch.load(tmp_path / f"group_rank{i}.pt") for i in range(2)]
    assert all(r["world"] == 2 for r in ranks)
    recs = [r["records"] for r in ranks]
    assert len(recs[0]) == len(recs[1]) >= 1
    for step in range(len(recs[0])):
        parts = [recs[0][step], recs[1][step]]
        width = max(p["mask"].shape[1] for p in parts)

        def cat(key, parts=parts, width=width):
            xs = [p[key] for p in parts]
            if xs[0].dim() == 1:
                return torch.cat(xs)
            return torch.cat([torch.nn.functional.pad(x, (0, width - x.shape[1])) for x in xs])

        mask = cat("mask").bool()
        B = mask.shape[0]
        assert B == 4  # one prompt's group, two rows on each rank
        assert torch.equal(parts[0]["rewards_all"], parts[1]["rewards_all"])
        assert cat("advantages").abs().max() > 0  # the rewards differ within the group: the methods are not all 0
        for name in group_credit.registered_group_methods():
            if group_credit.is_trainer_method(name):
                continue  # vine and self_teacher run the policy: never shadows (self_teacher: below)
            whole = group_credit.group_credit(
                name, mask=mask, groups=torch.arange(B) // 4, completion_ids=cat("completion_ids"),
                rewards=parts[0]["rewards_all"], advantages=cat("advantages"), entropies=cat("entropies"),
            )  # fmt: skip
            start = 0
            for p in parts:
                n, T = p["mask"].shape
                assert torch.allclose(p[f"credit_group/{name}"], whole[start : start + n, :T], atol=1e-6), name
                start += n
    teacher = [r["teacher"] for r in ranks]
    assert len(teacher[0]) == len(teacher[1]) >= 1
    for step in range(len(teacher[0])):
        parts = [teacher[0][step], teacher[1][step]]
        assert torch.equal(parts[0]["whole"], parts[1]["whole"])  # both ranks scored the same whole batch
        assert parts[0]["whole"].sum() > 0  # some row had a teacher and the teacher disagreed somewhere
        start = 0
        for p in parts:
            n, T = p["mask"].shape
            assert torch.allclose(p["own"], p["whole"][start : start + n, :T], atol=1e-5)
            start += n
