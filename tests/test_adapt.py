"""Online adaptation (bwdp_core.train.adapt) through the VO pipeline: it learns, swaps weights in between frames, rolls
back on divergence, pauses when static, keeps odometry continuous at a swap, and saves a checkpoint `bwdp vo` loads."""
import numpy as np
import pytest
import torch

from bwdp_core.checkpoint import build_models, load_checkpoint, make_checkpoint, save_checkpoint
from bwdp_core.commands import cli
from bwdp_core.errors import ConfigError
from bwdp_core.inference.adaptation import WeightsUpdate
from bwdp_core.inference.backends import InferenceRunner
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig
from bwdp_core.synth.render import render_sequence
from bwdp_core.train import adapt as adapt_module
from bwdp_core.train.adapt import AdaptConfig, Adapter
from bwdp_core.train.step import StepResult
from bwdp_tools.fixtures import make_constant_motion_checkpoint

H, W = 32, 96


@pytest.fixture(scope="module")
def street():
    return render_sequence(8, H, W, seed=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    disp_net, pose_net = build_models({"num_layers": 18})
    path = tmp_path_factory.mktemp("adapt") / "start.pt"
    save_checkpoint(path, make_checkpoint(disp_net, pose_net, H, W))
    return path


def _pipeline(checkpoint, **cfg):
    torch.set_num_threads(1)
    estimator = DepthPoseEstimator(checkpoint, device="cpu", backend="eager", warmup_iterations=0)
    settings = dict(steps_per_swap=3, lr=1e-3, batch=1, buffer_size=8, min_parallax_px=0.0, warmup_steps=2)
    settings.update(cfg)
    adapter = Adapter(checkpoint, estimator, AdaptConfig(**settings))
    return estimator, adapter, VisualOdometry(estimator, VOConfig(), weights_provider=adapter)


def _weights(adapter):
    return {k: v.clone() for k, v in adapter.model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_adaptation_lowers_the_loss_and_the_next_frame_runs_the_swapped_weights(checkpoint, street):
    estimator, adapter, vo = _pipeline(checkpoint)
    for i in range(3):
        vo.process(street.images[i], street.K, i * 100_000_000)
    assert len(adapter.buffer.frames) == 3 and adapter.pause_reason() == ""
    batch = adapter.buffer.sample(1, np.random.default_rng(0))
    before = adapter.evaluate(batch)["total"]
    original = estimator.runner
    assert adapter.train(3) == 3 and adapter.status.swaps == 1          # steps_per_swap = 3: one swap posted
    assert adapter.evaluate(batch)["total"] < before
    assert estimator.runner is original                                 # not yet: swaps happen between frames
    frame = vo.process(street.images[3], street.K, 3 * 100_000_000)
    assert frame.weights_version == 1 and estimator.runner is not original
    x = estimator.to_tensor(street.images[3])
    expected = estimator.runner.depth(x)[0, 0].numpy() * vo.unit_correction
    assert np.allclose(frame.depth, expected, rtol=1e-5)               # published depth came from the new weights
    assert adapter.take_update() is None                               # each update is taken once


def test_a_static_camera_pauses_training(checkpoint, street):
    _, adapter, vo = _pipeline(checkpoint)
    for i in range(4):
        vo.process(street.images[0], street.K, i * 100_000_000)
    assert adapter.pause_reason() == "camera static"
    assert adapter.train(2) == 0 and adapter.status.steps == 0


def test_an_injected_nan_rolls_back_to_the_last_good_weights(checkpoint, street):
    _, adapter, vo = _pipeline(checkpoint)
    for i in range(3):
        vo.process(street.images[i], street.K, i * 100_000_000)
    good = _weights(adapter)
    for frame in adapter.buffer.frames:
        frame.image.fill_(float("nan"))                                  # a corrupted frame in the buffer
    assert adapter.train(1) == 0
    assert adapter.status.rollbacks == 1 and "not finite" in adapter.status.last_rollback
    assert _same(_weights(adapter), good)
    assert all(bool(torch.isfinite(p).all()) for p in adapter.model.parameters())
    assert adapter.pause_reason().startswith("recovering")               # paused until new frames arrive
    assert adapter.take_update() is None                                 # nothing bad reaches inference


def test_a_diverging_loss_rolls_back(checkpoint, street, monkeypatch):
    _, adapter, vo = _pipeline(checkpoint, steps_per_swap=100)
    for i in range(3):
        vo.process(street.images[i], street.K, i * 100_000_000)
    assert adapter.train(2) == 2                                         # warm-up: the running mean exists
    good = adapter._good
    real_step = adapt_module.train_step

    def exploding(*args, **kwargs):
        result = real_step(*args, **kwargs)                              # the weights do change ...
        return StepResult(total=1e6, terms=result.terms, visuals={}, finite=True)   # ... and the loss explodes

    monkeypatch.setattr(adapt_module, "train_step", exploding)
    assert adapter.train(1) == 0
    assert adapter.status.rollbacks == 1 and "running mean" in adapter.status.last_rollback
    assert _same(_weights(adapter), good)


def test_weights_whose_depth_collapses_are_not_swapped_in(street, tmp_path, monkeypatch):
    torch.manual_seed(0)
    disp_net, pose_net = build_models({"num_layers": 18, "decoder_norm": "group"})  # structured from the start
    start = tmp_path / "structured.pt"
    save_checkpoint(start, make_checkpoint(disp_net, pose_net, H, W))
    estimator, adapter, vo = _pipeline(start, steps_per_swap=1)
    for i in range(3):
        vo.process(street.images[i], street.K, i * 100_000_000)
    assert adapter.train(1) == 1 and adapter.status.swaps == 1 and adapter.status.rollbacks == 0
    swapped = adapter.take_update()
    assert swapped is not None
    good = adapter._good
    real_step = adapt_module.train_step

    def collapsing(model, *args, **kwargs):
        result = real_step(model, *args, **kwargs)
        with torch.no_grad():  # the step leaves DispNet predicting one disparity everywhere (a collapsed network)
            model.disp_net.decoder.head0.conv.weight.zero_()
        return result

    monkeypatch.setattr(adapt_module, "train_step", collapsing)
    assert adapter.train(1) == 0
    assert adapter.status.rollbacks == 1 and "near-constant" in adapter.status.last_rollback
    assert _same(_weights(adapter), good) and adapter.status.swaps == 1
    assert adapter.take_update() is None                                 # the collapsed weights never reach inference


class ScaledRunner(InferenceRunner):
    """The same networks in another unit: depth and translation x factor (what retraining may do to the scale)."""

    def __init__(self, runner, factor):
        def pose(tgt, ref):
            vec = runner.pose(tgt, ref).clone()
            vec[:, :3] *= factor
            return vec

        super().__init__(runner.backend, runner.height, runner.width, runner.device,
                         lambda img: runner.depth(img) * factor, pose)


class OneUpdate:
    """A weights provider that hands over one update before frame ``at``."""

    def __init__(self, update, at):
        self.update, self.at, self.frames = update, at, 0

    def observe(self, sample):
        self.frames += 1

    def take_update(self):
        return self.update if self.frames == self.at else None


def test_published_depth_and_odometry_do_not_jump_at_a_swap(tmp_path):
    torch.set_num_threads(1)
    ckpt = make_constant_motion_checkpoint(tmp_path / "c.pt", 64, 192, motion=(0, 0, 0.1, 0, 0, 0), depth=5.0)
    images = [np.random.default_rng(i).integers(0, 255, (64, 192, 3), dtype=np.uint8) for i in range(6)]
    K = np.array([[100.0, 0, 96], [0, 100.0, 32], [0, 0, 1]])

    def run(provider):
        estimator = DepthPoseEstimator(ckpt, device="cpu", backend="eager", warmup_iterations=0)
        if provider is not None:
            provider.update = WeightsUpdate(ScaledRunner(estimator.runner, 3.0), version=1, depth_ratio=3.0)
        vo = VisualOdometry(estimator, VOConfig(), weights_provider=provider)
        return [vo.process(img, K, i * 100_000_000) for i, img in enumerate(images)]

    plain, swapped = run(None), run(OneUpdate(None, at=3))
    assert [f.weights_version for f in swapped] == [0, 0, 0, 1, 1, 1]
    for a, b in zip(plain, swapped):
        assert np.allclose(a.depth, b.depth, rtol=1e-5)
        assert np.allclose(a.T_odom_base, b.T_odom_base, atol=1e-6)
        assert np.allclose(a.linear_velocity, b.linear_velocity, atol=1e-5)


def test_saved_adapted_model_is_a_checkpoint_bwdp_vo_loads(checkpoint, street, tmp_path, capsys):
    _, adapter, vo = _pipeline(checkpoint)
    for i in range(3):
        vo.process(street.images[i], street.K, i * 100_000_000)
    adapter.train(3)
    path = adapter.save(tmp_path / "adapted.pt")
    ckpt = load_checkpoint(path)
    assert ckpt["adaptation"]["steps"] == 3 and ckpt["adaptation"]["swaps"] == 1
    assert all(torch.equal(value, adapter._good["disp_net." + key]) for key, value in ckpt["disp_net"].items())
    assert cli.main(["synth", "--out", str(tmp_path / "s"), "--frames", "3", "--height", "32", "--width", "96"]) == 0
    code = cli.main(["vo", "--checkpoint", str(path), "--kitti-seq", str(tmp_path / "s" / "sequences" / "00"),
                     "--device", "cpu", "--out", str(tmp_path / "t.txt")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "t.txt").read_text().count("\n") == 3


def test_saved_adapted_model_keeps_the_networks_of_its_start_model(street, tmp_path):
    # the one-recording recipe's networks (GroupNorm decoder, PoseNet x0.1) and its scale-invariant translation unit:
    # a saved adapted model must rebuild the same networks (it was saved with the plain decoder and x0.01 before)
    from bwdp_core.checkpoint import load_models

    torch.manual_seed(0)
    model = {"num_layers": 18, "decoder_norm": "group", "rotation_scale": 0.1, "translation_scale": 0.1}
    start = tmp_path / "recipe.pt"
    save_checkpoint(start, make_checkpoint(*build_models(model), H, W, config={
        "loss": {"preset": "full", "overrides": {"scale_invariant_warp": True}}}))
    _, adapter, vo = _pipeline(start)
    for i in range(3):
        vo.process(street.images[i], street.K, i * 100_000_000)
    adapter.train(1)
    _, _, meta = load_models(adapter.save(tmp_path / "adapted.pt"))
    assert {k: meta[k] for k in model} == model
    assert meta["pose_translation_unit"] == "target_mean_depth"


def test_adapt_settings_are_checked():
    with pytest.raises(ConfigError, match="adapt_share"):
        AdaptConfig.from_settings({"adapt_share": 0.0})
    with pytest.raises(ConfigError, match="buffer_size"):
        AdaptConfig(buffer_size=2).validate()
    assert AdaptConfig.from_settings({"adapt_lr": 3e-5, "adapt_threads": 2}).lr == 3e-5
