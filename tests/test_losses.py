import math

import pytest
import torch
import torch.nn.functional as F

from read_lightning.training.losses import distillation_loss, fused_linear_distillation, kd_divergence, masked_cross_entropy


def test_masked_ce_matches_reference_on_kept_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    targets = torch.randint(0, 11, (2, 5))
    targets[0, :2] = -100
    keep = targets != -100
    expected = F.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(masked_cross_entropy(logits, targets), expected)


def test_all_masked_gives_zero_not_nan_and_backprops():
    logits = torch.randn(3, 4, 7, requires_grad=True)
    targets = torch.full((3, 4), -100)
    out = distillation_loss(logits, targets, torch.randn(3, 4, 7), kd_weight=0.5)
    assert out.loss.item() == 0.0 and not math.isnan(out.loss.item())
    out.loss.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def test_ce_is_computed_in_fp32_for_bf16_logits():
    logits = torch.randn(4, 9).to(torch.bfloat16)
    targets = torch.randint(0, 9, (4,))
    assert masked_cross_entropy(logits, targets).dtype == torch.float32


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_divergences_are_zero_for_identical_and_positive_otherwise(divergence):
    torch.manual_seed(1)
    a = torch.randn(6, 13)
    assert torch.allclose(kd_divergence(a, a.clone(), divergence), torch.zeros(6), atol=1e-6)
    assert (kd_divergence(a, torch.randn(6, 13), divergence) > 0).all()


def test_forward_and_reverse_kl_match_definitions():
    torch.manual_seed(2)
    s, t = torch.randn(5, 8), torch.randn(5, 8)
    ps, pt = s.softmax(-1), t.softmax(-1)
    fkl = (pt * (pt.log() - ps.log())).sum(-1)
    rkl = (ps * (ps.log() - pt.log())).sum(-1)
    assert torch.allclose(kd_divergence(s, t, "forward_kl"), fkl, atol=1e-5)
    assert torch.allclose(kd_divergence(s, t, "reverse_kl"), rkl, atol=1e-5)
    m = 0.5 * (ps + pt)
    jsd = 0.5 * ((pt * (pt / m).log()).sum(-1) + (ps * (ps / m).log()).sum(-1))
    assert torch.allclose(kd_divergence(s, t, "jsd"), jsd, atol=1e-5)


def test_temperature_scales_by_t_squared():
    torch.manual_seed(3)
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    got = kd_divergence(s, t, "forward_kl", temperature=2.0)
    ref = kd_divergence(s / 2.0, t / 2.0, "forward_kl", temperature=1.0) * 4.0
    assert torch.allclose(got, ref, atol=1e-5)


def test_vocab_padding_rows_are_ignored():
    torch.manual_seed(4)
    s, t = torch.randn(3, 10), torch.randn(3, 10)
    padded_teacher = torch.cat([t, torch.full((3, 6), -1e4)], dim=-1)
    assert torch.allclose(kd_divergence(s, padded_teacher), kd_divergence(s, t), atol=1e-5)


def test_mixing_weight_combines_parts():
    torch.manual_seed(5)
    s = torch.randn(2, 3, 7)
    t = torch.randn(2, 3, 7)
    y = torch.randint(0, 7, (2, 3))
    out = distillation_loss(s, y, t, kd_weight=0.25, divergence="jsd")
    assert torch.allclose(out.loss, 0.75 * out.ce + 0.25 * out.kd, atol=1e-6)
    assert out.num_tokens == 6


def test_kd_everywhere_averages_over_every_row_while_ce_stays_on_the_answer():
    torch.manual_seed(6)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    y = torch.tensor([-100, -100, 3, 1, -100])  # two answer tokens among five positions
    answer = distillation_loss(s, y, t, kd_weight=0.5)
    everywhere = distillation_loss(s, y, t, kd_weight=0.5, kd_everywhere=True)
    assert torch.allclose(everywhere.ce, answer.ce) and everywhere.num_tokens == answer.num_tokens == 2
    assert torch.allclose(answer.kd, kd_divergence(s[2:4], t[2:4]).mean(), atol=1e-6)
    assert torch.allclose(everywhere.kd, kd_divergence(s, t).mean(), atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="kd_weight"):
        distillation_loss(torch.randn(2, 3), torch.zeros(2, dtype=torch.long), kd_weight=1.5)
    with pytest.raises(ValueError, match="needs teacher_logits"):
        distillation_loss(torch.randn(2, 3), torch.zeros(2, dtype=torch.long), kd_weight=0.5)
    with pytest.raises(ValueError, match="'tvd'"):
        kd_divergence(torch.randn(2, 3), torch.randn(2, 3), "tvd")


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize(("kd_weight", "everywhere", "temperature"), [(0.0, False, 1.0), (0.3, False, 2.0), (1.0, True, 1.0), (0.5, True, 0.5)])
def test_fused_linear_loss_equals_the_loss_on_full_logits(divergence, kd_weight, everywhere, temperature):
    # Same value, parts and gradients as distillation_loss on hidden @ weight.T, in chunks that do
    # not divide the rows, with a teacher vocabulary padded past the student's.
    gen = torch.Generator().manual_seed(0)
    n, d, v = 37, 16, 50
    h = torch.randn(n, d, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(v, d, dtype=torch.float64, generator=gen, requires_grad=True)
    th, tw = torch.randn(n, d, dtype=torch.float64, generator=gen), torch.randn(v + 3, d, dtype=torch.float64, generator=gen)
    y = torch.randint(0, v, (n,), generator=gen)
    y[::3] = -100
    kw = {"kd_weight": kd_weight, "divergence": divergence, "temperature": temperature, "kd_everywhere": everywhere}
    ref = distillation_loss(h @ w.T, y, th @ tw.T, **kw)
    ref.loss.backward()
    ref_grads = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    out = fused_linear_distillation(h, w, y, th, tw, chunk_rows=5, **kw)
    (2.0 * out.loss).backward()  # the upstream gradient scales both
    for got, want in [(out.loss, ref.loss), (out.ce, ref.ce), (out.kd, ref.kd), (h.grad, 2 * ref_grads[0]), (w.grad, 2 * ref_grads[1])]:
        assert torch.allclose(got.double(), want.double(), atol=1e-5)
    assert out.num_tokens == ref.num_tokens


def test_fused_linear_loss_rejects_bad_input():
    h, w, y = torch.randn(4, 3), torch.randn(5, 3), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="teacher's hidden states"):
        fused_linear_distillation(h, w, y, kd_weight=0.5)
    with pytest.raises(ValueError, match="do not line up"):
        fused_linear_distillation(h, w, y, torch.randn(3, 3), w, kd_weight=0.5)
    with pytest.raises(ValueError, match="chunk_rows"):
        fused_linear_distillation(h, w, y, chunk_rows=0)
