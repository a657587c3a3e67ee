import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cartoon.network import (CBAM, CONFIGS, ChannelAttention, Generator, GeneratorConfig, InstanceNorm,
                             count_parameters)


@pytest.mark.parametrize("name", ["paper", "lite"])
def test_outputs_shapes_and_ranges(name):
    torch.manual_seed(0)
    g = Generator(name).eval()
    x = torch.rand(2, 3, 36, 52) * 2 - 1
    with torch.no_grad():
        y, sal = g(x)
    assert y.shape == (2, 3, 36, 52) and sal.shape == (2, 1, 36, 52)
    assert y.min() >= -1 and y.max() <= 1
    assert sal.min() >= 0 and sal.max() <= 1


def test_paper_config_is_cartoongan_with_saliency_splice():
    g = Generator("paper")
    cfg = g.config
    assert cfg.channels == (64, 128, 256) and cfg.num_res_blocks == 8 and cfg.block == "plain"
    assert len(g.res) == 8
    # the flat conv is 7x7 to 64; each residual block has two 3x3 256->256 convs
    assert g.flat[0].kernel_size == (7, 7) and g.flat[0].out_channels == 64
    convs = [m for m in g.res[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3)] and all(c.in_channels == 256 for c in convs)
    # the three fusions see generator + saliency channels and bring them back to the generator's width
    for fuse, c in zip(g.fuse, (64, 128, 256)):
        assert isinstance(fuse.cbam, CBAM)
        assert fuse.cbam.channel.mlp[0].in_channels == 2 * c
        assert fuse.out[0].out_channels == c
    # output: 7x7 conv to RGB then tanh
    assert g.up[-2].kernel_size == (7, 7) and g.up[-2].out_channels == 3 and isinstance(g.up[-1], torch.nn.Tanh)


def test_lite_is_much_smaller_than_paper():
    assert count_parameters(Generator("lite")) * 20 < count_parameters(Generator("paper"))


def test_saliency_features_reach_the_cartoon_output():
    """The splice is real: changing only the saliency network's early layers changes the cartoon."""
    torch.manual_seed(0)
    g = Generator("lite").eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = g(x)[0]
        for p in g.saliency.down1.parameters():
            p.add_(torch.randn_like(p) * 0.5)
        after = g(x)[0]
    assert (before - after).abs().max() > 1e-3


def test_saliency_net_alone_matches_the_generator_second_output():
    torch.manual_seed(0)
    g = Generator("lite").eval()
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x)[1], g.saliency(x))


def test_instance_norm_manual_paths_match_functional():
    torch.manual_seed(0)
    norm = InstanceNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 8, 10, 12) * 3 + 1
    ref = F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=norm.eps)
    norm.recording = True
    recorded = norm(x)
    norm.recording = False
    assert torch.allclose(recorded, ref, atol=1e-5)
    norm.replay = norm.recorded
    assert torch.allclose(norm(x), ref, atol=1e-5)


def test_channel_attention_gate_follows_cbam():
    torch.manual_seed(0)
    ca = ChannelAttention(16, reduction=4)
    x = torch.randn(1, 16, 6, 6)
    gate = torch.sigmoid(ca.mlp(x.mean((2, 3), keepdim=True)) + ca.mlp(x.amax((2, 3), keepdim=True)))
    assert torch.allclose(ca(x), x * gate)


@pytest.mark.parametrize("name", ["paper", "lite"])
def test_recorded_statistics_replay_exactly(name):
    torch.manual_seed(0)
    g = Generator(name).eval()
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        plain = g(x)[0]
        with g.recording_stats() as stats:
            recorded = g(x)[0]
        mods = g.stat_modules()  # instance norm: mean and std per channel; channel attention: its input's channels
        assert [s.shape[1] for s in stats] == [2 * m.weight.numel() if isinstance(m, InstanceNorm)
                                               else m.mlp[0].in_channels for m in mods]
        with g.using_stats(stats):
            replayed = g(x)[0]
        # a different image normalised with these statistics differs from its own normalisation
        other = torch.rand(1, 3, 32, 48) * 2 - 1
        with g.using_stats(stats):
            foreign = g(other)[0]
        own = g(other)[0]
    assert torch.allclose(plain, recorded, atol=1e-5)
    assert torch.allclose(plain, replayed, atol=1e-5)
    assert (foreign - own).abs().mean() > 1e-3
    assert all(m.replay is None and not m.recording for m in g.stat_modules())


def test_using_stats_checks_the_count():
    g = Generator("lite")
    with pytest.raises(ValueError, match="statistics"):
        with g.using_stats([torch.zeros(1, 2, 1, 1)]):
            pass


@pytest.mark.parametrize("kwargs", [
    dict(channels=(8, 16)), dict(block="fancy"), dict(upsample="pixelshuffle"), dict(num_res_blocks=-1),
])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        GeneratorConfig(**kwargs)


def test_config_dict_round_trip_and_unknown_keys():
    for cfg in CONFIGS.values():
        assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({"channels": [8, 16, 32], "wings": 2})


@pytest.mark.parametrize("block", ["plain", "dwsep", "inverted"])
@pytest.mark.parametrize("upsample", ["transposed", "resize"])
def test_every_block_type_builds_and_runs(block, upsample):
    cfg = GeneratorConfig(channels=(8, 16, 16), saliency_channels=(4, 8, 8), num_res_blocks=1, block=block,
                          upsample=upsample, expansion=2, cbam_reduction=4)
    with torch.no_grad():
        y, s = Generator(cfg).eval()(torch.zeros(1, 3, 16, 24))
    assert y.shape == (1, 3, 16, 24) and s.shape == (1, 1, 16, 24)


def test_the_output_filter_flattens_texture_and_keeps_edges():
    # an untrained residual generator returns its input, so `wide-res-smooth` returns the input's guided filter
    torch.manual_seed(0)
    step = torch.full((1, 3, 64, 64), -0.6)
    step[..., 32:] = 0.6
    noisy = step + 0.04 * torch.randn_like(step)
    with torch.no_grad():
        plain, _ = Generator("wide-res").eval()(noisy)
        smooth, _ = Generator("wide-res-smooth").eval()(noisy)
    assert torch.allclose(plain, noisy.clamp(-1, 1))
    inside = (slice(None), slice(None), slice(4, 60), slice(4, 28))
    assert smooth[inside].std() < noisy[inside].std() / 3  # the texture is flattened
    edge = smooth[..., 4:60, 34].mean() - smooth[..., 4:60, 29].mean()
    assert edge > 1.1  # the region edge stays a 1.2 step, two pixels either side of it


def test_the_output_filter_has_no_weights():
    smooth, plain = CONFIGS["wide-res-smooth"], CONFIGS["wide-res"]
    assert smooth.weight_layout() == plain.weight_layout() != CONFIGS["paper"].weight_layout()
    Generator(smooth).load_state_dict(Generator(plain).state_dict())


def test_unet_skips_start_at_zero_and_load_a_generator_without_them():
    torch.manual_seed(0)
    plain = Generator("wide-res-smooth").eval()
    torch.nn.init.normal_(plain.up[-2][-1].weight, std=0.05)  # move the residual off the identity
    unet = Generator("wide-unet-smooth").eval()
    assert unet.config.loads_from(plain.config) and not plain.config.loads_from(unet.config)
    assert not unet.config.loads_from(CONFIGS["lite-res"])
    missing, unexpected = unet.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["skips.0.bias", "skips.0.weight", "skips.1.bias", "skips.1.weight"] and not unexpected
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(unet(x)[0], plain(x)[0])  # zero skips: the same generator
        torch.nn.init.normal_(unet.skips[1].weight, std=0.1)
        changed = unet(x)[0] - plain(x)[0]
    # the full-resolution skip reaches the output pixel by pixel: the change has detail finer than the bottleneck's
    assert changed.abs().mean() > 1e-3
    assert (changed[..., 1:] - changed[..., :-1]).abs().mean() > 0.3 * changed.abs().mean()


def test_the_chroma_guard_takes_colour_off_what_the_photo_has_grey_and_keeps_a_saturation_boost():
    from cartoon.filters import chroma_guard, rgb_to_yuv

    photo = torch.full((1, 3, 32, 64), -0.3)  # grey asphalt on the left ...
    photo[..., 32:] = torch.tensor([-0.6, 0.2, -0.7]).view(1, 3, 1, 1)  # ... green grass on the right
    out = photo.clone()
    out[..., :32] = torch.tensor([-0.2, -0.55, -0.6]).view(1, 3, 1, 1)  # a generator turned the asphalt red
    out[..., 32:] = torch.tensor([-0.7, 0.25, -0.85]).view(1, 3, 1, 1)  # and the grass a little greener
    guarded = chroma_guard(photo, out, gain=1.3, floor=0.03)

    def saturation(img, cols):  # chroma over luma in the middle of a region
        yuv = rgb_to_yuv(img)[..., 8:24, cols]
        return (yuv[:, 1:].pow(2).sum(1).sqrt() / (yuv[:, 0] + 0.05)).mean().item()

    left, right = slice(8, 24), slice(40, 56)
    assert saturation(out, left) > 0.3 and saturation(guarded, left) < 0.035  # the red is gone: the floor is left
    assert torch.allclose(rgb_to_yuv(guarded)[:, 0], rgb_to_yuv(out)[:, 0], atol=1e-5)  # luma untouched
    assert torch.allclose(guarded[..., right], out[..., right], atol=1e-5)  # the boosted grass passes
    assert saturation(out, right) > 1.1 * saturation(photo, right)


def test_the_chroma_guard_is_part_of_the_generator_and_has_no_weights():
    from cartoon.filters import chroma_guard

    torch.manual_seed(0)
    plain = Generator("wide-res-smooth").eval()
    torch.nn.init.normal_(plain.up[-2][-1].weight, std=0.05)  # move the residual off the identity
    guarded = Generator(dataclasses.replace(CONFIGS["wide-res-smooth"], chroma_gain=1.3)).eval()
    assert guarded.config.weight_layout() == plain.config.weight_layout()
    guarded.load_state_dict(plain.state_dict())
    photo = (0.3 * torch.randn(1, 1, 32, 32)).expand(-1, 3, -1, -1)  # grey: the colour the generator adds goes again
    with torch.no_grad():
        a, b = plain(photo)[0], guarded(photo)[0]
    chroma = lambda y: (y - y.mean(1, keepdim=True)).abs().mean().item()
    assert chroma(a) > 0.01 and chroma(b) < chroma(a) / 2  # what is left: the floor
    # trainable through it: a black output, whose chroma is exactly zero, still gives finite gradients
    black = torch.full((1, 3, 8, 8), -1.0, requires_grad=True)
    chroma_guard(black.detach(), black, 1.3, 0.03).sum().backward()
    assert torch.isfinite(black.grad).all()


@pytest.mark.parametrize("kwargs", [dict(smooth_radius=-1), dict(smooth_radius=2, smooth_eps=0.0),
                                    dict(chroma_gain=-1.0), dict(chroma_gain=1.3, chroma_floor=-0.1)])
def test_bad_output_filters_are_refused(kwargs):
    with pytest.raises(ValueError, match="smooth|chroma"):
        GeneratorConfig(**kwargs)
