"""Precision by capability (lbw_utils.speed.autocast_dtype): bf16, fp16 with loss scaling, or fp32.

No GPU is needed: the capability is faked with monkeypatch. The fp16 branch's training loop runs for
real on the CPU (fp16 autocast and ``torch.amp.GradScaler("cpu")``), so ``scaler.scale(loss).backward()``,
``scaler.step`` and ``scaler.update`` are exercised with both optimizers (foreach SGD, fused AdamW).
"""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from torch import nn

from lbw_utils.runs import experiments

from lbw_utils import speed, train
from lbw_utils.runs.experiments import BASELINE, ModelOptions, Settings, run, run_fingerprint
from lbw_utils.models import make_model
from lbw_utils.runs.notebook import ParameterGuard
from lbw_utils.runner.profiles import NOTEBOOK_DIR, notebook_parameters
from lbw_utils.speed import autocast_dtype, autocast_precision, make_grad_scaler
from lbw_utils.train import TrainConfig, fit, make_optimizer, make_scheduler

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
TRAINING_NOTEBOOKS = ["01_baseline", "03_static_weighting", "04_dynamic_weighting", "07_training_length",
                      "08_tuning_seeds", "09_beyond_reweighting"]


@pytest.fixture
def cuda_bf16(monkeypatch):
    """A factory: fake a CUDA GPU with (True) or without (False) native bf16; returns the calls' arguments."""
    calls = []

    def fake(native: bool):
        def is_bf16_supported(including_emulation: bool = True) -> bool:
            calls.append(including_emulation)
            return native or including_emulation  # a V100 or T4 emulates bf16: True unless asked for native
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
        return calls
    return fake


@pytest.fixture
def cpu_bf16(monkeypatch):
    """A factory: fake a CPU with (True) or without (False) native bf16 (AVX512-BF16 / AMX)."""
    def fake(native: bool):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    return fake


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    """The fp16 branch on the CPU: what a GPU without native bf16 gets, with the CPU's autocast and scaler.

    ``autocast_dtype`` is the one function every part asks (the loop, prediction, the scaler, the record),
    so faking it here fakes the capability everywhere at once."""
    real = speed.autocast_dtype
    monkeypatch.setattr(speed, "autocast_dtype",
                        lambda device, amp: torch.float16 if amp and torch.device(device).type == "cpu"
                        else real(device, amp))


class CountingScaler(torch.amp.GradScaler):
    """A GradScaler that counts its calls (and remembers the scale after each update)."""

    made: list["CountingScaler"] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = {"scale": 0, "step": 0, "update": 0}
        self.optimizers, self.scales = [], []
        CountingScaler.made.append(self)

    def scale(self, outputs):
        self.calls["scale"] += 1
        return super().scale(outputs)

    def step(self, optimizer, *args, **kwargs):
        self.calls["step"] += 1
        self.optimizers.append(optimizer)
        return super().step(optimizer, *args, **kwargs)

    def update(self, new_scale=None):
        self.calls["update"] += 1
        super().update(new_scale)
        self.scales.append(self.get_scale())


# --- which precision ----------------------------------------------------------------------------------


def test_cuda_with_native_bf16_autocasts_to_bf16_without_a_scaler(cuda_bf16):
    calls = cuda_bf16(True)
    assert autocast_dtype(CUDA, True) is torch.bfloat16
    assert autocast_precision("cuda:0", True) == "bfloat16"
    assert speed.bf16_pays(CUDA)
    assert calls and not any(calls), "native bf16 must be asked for with including_emulation=False"


def test_cuda_without_native_bf16_autocasts_to_fp16_and_scales_the_loss(cuda_bf16):
    cuda_bf16(False)  # a V100 or T4: is_bf16_supported() alone would say True (emulated)
    assert autocast_dtype(CUDA, True) is torch.float16
    assert autocast_precision(CUDA, True) == "float16"
    assert not speed.bf16_pays(CUDA)
    with warnings.catch_warnings():  # on a machine without a GPU the scaler warns that CUDA is not available
        warnings.simplefilter("ignore", UserWarning)
        assert isinstance(make_grad_scaler(CUDA, True), torch.amp.GradScaler)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_autocasts_to_bf16_only_with_native_bf16(cpu_bf16, native):
    cpu_bf16(native)
    assert autocast_dtype(CPU, True) is (torch.bfloat16 if native else None)
    assert autocast_precision(CPU, True) == ("bfloat16" if native else None)
    assert make_grad_scaler(CPU, True) is None


def test_amp_off_and_mps_train_in_fp32(cuda_bf16, cpu_bf16):
    cuda_bf16(True)
    cpu_bf16(True)
    for device in (CPU, CUDA, MPS):
        assert autocast_dtype(device, False) is None and make_grad_scaler(device, False) is None
    assert autocast_dtype(MPS, True) is None


def test_fp32_autocast_is_a_no_op_context(cpu_bf16):
    cpu_bf16(False)
    layer = nn.Linear(4, 2)
    with speed.autocast(CPU, True):
        assert layer(torch.randn(3, 4)).dtype is torch.float32


@pytest.mark.parametrize("options, key", [({"amp": "yes"}, "amp"), ({"compile": 1}, "compile"),
                                          ({"amp": None}, "amp")])
def test_amp_and_compile_must_be_booleans(options, key):
    with pytest.raises(ValueError, match=rf"{key}=.* must be True or False"):
        TrainConfig(**options)


# --- the fp16 path really scales, steps and updates -------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])  # foreach SGD; fused AdamW takes the scale itself
def test_scaled_step_steps_on_finite_gradients_and_skips_on_overflow(optimizer):
    model = nn.Linear(4, 3)
    config = TrainConfig(optimizer=optimizer, lr=0.1)
    opt = make_optimizer(model, config)
    scheduler = make_scheduler(opt, config, total_steps=10)
    scaler = CountingScaler("cpu", init_scale=2.0**10)
    inputs, targets = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])

    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad(set_to_none=True)
    speed.scaled_step(scaler, nn.functional.cross_entropy(model(inputs), targets), opt, scheduler)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "a finite step must update"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert scaler.scales[-1] == 2.0**10  # no overflow: the scale stays (it grows only after 2000 good steps)

    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad(set_to_none=True)
    overflow = (model(inputs) * torch.tensor(float("inf"))).sum()  # every gradient inf
    speed.scaled_step(scaler, overflow, opt, scheduler)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "an overflowing step must be skipped"
    assert scaler.scales[-1] == 2.0**9  # halved after the overflow
    assert scaler.calls == {"scale": 2, "step": 2, "update": 2} and scaler.optimizers == [opt, opt]
    assert scheduler.last_epoch == 2  # the schedule advances on a skipped step too


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fit_in_fp16_steps_through_the_scaler_every_batch_and_learns(tiny_data, fp16_on_cpu, monkeypatch,
                                                                      optimizer):
    monkeypatch.setattr(torch.amp, "GradScaler", CountingScaler)
    CountingScaler.made = []
    data = tiny_data(image_noise=25.0, seed=0)
    torch.manual_seed(0)
    model = make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape, size="tiny")
    config = TrainConfig(epochs=4, batch_size=16, lr=0.05 if optimizer == "sgd" else 0.01, eval_batch_size=32,
                         optimizer=optimizer)
    history = fit(model, data, config=config, seed=0, progress=False)
    (scaler,) = CountingScaler.made
    steps = config.epochs * math.ceil(data.size("train") / config.batch_size)
    assert scaler.calls == {"scale": steps, "step": steps, "update": steps}
    assert all(math.isfinite(loss) for loss in history.train_loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert history.val_accuracy[-1] >= 0.6  # chance is 1/3: the scaled steps did train


def test_fit_without_fp16_makes_no_scaler(tiny_data, cpu_bf16, monkeypatch):
    cpu_bf16(False)
    monkeypatch.setattr(torch.amp, "GradScaler", CountingScaler)
    CountingScaler.made = []
    data = tiny_data(seed=0)
    model = make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape, size="tiny")
    fit(model, data, config=TrainConfig(epochs=1, batch_size=32), seed=0, progress=False)
    assert CountingScaler.made == []


# --- the run record and the fingerprint ------------------------------------------------------------


def test_the_record_says_fp16_and_a_bf16_or_fp32_record_is_not_reused_for_fp16(tiny_data, tmp_path, monkeypatch):
    data = tiny_data(seed=0)
    config = TrainConfig(epochs=1, batch_size=32)
    tiny = ModelOptions(size="tiny")
    first = run(BASELINE, data, 0, tmp_path, train=config, model=tiny, progress=False)
    assert first["autocast"] == autocast_precision(CPU, True)  # this CPU's own answer: bfloat16 or None
    setup = first["fingerprint"]["train"]
    assert setup["float16_autocast"] is False and setup["compile"] is False

    real = speed.autocast_dtype
    monkeypatch.setattr(speed, "autocast_dtype",
                        lambda device, amp: torch.float16 if amp else real(device, amp))
    with pytest.raises(ValueError, match=r"other settings \(train.float16_autocast\)"):
        run(BASELINE, data, 0, tmp_path, train=config, model=tiny, progress=False)
    again = run(BASELINE, data, 0, tmp_path, train=config, model=tiny, redo=True, progress=False)
    assert again["autocast"] == "float16" and again["fingerprint"]["train"]["float16_autocast"] is True
    assert json.loads(json.dumps(again))["autocast"] == "float16"
    # amp off: fp32 whatever the hardware, and the record says so
    plain = run(BASELINE, data, 1, tmp_path, train=TrainConfig(epochs=1, batch_size=32, amp=False), model=tiny,
                progress=False)
    assert plain["autocast"] is None and plain["fingerprint"]["train"]["amp"] is False


def test_compile_is_in_the_fingerprint(tiny_data):
    data = tiny_data(seed=0)
    plain = run_fingerprint(BASELINE, data, TrainConfig(), ModelOptions())
    compiled = run_fingerprint(BASELINE, data, TrainConfig(compile=True), ModelOptions())
    assert plain["train"]["compile"] is False
    assert compiled["train"]["compile"] is True and compiled != plain
    assert run_fingerprint(BASELINE, data, TrainConfig(amp=False), ModelOptions()) != plain


def test_a_record_trained_otherwise_compiled_is_not_reused(tiny_data, tmp_path):
    data = tiny_data(seed=0)
    tiny = ModelOptions(size="tiny")
    run(BASELINE, data, 0, tmp_path, train=TrainConfig(epochs=1, batch_size=32), model=tiny, progress=False)
    path = experiments.records.record_path(tmp_path, data.name, "baseline", 0)
    record = json.loads(path.read_text())
    record["fingerprint"]["train"]["compile"] = True  # as if trained with torch.compile
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"other settings \(train.compile\)"):
        run(BASELINE, data, 0, tmp_path, train=TrainConfig(epochs=1, batch_size=32), model=tiny, progress=False)


# --- the notebooks take amp and compile -------------------------------------------------------------


@pytest.mark.parametrize("notebook", TRAINING_NOTEBOOKS)
def test_training_notebooks_take_amp_and_compile(notebook):
    taken = notebook_parameters(notebook)  # each default as its source text; "None": TrainConfig's own
    assert taken["amp"] == taken["compile"] == "None"
    assert TrainConfig.amp is True and TrainConfig.compile is False


@pytest.mark.parametrize("notebook", TRAINING_NOTEBOOKS)
def test_the_guard_accepts_compile_and_amp_and_settings_carry_them(notebook):
    import nbformat

    cells = nbformat.read(NOTEBOOK_DIR / f"{notebook}.ipynb", as_version=4).cells
    (parameters,) = [c.source for c in cells if "parameters" in c.metadata.get("tags", [])]
    history, namespace = ["", "guard = ParameterGuard(settings=True)"], {}
    guard = ParameterGuard(history, settings=True)
    for cell in (parameters, "# Parameters\ncompile = True\namp = False\n"):  # papermill -p compile True -p amp False
        history.append(cell)
        exec(cell, namespace)
    params = guard.check(namespace)
    assert params["compile"] is True and params["amp"] is False
    settings = Settings.from_params({**params, "results_dir": "unused"})
    assert settings.train.compile is True and settings.train.amp is False
    with pytest.raises(ValueError, match=r"compile='yes' must be True or False"):
        Settings.from_params({**params, "compile": "yes"})
