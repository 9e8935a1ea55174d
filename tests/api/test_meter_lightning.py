"""FlopsMonitor (issue 14): a Lightning Trainer logs the measured FLOPs, FLOP/s and MFU of each batch.
Skipped where Lightning is not installed (it is not in the project's environment)."""
import copy

import pytest
import torch

L = pytest.importorskip("lightning")

import flopdispatch as fd  # noqa: E402
from flopdispatch.integrations.lightning import FlopsMonitor  # noqa: E402


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def test_lightning_trainer_logs_measured_flops_and_mfu(tmp_path):
    torch.manual_seed(0)
    model = Regressor()
    twin = copy.deepcopy(model)
    data = torch.utils.data.TensorDataset(torch.randn(16, 8), torch.randn(16, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    monitor = FlopsMonitor(device="H100", dtype="fp32", tokens=lambda batch: batch[0].shape[0])
    trainer = L.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[monitor],
                        default_root_dir=str(tmp_path))
    trainer.fit(model, loader)
    logged = trainer.logged_metrics
    # Lightning zeroes gradients after the forward (inside its closure): at the first forward of batch 1
    # no parameter has a gradient, at every later one all have, another signature for the meter
    assert monitor.meter.steps == 4 and monitor.meter.counts_made == 2
    # one batch counted in full on the twin: forward, MSE loss, backward, SGD step
    x, y = next(iter(loader))
    opt = torch.optim.SGD(twin.parameters(), lr=1e-3)
    with fd.count(twin) as c:
        torch.nn.functional.mse_loss(twin(x), y).backward()
        opt.step()
    assert monitor.meter.last.flops - c.flops in range(0, 17)  # Lightning's own scalar work on the loss
    assert float(logged["flops"]) == monitor.meter.last.flops
    assert float(logged["mfu"]) == pytest.approx(float(logged["flops_per_second"]) / 67e12, rel=1e-5)
    assert float(logged["tokens_per_second"]) > 0
