"""Every number the babysitter judges by, in one place, with the reason for it.

Sources: CS231n's notes "babysitting the learning process" (Karpathy et al., cs231n.github.io,
"Neural Networks Part 3"), and what real runs of this project showed (``bench/faults.py``). A
threshold is a judgement call; the reasoning is here so a user who disagrees knows what to
change.
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
OVERFIT_STEPS = 500
"""Full-batch steps allowed. A linear head on pretrained features memorises 20 images in well
under 100 steps of Adam at 1e-2; on random-weight features (small, correlated) the fault zoo
saw 100% accuracy with the loss still at 0.06–0.12 after 200 steps, on healthy data. 500 steps
of a 20-image batch through a linear head cost about a second."""
OVERFIT_LR = 1e-2
OVERFIT_ACCURACY = 1.0
"""Required training accuracy on the tiny subset: all of it."""
OVERFIT_LOSS = 0.05
"""The loss target (near zero): 0.05 is 95% confidence on the right class on average. Reaching
it with every image right ends the check early. It is a target for the loss, not a condition
for passing: at 100% accuracy a loss above it that still falls passes (see
``OVERFIT_MIN_FALL``)."""
OVERFIT_TAIL = 0.5
"""The last half of the steps is where ``OVERFIT_MIN_FALL`` is measured: long enough for a slow
fall to show (250 of the 500 steps), late enough that the first, fast drop is over."""
OVERFIT_MIN_FALL = 0.02
"""At 100% accuracy the loss is "clearly not falling" when it fell under 2% (relative) over
``OVERFIT_TAIL`` of the steps, from the mean of that window's first tenth to the mean of its
last tenth (full-batch Adam can bounce step to step), and the check warns. Once every image is
right the images are separated, and the check leaves nothing in the model (no L2, no dropout)
to stop the cross-entropy falling as the weights grow: gradient descent on separable data
drives it down about like 1/t (Soudry et al., JMLR 2018), which halves it over the second half
of a run; a linear head on 20 separable synthetic points did so (40–48% over the last half, at
final losses of 0.08–0.25). Weak features only make it slower: the same points scaled down 20×
(memorised, the loss still 0.86) still fell 10%; the random-weight features of the fault zoo
ended at 0.06–0.09. That is memorised and gaining confidence slowly, no fault. A loss held up
by something (an output that is bounded or mixed with a constant, a regularizer left in, a rate
so high the steps bounce) levels off at its floor instead, and its fall goes to zero. Under 2%
per 250 steps, halving the loss at that pace would take over 6,000 more steps, twelve times the
whole check: stopped, for practical purposes, and five times below the slowest healthy fall
seen."""
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
"""A sweep whose lowest smoothed loss is not 10% below the start found no usable window. When
the head memorised the tiny subset, it can learn, so the features are weak (MobileNetV2 with
random weights at 128 px, 512 images: 5% in 100 single-batch steps; 2,000 cat/dog photos at
96 px with random weights: under 2%): a warn naming the features. When it could not, a fail
(frozen head, constant inputs). Without that check's verdict, a fall under ``LR_FLAT_DROP``
fails and one between the two warns."""

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
too high a rate). When the number of batches per epoch is known, only the part of each rise
beyond ``NOISE_Z`` standard errors of sampling noise is summed."""
NOISE_Z = 2.0
"""A rise of the epoch loss counts towards "noisy" only beyond 2 standard errors of the
difference of two epoch means. An epoch's training loss is the mean of its ``n`` batch losses,
each on other images, a fresh dropout mask (and augmentation) and a model a step further on;
taken as independent draws, the epoch mean wobbles by σ_batch/√n even in a well-tuned run. The
history holds no per-batch spread, so it is modelled: a single example's cross-entropy is skewed
(most near zero, a few large), spread about as widely as its mean L (an exponential
distribution's standard deviation equals its mean), so a batch of ``b`` has σ_batch ≈ L/√b and
the epoch mean a standard error ≈ L/√(b·n), about L/√(training images). Two epochs differ by
√(SE₁² + SE₂²): 0.09·L on 244 images in batches of 32 (8 batches an epoch), 0.02·L on 5,000.
Two of those (a one-sided 2% chance per epoch for a flat curve, and between 2 and 3 standard
errors of one epoch mean) leave a healthy small-dataset curve quiet, while a rate far too high
(rises of a quarter of the loss or more, epoch after epoch) is still called noisy on any
dataset. Without the batch count the rule is the plain ``NOISE_RATIO``."""
LATE_START_EPOCHS = 2
"""A loss that stays flat this many epochs and then falls clearly: a late start (bad init)."""
L2_HOLDS_SHARE = 0.2
"""A flat or plateaued data loss while the L2 penalty is a fifth of the loss or more: L2, not the
learning rate, holds the loss up. Once trained, a sane L2 (1e-4 on a head) is under 1% of the
loss; at a plateau the optimizer balances the data gradient against the penalty's, so a penalty
this large is shaping the optimum instead of nudging it."""
L2_CRUSHED = 0.5
"""A flat or plateaued phase whose L2-regularized weights ended with under half the Σw² they
started with: while the data loss stands still nothing but the penalty shrinks weights (a
too-low rate leaves them where they were, and a fit that learns grows the small-init head)."""
SLOW_FALL = 0.02
"""A loss still falling 2% or more an epoch, steadily over the last three epochs, is not flat
even when its total fall is small: the run is short (too few epochs or steps), and the same again
would cut it measurably. A too-low rate moves it by hundredths of a percent."""
TRAIN_MODE_STABLE = 0.05
"""``train_mode_gap`` judges a fit accuracy only once it has levelled off (the last epoch within
5 points of the one before): an epoch's running accuracy lags a model that is still improving
fast, and that lag is not regularization."""
TRAIN_MODE_GAP = 0.2
"""Training images scored 20 points better in inference mode than during ``fit`` (where dropout
and augmentation act): the regularization that acts only in training is what holds the fit back.
A healthy dropout or augmentation costs a few points of fit accuracy, not twenty."""
STILL_FALLING_DROP = 0.1
"""The last epoch still cut the loss by over 10% relative: training stopped too early."""

GAP_WARN = 0.15
"""Train minus validation accuracy above 15 points: overfitting worth acting on."""
GAP_FAIL = 0.35
"""Above 35 points the validation score says little about the training one."""
NO_GAP = 0.05
"""Under 5 points of gap there is no overfitting; with low accuracy that means underfitting."""
NEGATIVE_GAP = 0.05
"""Validation more than 5 points *above* training (both in inference mode) is not luck on a
healthy split of a few hundred images (one standard error of an accuracy near 0.8 on 100 images
is 4 points): the training images are harder, most often because some of their labels are
wrong."""
HIGH_DROPOUT = 0.5
"""Dropout at or above 0.5 (Srivastava et al.'s value for hidden layers, the most anyone uses
before a classifier) is itself a suspect when a model underfits: lowering it comes before adding
capacity."""
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

# -- label noise -------------------------------------------------------------------------------

LABEL_NOISE_MAX_ROWS = 4000
"""Rows per split the label check uses (a seeded random sample beyond that). Five logistic
regressions on 4,000 rows of 2,048 features take 2–4 s on 2 CPU cores; more rows change the
verdict little (an out-of-fold accuracy on 4,000 rows has a standard error under 1 point)."""
LABEL_NOISE_FOLDS = 5
"""Folds of the out-of-fold predictions (cleanlab's default; the confident-learning paper used 4
on CIFAR-10): each example is judged by a head trained on the other 80%, so it cannot have
memorised its own label. Fewer when a class has fewer rows (every class in every fold)."""
LABEL_NOISE_MIN_PER_CLASS = 2
"""A class with fewer rows than this in a split is left out of that split's k-fold: with one
row, the folds that predict it have never seen its class, so it would always look mislabelled.
With fewer than two classes left, the split is not judged (the evidence says so)."""
LABEL_NOISE_CHANCE_MARGIN = 0.1
"""Out-of-fold balanced accuracy (mean per-class recall, whose chance level is 1/C whatever the
class sizes) within 10 points of chance is "at chance": the features do not predict the labels.
The same 10 points as ``CHANCE_MARGIN``."""
LABEL_NOISE_Z = 2.0
"""On a small split the chance band widens to 2 standard errors of an accuracy at chance,
2·sqrt(p(1−p)/n) with p = 1/C: 40 rows of 2 classes give ±16 points by luck alone, so neither
"at chance" nor "clearly above it" is read from luck."""
LABEL_NOISE_LEARNED = 0.5
"""Out-of-fold balanced accuracy at least half of the way from chance to 100% (75% for 2
classes, 55% for 10) and outside the chance band counts as "the features predict these labels".
A linear probe on pretrained features scores far above this on ordinary photo classes; a
validation split this predictable while the training one is at chance means the training labels,
not the features, are wrong (the ``fail``). Between the band and this the verdict is a warning
that names both causes."""
LABEL_NOISE_SHARE = 0.1
"""An estimated share of wrong training labels at or above which the check warns. Curated
benchmarks have 3–6% (Northcutt, Athalye, Mueller 2021, "Pervasive label errors in test sets":
3.3% on average over 10 data sets, about 6% in ImageNet's validation set); one label in ten is
beyond that. Below it (and clearly above zero) the estimate and the labels worth a second look
are reported with an ``ok``."""
LABEL_NOISE_JUDGE = 0.9
"""Out-of-fold accuracy on validation's own k-fold (the features' accuracy on labels held for
reference) needed before single training labels are named. The features' own mistakes look
like wrong labels, and below this they are too many to tell apart: with two Gaussian classes
and 20% of the labels flipped, even the ideal ranking (by the Bayes margin) reaches only
precision 0.58 at recall 0.7 when the features are 80% accurate, 0.74 at 85%, and 0.89 at 90%
(recall 0.82 at precision 0.8). A real head, trained on the noisy labels, does worse than the
ideal. Below this the share of wrong labels is still estimated and stated, without naming
any."""
LABEL_NOISE_SHOWN_SHARE = 0.02
"""Labels worth a second look listed: the likeliest 2% of the training set (at least one)…"""
LABEL_NOISE_SUSPECTS_SHOWN = 50
"""…and at most 50, a page of thumbnails to review; ``suspects_more`` counts the rest."""
