"""``train.channels_last`` and ``train.cudnn_benchmark``: how convolutions run on a GPU, not what they compute.

**channels_last** (NHWC) is the layout cuDNN's tensor-core convolutions read natively; NCHW
tensors are transposed around each of them, which costs most in bf16/fp16, where the convolution
itself is fastest. The loop converts every network it trains (and freezes during the other
phases) *before* the strategy wraps it, so DDP's gradient buckets and every optimizer see NHWC
parameters from the start (DeepSpeed: below); the consumed stages' frozen generators and the EMA copies are
converted too, and each micro-batch's 4-D float tensors where the batch reaches the training
device. A convolution with an NHWC input or weight produces NHWC, so the layout carries through a
network. On CPU it is legal (oneDNN has NHWC kernels) and gives the same losses within float
rounding (tests/test_loop.py); it is not expected to be faster there.

Under DeepSpeed the trained networks' weights stay NCHW (``trained_weights_channels_last``): its
engine broadcasts every parameter at ``deepspeed.initialize`` as ``p.data.view(torch.uint8)``, which
an NHWC tensor refuses ("self.stride(-1) must be 1 to view Float as Byte"), and its ZeRO 1/2 and
fp16 optimizers re-point parameters at contiguous views of one flat buffer anyway. The inputs,
frozen stages and EMA copies are still NHWC, and cuDNN runs a convolution NHWC when either operand
is (converting the weight per call).

**cudnn.benchmark** makes cuDNN time its candidate algorithms for each new convolution shape and
keep the fastest. A training run's shapes are fixed (one image size, one micro-batch), so the
timing is paid once on the first steps, which the loop's ``perf/steady_steps_per_s`` leaves out.
Its choice can differ between runs and the algorithms sum in different orders, hence the config
refuses it together with ``train.deterministic``. It is process-wide and set at worker start.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from orchestrator.config import Config


def to_memory_format(net: nn.Module, channels_last: bool) -> nn.Module:
    """``net`` with its 4-D parameters and buffers (convolution weights) in NHWC when asked; in place.

    ``Module.to(memory_format=...)`` leaves every tensor that is not 4-D as it was (biases, linear
    layers, spectral norm's vectors), so any network can go through it."""
    return net.to(memory_format=torch.channels_last) if channels_last else net


def trained_weights_channels_last(cfg: Config, announce: bool) -> bool:
    """Whether the networks the strategy trains go NHWC: ``train.channels_last``, except under
    DeepSpeed (module docstring), which ``announce`` (rank 0) says once."""
    if not cfg.train.channels_last:
        return False
    if cfg.strategy.name == "deepspeed":
        if announce:
            print("[vton] train.channels_last with strategy.name=deepspeed: inputs, frozen stages and EMA copies "
                  "NHWC; the trained weights stay NCHW (DeepSpeed cannot broadcast or flatten NHWC parameters)",
                  flush=True)
        return False
    return True


def batch_to_device(batch: Mapping[str, object], device: torch.device, channels_last: bool) -> dict[str, object]:
    """The micro-batch on the training device; with ``channels_last`` its 4-D floating tensors (images,
    maps, heatmaps: what the recipe concatenates into network inputs) in NHWC. Integer tensors
    (label maps, keypoints) and other ranks stay as they are: they never enter a convolution as such."""
    out: dict[str, object] = {}
    for key, value in batch.items():
        if not torch.is_tensor(value):
            out[key] = value
        elif channels_last and value.dim() == 4 and value.is_floating_point():
            out[key] = value.to(device, non_blocking=True, memory_format=torch.channels_last)
        else:
            out[key] = value.to(device, non_blocking=True)
    return out


def configure_cudnn(benchmark: bool, device: torch.device, announce: bool) -> None:
    """Set ``torch.backends.cudnn.benchmark`` for this worker process (it is process-wide).

    On a CPU device cuDNN is never called, so the flag does nothing there; ``announce`` (rank 0)
    says so once rather than failing, because the same config runs on CPU and GPU clusters."""
    torch.backends.cudnn.benchmark = benchmark
    if benchmark and device.type != "cuda" and announce:
        print(f"[vton] train.cudnn_benchmark: no effect on {device.type} (cuDNN runs only on CUDA devices)",
              flush=True)


def is_channels_last(net: nn.Module) -> bool:
    """Whether every 4-D parameter of ``net`` (its convolution weights) is stored NHWC."""
    weights = [p for p in net.parameters() if p.dim() == 4]
    return bool(weights) and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
