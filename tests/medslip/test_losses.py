"""Vectorized losses against the per-(sample, query) loop reference, sampling, gradients."""

from __future__ import annotations

import torch

from benchmarks.loop_reference import loop_compute_loss
from medslip import MeDSLIP, MeDSLIPConfig
from medslip.sampling import existence_labels, protocl_indices, supervision_from_matrix


def _tiny_model(seed=0, width=48):
    torch.manual_seed(seed)
    cfg = MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                        text_width=width)
    return MeDSLIP(cfg, torch.randn(75, width), torch.randn(51, width)).eval()


def _random_batch(seed, batch=4, size=64, probs=(0.85, 0.08, 0.07)):
    g = torch.Generator().manual_seed(seed)
    choice = torch.multinomial(torch.tensor(probs), batch * 51 * 75, replacement=True, generator=g)
    matrix = (choice.view(batch, 51, 75) - 1).long()
    sup = supervision_from_matrix(matrix, 7, g)
    sup["images"] = torch.randn(batch, 3, size, size, generator=g)
    return sup


def test_vectorized_equals_loop_reference_on_random_batches():
    model = _tiny_model()
    for seed in range(3):
        batch = _random_batch(seed)
        with torch.no_grad():
            ours, ref = model.compute_loss(batch), loop_compute_loss(model, batch)
        for key in ref:
            torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=1e-5, msg=key)


def test_gradients_match_loop_reference():
    model = _tiny_model(1)
    batch = _random_batch(7, batch=2)
    grads = []
    for fn in (model.compute_loss, lambda b: loop_compute_loss(model, b)):
        model.zero_grad()
        fn(batch)["loss"].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 50
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5, msg=name)


def test_batch_without_positives_gives_finite_zero_protocl():
    model = _tiny_model()
    batch = _random_batch(3, batch=2, probs=(0.9, 0.1, 0.0))
    out = model.compute_loss(batch)
    assert out["loss_cl_pathology"].item() == 0.0 and out["loss_cl_anatomy"].item() == 0.0
    assert torch.isfinite(out["loss"]) and out["loss_ce_pathology"] > 0


def test_labels_and_indices_are_derived_when_absent():
    model = _tiny_model()
    batch = _random_batch(5, batch=2)
    derived = {"images": batch["images"], "matrix": batch["matrix"]}
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    a = model.compute_loss(derived, generator=g1)
    b = model.compute_loss(derived, generator=g2)
    torch.testing.assert_close(a["loss"], b["loss"])
    explicit = model.compute_loss(batch)
    # existence and interaction terms do not depend on the sampled indices
    for key in ("loss_ce_pathology", "loss_ce_anatomy", "loss_ap"):
        torch.testing.assert_close(a[key], explicit[key])


def test_existence_labels_semantics():
    m = torch.full((51, 75), -1)
    m[3, 8] = 0
    m[4, 8] = 1  # 1 wins over 0 in the same column
    m[5, 9] = 0
    lp = existence_labels(m, dim=-2)
    la = existence_labels(m, dim=-1)
    assert lp[8] == 1 and lp[9] == 0 and lp[10] == -1
    assert la[3] == 0 and la[4] == 1 and la[5] == 0 and la[6] == -1


def test_protocl_indices_shape_marker_and_negatives():
    g = torch.Generator().manual_seed(0)
    matrix = torch.full((2, 51, 75), -1)
    matrix[0, 10:20, 8] = 1  # effusion present at 10 anatomies
    matrix[0, 2, 9] = 0
    index_p, index_a = protocl_indices(matrix, 7, g)
    assert index_p.shape == (2, 75, 8) and index_a.shape == (2, 51, 8)
    row = index_p[0, 8]
    assert row[0] == -1
    negatives = row[1:].tolist()
    assert len(set(negatives)) == 7 and not set(negatives) & set(range(10, 20))
    absent = index_p[0, 9]
    assert (absent >= 0).all() and len(set(absent.tolist())) == 8
    assert index_a[0, 12, 0] == -1 and 8 not in index_a[0, 12, 1:].tolist()
    again = protocl_indices(matrix, 7, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], index_p) and torch.equal(again[1], index_a)
    other = protocl_indices(matrix, 7, torch.Generator().manual_seed(1))
    assert not torch.equal(other[0], index_p)


def test_protocl_sampling_is_uniform():
    g = torch.Generator().manual_seed(0)
    matrix = torch.full((4000, 51, 75), -1)
    matrix[:, 0, 0] = 1
    index_p, _ = protocl_indices(matrix, 7, g)
    draws = index_p[:, 0, 1:].reshape(-1)
    counts = torch.bincount(draws, minlength=51).float()
    assert counts[0] == 0  # the positive anatomy is never a negative
    from scipy.stats import chisquare

    assert chisquare(counts[1:].numpy()).pvalue > 1e-3  # consistent with uniform over the 50 others


def test_protocl_with_too_few_negatives_wraps_around():
    matrix = torch.full((1, 51, 75), -1)
    matrix[0, :48, 8] = 1  # only 3 non-positive anatomies for observation 8
    index_p, _ = protocl_indices(matrix, 7, torch.Generator().manual_seed(0))
    row = index_p[0, 8]
    assert row[0] == -1 and set(row[1:].tolist()) <= {48, 49, 50}


def test_ignored_cells_never_contribute_even_when_not_finite():
    from medslip import losses

    logits = torch.randn(2, 5, 2)
    labels = torch.tensor([[1, 0, -1, 2, 1], [0, -1, -1, 1, 2]])
    poisoned = logits.clone()
    poisoned[labels == -1] = float("nan")
    poisoned[labels == 2] = float("inf")
    keep = (labels != -1) & (labels != 2)
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(losses.existence_loss(poisoned, labels), expected)
    poisoned.requires_grad_(True)
    losses.existence_loss(poisoned, labels).backward()
    assert torch.isfinite(poisoned.grad).all() and (poisoned.grad[~keep] == 0).all()
    # nothing kept: an exact zero, still part of the graph
    empty = losses.existence_loss(logits.requires_grad_(True), torch.full((2, 5), -1))
    assert empty.item() == 0.0 and empty.requires_grad


def test_compute_loss_traces_as_one_graph_without_breaks():
    """No data-dependent shapes in the loss: no host sync on CUDA and one graph for torch.compile."""
    import torch._dynamo as dynamo

    model = _tiny_model()
    batch = _random_batch(3, batch=2, size=32)
    dynamo.reset()
    try:
        explanation = dynamo.explain(model.compute_loss)(batch)
    finally:
        dynamo.reset()
    reasons = [str(getattr(r, "reason", r))[:120] for r in explanation.break_reasons]
    assert explanation.graph_break_count == 0, reasons
    assert explanation.graph_count == 1
