"""One epoch of a population of heads, as a pure ``keras.ops`` function.

A population is a *layout*: sections of (hidden width, heads), width 0 for heads without a
hidden layer. Each section's heads are stacked along a leading axis; every step gathers one
feature batch that all sections share, and each section runs one batched forward/backward
(``keras.ops.matmul`` over its stack) and one fused optimizer update. Per head, as data: the
learning rate (0 for a head that is done), L2, dropout rate, label smoothing, the optimizer kind
and, for a hidden section, a mask of its live units.

The backward pass of dropout → (dense → ReLU →) dense → softmax cross-entropy is written out, and
Keras' Adam, AdamW and SGD (Nesterov) steps are reproduced operation for operation, so the
program needs no backend's gradient function and steps as ``HeadTrainer``'s Keras models do.
"""

from __future__ import annotations

from keras import ops

from tuner.counter_random import step_key, uniform

BETA_1, BETA_2, EPSILON, MOMENTUM = 0.9, 0.999, 1e-7, 0.9
"""Keras' defaults for Adam and AdamW, and ``make_optimizer``'s SGD momentum."""

Layout = tuple[tuple[int, int], ...]
"""((hidden width, heads), …), widths ascending and distinct; width 0: no hidden layer."""


def per_head(values, rank: int):
    """(H,) → (H, 1, …, 1) of ``rank`` dimensions, to broadcast over each head's own arrays."""
    return ops.reshape(values, (-1,) + (1,) * (rank - 1))


def optimizer_update(param, grad, m, v, lr, decay, sgd, alpha):
    """One step of each head's optimizer on its slice of ``param``, as Keras computes it.

    AdamW (``decay`` > 0) first shrinks the weights by ``decay · lr`` (Keras'
    ``_apply_weight_decay``), then takes Adam's step; SGD is Keras' Nesterov form with the
    momentum kept in ``m``. Each head's kind picks its branch (``sgd`` 1 or 0). Each output is
    element-wise in the inputs it replaces, so the compiled update can run in place.
    """
    rank = len(param.shape)
    lr, decay, alpha = (per_head(t, rank) for t in (lr, decay, alpha))
    is_sgd = per_head(sgd, rank) > 0
    m = ops.where(is_sgd, m * MOMENTUM - grad * lr, m + (grad - m) * (1 - BETA_1))
    v = ops.where(is_sgd, v, v + (ops.square(grad) - v) * (1 - BETA_2))
    adam = (param - param * decay * lr) - (m * alpha) / (ops.sqrt(v) + EPSILON)
    sgd_step = param + (m * MOMENTUM - grad * lr)
    return ops.where(is_sgd, sgd_step, adam), m, v


def forward(width: int, params, x, hyper):
    """Logits of every head of a section on ``x`` ((B, D) shared, or (H, B, D) per head), and
    what the backward pass needs."""
    if width:
        w1, b1, w2, b2 = params
        z1 = ops.matmul(x, w1) + b1[:, None, :]
        a1 = ops.relu(z1) * hyper["mask"][:, None, :]
        return ops.matmul(a1, w2) + b2[:, None, :], (z1, a1)
    w2, b2 = params
    return ops.matmul(x, w2) + b2[:, None, :], None


def penalty(params, hyper):
    """Each head's L2 term, ``l2 · Σ kernel²`` over its kernels (as ``VariableL2Dense`` adds)."""
    return hyper["l2"] * sum(ops.sum(ops.square(k), axis=(1, 2)) for k in params[0::2])


def section_step(width: int, section, hyper, batch: dict, key_step, adam: tuple):
    """One training step of one section: its new (params, m, v) and its metric sums
    (loss · batch size, correct predictions, cross-entropy) for the step."""
    params, ms, vs = section
    x, onehot, labels = batch["x"], batch["onehot"], batch["labels"]
    weight, real, count = batch["weight"], batch["real"], batch["count"]
    rate = per_head(hyper["rate"], 3)
    noise = uniform(step_key(hyper["seed"], key_step), *ops.shape(x))
    dropped = ops.where(noise >= rate, x[None] / (1.0 - rate), 0.0)
    logits, cache = forward(width, params, dropped, hyper)
    targets = onehot[None] * per_head(hyper["keep"], 3) + per_head(hyper["spread"], 3)
    ce = ops.categorical_crossentropy(targets, logits, from_logits=True)
    data_loss = ops.sum(ce * weight[None], axis=1) / count
    correct = ops.cast(ops.argmax(logits, axis=-1) == labels[None], "float32")
    sums = ops.stack(
        [
            (data_loss + penalty(params, hyper)) * count,
            ops.sum(correct * real[None], axis=1),
            ops.sum(ce * real[None], axis=1),
        ],
        axis=1,
    )
    # Backward: softmax cross-entropy, then the layers; L2's gradient is 2·l2·kernel.
    d_logits = (ops.softmax(logits, axis=-1) - targets) * (weight / count)[None, :, None]
    l2 = per_head(hyper["l2"], 3)
    if width:
        w1, _, w2, _ = params
        z1, a1 = cache
        d_w2 = ops.matmul(ops.transpose(a1, (0, 2, 1)), d_logits) + 2.0 * l2 * w2
        d_z1 = ops.matmul(d_logits, ops.transpose(w2, (0, 2, 1)))
        d_z1 = d_z1 * ops.cast(z1 > 0, "float32") * hyper["mask"][:, None, :]
        d_w1 = ops.matmul(ops.transpose(dropped, (0, 2, 1)), d_z1) + 2.0 * l2 * w1
        grads = (d_w1, ops.sum(d_z1, axis=1), d_w2, ops.sum(d_logits, axis=1))
    else:
        w2, _ = params
        d_w2 = ops.matmul(ops.transpose(dropped, (0, 2, 1)), d_logits) + 2.0 * l2 * w2
        grads = (d_w2, ops.sum(d_logits, axis=1))
    root, denominator = adam
    lr = hyper["lr"]
    alpha = lr * root / denominator  # Keras: lr · sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ)
    updated = [
        optimizer_update(p, g, m, v, lr, hyper["decay"], hyper["sgd"], alpha)
        for p, g, m, v in zip(params, grads, ms, vs, strict=True)
    ]
    new = tuple(tuple(u[i] for u in updated) for i in range(3))
    return new, sums


def epoch_program(layout: Layout, steps: int, validate: bool):
    """The pure function of one epoch of a population laid out as ``layout``.

    ``(state, hyper, batches, t0, data) → (state, sums, val_logits, penalties)``, each a tuple
    over the sections: ``state`` holds (params, first moments, second moments), ``hyper`` the
    per-head knobs, ``sums`` the epoch's metric sums per head, ``val_logits`` each head's logits
    on the validation features after the epoch (None without validation) and ``penalties`` each
    head's L2 term then. ``batches`` and ``data`` are shared: the epoch's row indices, loss
    weights, real-row masks and batch sizes; the features, one-hot labels and labels.
    """
    widths = [width for width, _ in layout]

    def run(state, hyper, batches, t0, data):
        def step(i, carry):
            sections, sums = carry
            rows = ops.take(batches["idx"], i, axis=0)
            batch = {
                "x": ops.take(data["x"], rows, axis=0),
                "onehot": ops.take(data["onehot"], rows, axis=0),
                "labels": ops.take(data["labels"], rows, axis=0),
                **{k: ops.take(batches[k], i, axis=0) for k in ("weight", "real", "count")},
            }
            local_step = ops.cast(t0 + i + 1, "float32")
            adam = (
                ops.sqrt(1 - ops.power(ops.cast(BETA_2, "float32"), local_step)),
                1 - ops.power(ops.cast(BETA_1, "float32"), local_step),
            )
            new_sections, new_sums = [], []
            for s, width in enumerate(widths):
                section, step_sums = section_step(width, sections[s], hyper[s], batch, t0 + i, adam)
                new_sections.append(section)
                new_sums.append(sums[s] + step_sums)
            return tuple(new_sections), tuple(new_sums)

        zeros = tuple(ops.zeros((heads, 3), "float32") for _, heads in layout)
        state, sums = ops.fori_loop(0, steps, step, (tuple(state), zeros))
        val_logits = None
        if validate:
            val_logits = tuple(
                forward(width, section[0], data["val_x"][None], h)[0]
                for width, section, h in zip(widths, state, hyper, strict=True)
            )
        penalties = tuple(penalty(section[0], h) for section, h in zip(state, hyper, strict=True))
        return state, sums, val_logits, penalties

    return run
