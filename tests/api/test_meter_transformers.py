"""FlopsCallback (issue 14): a 4-step transformers Trainer run on a tiny Llama logs measured FLOPs,
FLOP/s and MFU, and the measured FLOPs of a step equal a full count of the same step."""
import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")


import flopdispatch as fd  # noqa: E402
from flopdispatch.integrations.transformers import FlopsCallback  # noqa: E402


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=100, max_position_embeddings=64)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n, length):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 100, (n, length), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


@pytest.mark.slow  # a 4-step transformers Trainer run
def test_trainer_logs_measured_flops_and_mfu(tmp_path):
    pytest.importorskip("accelerate")  # the Trainer needs it
    from transformers import Trainer, TrainingArguments

    model = tiny_llama()
    twin = copy.deepcopy(model)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=2,
                             logging_steps=1, use_cpu=True, report_to=[], save_strategy="no",
                             optim="sgd", learning_rate=1e-3, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(8, 16))
    callback = FlopsCallback.install(trainer, device="H100", dtype="fp32")
    assert trainer.callback_handler.callbacks[0] is callback
    trainer.train()
    steps = [e for e in trainer.state.log_history if "loss" in e]
    assert len(steps) == 4
    for entry in steps:
        assert entry["flops"] > 0 and entry["flops_per_second"] > 0 and 0 < entry["mfu"] < 1
        assert entry["tokens_per_second"] > 0
        assert entry["mfu"] == pytest.approx(entry["flops_per_second"] / 67e12)  # H100 SXM, fp32 peak
    # every step has the same shapes: the first is counted, the three others come from the cache
    assert [e["flops_counted_steps"] for e in steps] == [1, 0, 0, 0]
    assert callback.meter.counts_made == 1 and len({e["flops"] for e in steps}) == 1
    final = trainer.state.log_history[-1]
    assert "total_flos" not in final and final["measured_total_flos"] == 4 * steps[0]["flops"]

    # the measured step against a full count of the same step on a twin (forward, loss, backward,
    # gradient clipping, SGD step): the Trainer adds only its scalar bookkeeping of the loss (a few
    # one-element ops: 9 FLOPs here) and zero_grad (no op with set_to_none)
    batch = Tokens(8, 16)[0]
    ids = torch.stack([batch["input_ids"]] * 2)
    opt = torch.optim.SGD(twin.parameters(), lr=1e-3)
    with fd.count(twin) as c:
        twin(input_ids=ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        opt.step()
    assert 0 <= steps[0]["flops"] - c.flops <= 16
    assert c.flops > 4_000_000  # the model's work dominates


def test_callback_events_without_a_trainer():
    """The callback driven by hand as the Trainer drives it (this part needs no accelerate)."""
    from transformers import TrainerControl, TrainerState

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.out = torch.nn.Linear(4, 10)

        def forward(self, input_ids):
            return self.out(self.emb(input_ids))

    model = Net()
    state, control = TrainerState(), TrainerControl()
    callback = FlopsCallback(device="H100", dtype="fp32")
    callback.on_train_begin(None, state, control, model=model)
    ids = torch.randint(0, 10, (2, 3))
    for step in range(3):
        callback.on_step_begin(None, state, control)
        if step == 1:  # an exception between step begin and end: the step is dropped at the next begin
            callback.on_step_begin(None, state, control)
        with torch.no_grad():
            model(input_ids=ids)
        callback.on_step_end(None, state, control)
        state.global_step += 1
        logs = {"loss": 1.0, **({"total_flos": 123.0} if step == 2 else {})}
        state.log_history.append({**logs, "step": state.global_step})
        callback.on_log(None, state, control, logs=logs)
        # 6 tokens: Linear(4, 10) 6 x 40 = 240 MACs, 2 * 240 + 60 bias adds = 540 FLOPs (embedding: 0)
        for entry in (logs, state.log_history[-1]):
            assert entry["flops"] == 540 and entry["flops_counted_steps"] == int(step == 0)
            assert entry["tokens_per_second"] == pytest.approx(6 * entry["flops_per_second"] / 540)
            assert entry["mfu"] == pytest.approx(entry["flops_per_second"] / 67e12)
    assert "total_flos" not in logs and logs["measured_total_flos"] == 3 * 540
    callback.on_train_end(None, state, control)
    assert not model._forward_pre_hooks and callback.meter.steps == 3 and callback.meter.counts_made == 1
