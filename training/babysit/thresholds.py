"""Every number the babysitter judges by, in one place, with the reason for it.

Sources: CS231n "babysitting the learning process" (``../shared/reference/``) and what tiny real
runs of this project showed. A threshold is a judgement call; the reasoning is here so a user
who disagrees knows what to change.
"""

# -- sanity gate (python -m training check) ----------------------------------------------------

INITIAL_LOSS_OK = (0.8, 1.25)
"""Initial loss / ln(classes) inside this band passes. A fresh softmax head with small weights
gives almost uniform probabilities, so the loss is ln(C) (2.30 for 10 classes) within a few
percent; 25% above still happens with large pooled features and is harmless."""
INITIAL_LOSS_WARN = (0.6, 1.6)
"""Outside ``INITIAL_LOSS_OK`` but inside this band warns; outside it fails. Below 0.6·ln(C) the
model is confident before training (leaked labels, a pretrained head reused); above 1.6·ln(C)
the head is initialised far too large or the outputs are not probabilities."""

REGULARIZATION_TARGET_RISE = 0.5
"""The check turns L2 up until the expected penalty is 0.5·ln(C): big enough to measure (the
lecture's 2.30 → 3.07 is a 0.33·ln(C) rise), small enough not to swamp the data term."""
REGULARIZATION_MIN_SHARE = 0.5
"""The measured rise must be at least half of the penalty computed from the weights; less means
the regularizer is not in the loss."""

OVERFIT_IMAGES = 20
"""The lecture's "take the first 20 examples": few enough that any working model memorises them."""
OVERFIT_STEPS = 200
"""Full-batch steps allowed. A linear head on backbone features memorises 20 images in well
under 100 steps of Adam at 1e-2; 200 leaves room without letting a broken model run long."""
OVERFIT_LR = 1e-2
OVERFIT_ACCURACY = 1.0
"""Required training accuracy on the tiny subset: all of it."""
OVERFIT_LOSS = 0.05
"""Required final loss (near zero). 0.05 is 98% confidence on the right class on average."""
OVERFIT_WARN_ACCURACY = 0.9
"""At or above this (but short of the goal) the check warns instead of failing."""

LR_RANGE = (1e-7, 10.0)
"""Sweep bounds: far below any useful rate up to far beyond; the sweep stops when the loss
explodes, so the top is rarely reached."""
LR_RANGE_STEPS = 100
"""Sweep length: about 12 steps per decade, enough to place the edges within a factor of 2."""
LR_SMOOTHING = 0.9
"""EMA factor for the sweep loss (with bias correction), as in Smith's and fastai's finder."""
LR_FLAT_DROP = 0.02
"""The loss has "started moving" once the smoothed loss is 2% below its start."""
LR_EXPLODE_FACTOR = 3.0
"""CS231n: "if the cost is ever > 3 * original cost, break out early"."""
LR_MIN_DROP = 0.1
"""A sweep whose lowest smoothed loss is not 10% below the start found no usable window. Under
``LR_FLAT_DROP`` (2%) it never learned: the rate is not what is wrong (frozen model, broken
labels), a fail. Between the two it warns: weak features (MobileNetV2 with random weights at
128 px, 512 images: 5% in 100 single-batch steps, while the tiny subset is still memorised)."""

# -- during a fit ------------------------------------------------------------------------------

EXPLOSION_FACTOR = 3.0
"""Stop when the running loss passes 3× the run's initial loss (at least ln(C)), as in CS231n."""

FLAT_EPOCHS = 3
"""The first epochs looked at for a flat loss."""
FLAT_RELATIVE_DROP = 0.01
"""Less than a 1% fall of the training loss over the first epochs is "not moving": the lecture's
"loss not going down: learning rate too low" (a tiny head at a sane rate falls 10%+ per epoch)."""

HIGH_PLATEAU_FRACTION = 0.5
"""A curve that drops fast (first epoch) and then sits above half of ln(C) for the rest while the
first epoch already did most of the drop is the lecture's "high learning rate" shape."""
FAST_DROP_SHARE = 0.8
"""Share of the whole fall done by the end of epoch 1 for the curve to count as "fast drop"."""
NOISE_RATIO = 0.3
"""Epoch-to-epoch ups, summed, over the net fall: above this the curve is noisy (small batch or
too high a rate)."""
LATE_START_EPOCHS = 2
"""A loss that stays flat this many epochs and then falls clearly: a late start (bad init)."""
STILL_FALLING_DROP = 0.1
"""The last epoch still cut the loss by over 10% relative: training stopped too early."""

GAP_WARN = 0.15
"""Train minus validation accuracy above 15 points: overfitting worth acting on."""
GAP_FAIL = 0.35
"""Above 35 points the validation score says little about the training one."""
NO_GAP = 0.05
"""Under 5 points of gap there is no overfitting; with low accuracy that means underfitting."""
UNDERFIT_ACCURACY = 0.6
"""Underfitting when the training accuracy is below chance + 60% of the way to 100%."""
CHANCE_MARGIN = 0.1
"""Validation within 10 points of chance (1/C) counts as "at chance"."""
TRAIN_LEARNED = 0.3
"""Training accuracy at least 30 points above chance counts as "learning"."""
BN_MISMATCH_DROP = 0.3
"""Training accuracy measured by ``fit`` minus the same images in inference mode: a fall of over
30 points, to near chance, means BatchNorm's moving statistics do not describe the data."""

# -- from the audit ----------------------------------------------------------------------------

IMBALANCE_WARN = 3.0
"""Largest / smallest class over 3: a model can ignore the small class and still score well."""
IMBALANCE_FAIL = 20.0
"""Over 20: the small class is noise to the loss; balance it or collect more."""
MIN_IMAGES_PER_CLASS = 10
"""Fewer training images than this in a class: nothing reliable can be learned or measured."""
FEW_IMAGES_PER_CLASS = 50
"""Under 50 per class: fine-tuning works but expect a noisy validation score; freeze more."""

# -- added for diagnose ------------------------------------------------------------------------

CURVE_MIN_DROP = 0.1
"""A phase whose training loss never got 10% below where it started did not learn: the curve's
shape is "flat" (or "rising" when it ends 10% above the start). The same 10% as ``LR_MIN_DROP``:
below it a fall is within what dropout, shuffling and a moving head do on their own."""
CONVERGED_LOSS = 0.05
"""A training loss under 0.05 (about 95% on the right class on average) has nothing left to
fall: a flat or still-falling curve at that level is no reason to change the rate or train
longer (halving a loss of 0.02 every epoch is normal and changes no prediction)."""
