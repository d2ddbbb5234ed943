"""Run by tests/test_distributed.py under torchrun with 2 gloo CPU processes: a tiny LoRA model sharded with torch's
`fully_shard` (FSDP2: every decoder layer, then the root) against an unsharded copy on the same rank's data.

Checks the parts of the credit path that are arca-rl's: the trainer's forward hook (`_capture_last_hidden`) on the
backbone of the sharded model, the adapter-off base pass through TRL's `use_adapter` (what the trainer's
`_base_model` uses), salience and weights, and one backward of a token-credit loss. Each rank writes what it found
to <out>/rank<i>.json; the pytest side asserts on it.
"""

import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from peft import get_peft_model  # noqa: E402
from torch.distributed.fsdp import FSDPModule, fully_shard  # noqa: E402
from torch.distributed.tensor import DTensor  # noqa: E402
from trl.trainer.utils import use_adapter  # noqa: E402

from arca_rl import credit  # noqa: E402
from arca_rl.trainer import _capture_last_hidden  # noqa: E402
from tiny import char_tokenizer, tiny_lora, tiny_model  # noqa: E402

PROMPTS = [["1+2=", "13+4="], ["25+11+3=", "9+9="]]  # one pair per rank: data parallel, different data
COMPLETIONS = ["3", "17", "39", "18"]  # "3" is right-padded in a 2-token completion window


def backbone(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_base_model().model  # what the trainer's `_backbone` returns for a PeftModel


def credit_pass(model, input_ids, attention_mask, mask, completion_len):
    """What the trainer does for one micro-batch: adapter-off pass (no grad), training forward with the hook,
    then salience, weights, token advantages and a loss whose backward reaches the adapter."""
    base_store: list[torch.Tensor] = []
    with (
        torch.no_grad(),
        use_adapter(model, None),
        _capture_last_hidden(backbone(model), completion_len, base_store, clone=True),
    ):
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    store: list[torch.Tensor] = []
    with _capture_last_hidden(backbone(model), completion_len, store, clone=False):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logps = torch.log_softmax(logits[:, -(completion_len + 1) : -1].float(), dim=-1)
    logps = logps.gather(-1, input_ids[:, -completion_len:, None]).squeeze(-1)
    hidden, base_hidden = torch.cat(store), torch.cat(base_store)
    salience = credit.salience("arca", mask=mask, hidden=hidden, base_hidden=base_hidden)
    weights = credit.token_weights(salience, mask, power=2.0)
    seq_adv = torch.tensor([1.0, -0.5])
    token_adv = seq_adv[:, None] * weights * mask.sum(1, keepdim=True)
    loss = -(token_adv * logps * mask).sum() / mask.sum()
    loss.backward()
    return {
        "hook_calls": len(store),
        "base_hook_calls": len(base_store),
        "hidden": hidden,
        "base_hidden": base_hidden,
        "salience": salience,
        "weights": weights,
        "loss": loss.detach(),
    }


def main(out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    tok = char_tokenizer()
    lora = tiny_lora()
    torch.manual_seed(0)  # the same model on every rank, as FSDP expects
    reference = get_peft_model(tiny_model(tok, seed=0), lora)
    sharded = copy.deepcopy(reference)
    for layer in backbone(sharded).layers:
        fully_shard(layer)
    fully_shard(sharded)

    prompt_len = max(len(p) for p in PROMPTS[rank])
    completion_len = 2
    ids = torch.full((2, prompt_len + completion_len), tok.pad_token_id)
    attention = torch.zeros_like(ids)
    for row, (prompt, completion) in enumerate(zip(PROMPTS[rank], COMPLETIONS[2 * rank : 2 * rank + 2])):
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion, add_special_tokens=False)["input_ids"][:completion_len]
        ids[row, prompt_len - len(p) : prompt_len] = torch.tensor(p)  # left-padded prompt, as TRL does
        ids[row, prompt_len : prompt_len + len(c)] = torch.tensor(c)
        attention[row, prompt_len - len(p) : prompt_len + len(c)] = 1
    mask = attention[:, prompt_len:].float()

    got = credit_pass(sharded, ids, attention, mask, completion_len)
    want = credit_pass(reference, ids, attention, mask, completion_len)

    lora_grads, grad_size = {}, {}
    for (name, p_sharded), (_, p_ref) in zip(sharded.named_parameters(), reference.named_parameters()):
        if not p_sharded.requires_grad:
            continue
        assert isinstance(p_sharded, DTensor), name  # the adapter really is sharded
        ref_grad = p_ref.grad.clone()
        dist.all_reduce(ref_grad)  # FSDP2 averages gradients over ranks: do the same by hand for the reference
        ref_grad /= world
        lora_grads[name] = (p_sharded.grad.full_tensor() - ref_grad).abs().max().item()
        grad_size[name] = ref_grad.abs().max().item()

    def diff(key: str) -> float:
        return (got[key] - want[key]).abs().max().item()

    report = {
        "world": world,
        "backend": dist.get_backend(),
        "is_fsdp2": isinstance(sharded, FSDPModule) and isinstance(backbone(sharded).layers[0], FSDPModule),
        "hidden_shape": list(got["hidden"].shape),
        "hidden_is_plain_tensor": type(got["hidden"]) is torch.Tensor,
        "model_dim": reference.config.hidden_size,
        "hook_calls": [got["hook_calls"], got["base_hook_calls"]],
        "max_diff": {k: diff(k) for k in ("hidden", "base_hidden", "salience", "weights", "loss")},
        "residual_max": want["salience"].max().item(),
        "weights_std": want["weights"][mask.bool()].std().item(),
        "lora_grad_max_diff": max(lora_grads.values()),
        "n_lora_params": len(lora_grads),
        "lora_grad_max": max(grad_size.values()),
        "padded_tokens": int((mask == 0).sum()),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
