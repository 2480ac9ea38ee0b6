"""Guidance policies against hand-computed combinations."""
import pytest
import torch

from pgpis.diffusion.guidance import ClassifierFreeGuidance, CumulativeGuidance, GuidancePolicy, NoGuidance

GROUPS = ("pose", "source", "fusion")


def _branch_outputs(k: int, b: int = 2):
    torch.manual_seed(0)
    return [torch.randn(b, 4, 3, 3) for _ in range(k)]


def test_cumulative_matches_paper_formula():
    e0, eps_ps, eps_psf = _branch_outputs(3)
    w_s, w_f = 2.0, 3.5
    policy = CumulativeGuidance(source_weight=w_s, fusion_weight=w_f)
    got = policy.combine(torch.cat([e0, eps_ps, eps_psf]))
    expected = e0 + w_s * (eps_ps - e0) + w_f * (eps_psf - eps_ps)
    torch.testing.assert_close(got, expected)


def test_cumulative_branch_masks():
    masks = CumulativeGuidance().keep_masks(GROUPS, batch_size=2, device="cpu")
    # rows: [uncond x2, (pose, source) x2, all x2]
    assert masks["pose"].tolist() == [False, False, True, True, True, True]
    assert masks["source"].tolist() == [False, False, True, True, True, True]
    assert masks["fusion"].tolist() == [False, False, False, False, True, True]


def test_equal_weights_collapse_to_plain_cfg():
    """The reference code's single weight: w_s = w_f = w gives eps(0) + w (eps(C) - eps(0))."""
    e0, eps_ps, eps_psf = _branch_outputs(3)
    got = CumulativeGuidance(2.0, 2.0).combine(torch.cat([e0, eps_ps, eps_psf]))
    torch.testing.assert_close(got, e0 + 2.0 * (eps_psf - e0))


def test_classifier_free_guidance():
    e0, ec = _branch_outputs(2)
    policy = ClassifierFreeGuidance(scale=3.5)
    torch.testing.assert_close(policy.combine(torch.cat([e0, ec])), e0 + 3.5 * (ec - e0))
    masks = policy.keep_masks(("a", "b"), 2, "cpu")
    assert masks["a"].tolist() == masks["b"].tolist() == [False, False, True, True]


def test_no_guidance_is_identity():
    (e,) = _branch_outputs(1)
    policy = NoGuidance()
    torch.testing.assert_close(policy.combine(e), e)
    assert all(m.all() for m in policy.keep_masks(GROUPS, 2, "cpu").values())


def test_scale_one_is_conditional_model():
    e0, ec = _branch_outputs(2)
    torch.testing.assert_close(ClassifierFreeGuidance(1.0).combine(torch.cat([e0, ec])), ec)


def test_generic_policy_and_errors():
    e = _branch_outputs(2)
    policy = GuidancePolicy([("pose",), ("*",)], [0.25, 0.75])
    torch.testing.assert_close(policy.combine(torch.cat(e)), 0.25 * e[0] + 0.75 * e[1])
    with pytest.raises(ValueError, match="coefficient per branch"):
        GuidancePolicy([()], [1.0, 2.0])
    with pytest.raises(ValueError, match="does not have"):
        CumulativeGuidance(fusion_groups=("clip",)).keep_masks(GROUPS, 1, "cpu")
