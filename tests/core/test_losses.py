import torch

from attencraft_core.methods.attencraft import draw_subset, feature_retaining_loss


def _terms(theta: torch.Tensor, count: int):
    """A prediction and cross maps that both depend on θ, as the UNet's do on W_k / W_v."""
    generator = torch.Generator().manual_seed(0)
    prediction = theta * torch.randn(1, 4, 8, 8, generator=generator)
    target = torch.randn(1, 4, 8, 8, generator=generator)
    cross_maps = torch.sigmoid(theta * torch.randn(count, 4, 4, generator=generator))
    latent_masks = (torch.rand(count, 8, 8, generator=generator) > 0.5).float()
    attention_masks = (torch.rand(count, 4, 4, generator=generator) > 0.5).float()
    return prediction, target, cross_maps, latent_masks, attention_masks


def _gradient(loss: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    (gradient,) = torch.autograd.grad(loss, theta, retain_graph=True)
    return gradient


def test_multi_concept_step_backpropagates_only_the_attention_loss():
    theta = torch.tensor(0.7, requires_grad=True)
    prediction, target, maps, latent_masks, attention_masks = _terms(theta, count=2)
    terms = feature_retaining_loss(prediction, target, maps, latent_masks, attention_masks, alpha=0.01)
    attention_only = ((maps - attention_masks) ** 2).mean(dim=(1, 2)).mean()
    assert float(terms.reconstruction) > 0  # computed for the record, but detached
    assert not terms.reconstruction.requires_grad
    torch.testing.assert_close(_gradient(terms.total, theta), _gradient(attention_only, theta))


def test_single_concept_step_includes_the_reconstruction_loss():
    theta = torch.tensor(0.7, requires_grad=True)
    prediction, target, maps, latent_masks, attention_masks = _terms(theta, count=1)
    terms = feature_retaining_loss(prediction, target, maps, latent_masks, attention_masks, alpha=0.01)
    mask = latent_masks[0]
    reconstruction = ((prediction - target) ** 2 * mask).sum() / (mask.sum() * 4)
    attention = ((maps - attention_masks) ** 2).mean()
    torch.testing.assert_close(_gradient(terms.total, theta), _gradient(reconstruction + 0.01 * attention, theta))
    assert not torch.allclose(_gradient(terms.total, theta), _gradient(0.01 * attention, theta))


def test_subset_sampling_follows_omega_and_the_probabilities():
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.tensor([0.2, 0.5, 0.3])
    draws = [draw_subset(probabilities, 0.3, generator) for _ in range(6000)]
    multi = [d for d in draws if len(d) > 1]
    singles = [d[0] for d in draws if len(d) == 1]
    assert abs(len(multi) / len(draws) - 0.3) < 0.03
    assert all(len(set(d)) == len(d) and 2 <= len(d) <= 3 for d in multi)
    assert {len(d) for d in multi} == {2, 3}
    frequencies = torch.bincount(torch.tensor(singles), minlength=3).float() / len(singles)
    torch.testing.assert_close(frequencies, probabilities, atol=0.03, rtol=0)
