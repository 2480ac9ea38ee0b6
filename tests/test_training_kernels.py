"""The training-loop kernels pgpis swaps in: fused AdamW and the for-each EMA update match the plain ones."""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from pgpis.callbacks.ema import EMAWeightAveraging, ema_multi_update
from pgpis.optim import adamw, fused_supported


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.register_buffer("ids", torch.arange(5))


def test_adamw_is_fused_on_cpu_and_matches_foreach():
    torch.manual_seed(0)
    a, b = _Net(), _Net()
    b.load_state_dict(a.state_dict())
    opt_a = adamw(a.parameters(), lr=1e-2, weight_decay=1e-2)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=1e-2, foreach=True)
    assert opt_a.defaults["fused"] is True and fused_supported(list(a.parameters()))
    x = torch.randn(8, 4)
    for _ in range(5):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            net.lin(x).pow(2).mean().backward()
            opt.step()
    torch.testing.assert_close(a.lin.weight, b.lin.weight, rtol=1e-5, atol=1e-6)


def test_adamw_respects_an_explicit_kernel_choice():
    assert not adamw(_Net().parameters(), lr=1e-3, foreach=False).defaults.get("fused")


def test_ema_update_lerps_floats_and_copies_integer_buffers():
    net = _Net()
    avg = AveragedModel(net, multi_avg_fn=ema_multi_update(0.9), use_buffers=True)
    avg.update_parameters(net)  # first call copies
    before = net.lin.weight.detach().clone()
    with torch.no_grad():
        net.lin.weight.add_(1.0)
        net.ids.add_(3)
    avg.update_parameters(net)
    torch.testing.assert_close(avg.module.lin.weight, 0.9 * before + 0.1 * net.lin.weight.detach())
    assert torch.equal(avg.module.ids, net.ids) and avg.module.ids.dtype == torch.long


def test_ema_callback_uses_the_foreach_update(monkeypatch):
    """The averaged model the callback builds at setup updates with :func:`ema_multi_update` (int buffers copied)."""
    import lightning.pytorch.callbacks.weight_averaging as weight_averaging
    from lightning.pytorch.demos.boring_classes import BoringModel

    built: list[AveragedModel] = []

    class Recorded(AveragedModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(weight_averaging, "AveragedModel", Recorded)
    cb = EMAWeightAveraging(decay=0.95, update_every_n_steps=2)
    model = BoringModel()
    model.register_buffer("ids", torch.arange(3))
    cb.setup(None, model, "fit")  # type: ignore[arg-type]
    assert cb.update_every_n_steps == 2 and len(built) == 1
    built[0].update_parameters(model)  # first call copies
    before = model.layer.weight.detach().clone()
    with torch.no_grad():
        model.layer.weight.add_(1.0)
        model.ids.add_(3)
    built[0].update_parameters(model)
    torch.testing.assert_close(built[0].module.layer.weight, 0.95 * before + 0.05 * model.layer.weight.detach())
    assert torch.equal(built[0].module.ids, model.ids)  # Lightning's own avg_fn would lerp the int ids
