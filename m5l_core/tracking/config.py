"""Every setting of the online tracker, with the RT-MDNet values (GUIDE §6) as defaults.

The ROS node turns each leaf field into a parameter (``m5l_core.config.describe``), so every
field carries a description and a range. Sample generators follow
:class:`m5l_core.sampling.SampleGenerator`: ``trans`` is a multiple of the mean target side,
``scale`` the base of the scale jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

from m5l_core.config import nested, param
from m5l_core.preprocess import PreprocessConfig


@dataclass(frozen=True)
class SearchConfig:
    """Candidate sampling around the last result and the crop they are scored on."""

    n_candidates: int = param(256, "Gaussian candidate boxes scored per frame", low=1, high=4096)
    trans: float = param(0.6, "candidate centre spread, in mean target sides", low=0.0, high=5.0)
    scale: float = param(1.05, "candidate scale jitter base", low=1.0, high=3.0)
    aspect: float = param(1.0, "candidate aspect-ratio jitter factor: widths x and heights / up to this "
                               "(uniform in log); 1 = every candidate keeps the last aspect (RT-MDNet)",
                          low=1.0, high=3.0)
    trans_expanded: float = param(1.4, "candidate centre spread after a failure (widened search)",
                                  low=0.0, high=5.0)
    top_k: int = param(5, "the result is the mean of the top-k scored candidates", low=1, high=64)
    top_k_overlap: float = param(0.0, "the top-k only among candidates overlapping the best one by at "
                                      "least this IoU, so two high-scoring look-alikes do not average to a "
                                      "box between them; 0 = plain top-k (RT-MDNet; docs/experiments.md, "
                                      "session 20: 0.5 mixed across the held-out sets, so off)",
                          low=0.0, high=1.0)
    padding: float = param(1.2, "context around each box pooled by RoIAlign (RT-MDNet padding)",
                           low=1.0, high=3.0)
    target_size: int = param(0, "the target's side in crop pixels (crops are resized to this); 0 = the "
                                "size the checkpoint was trained at, or RT-MDNet's 107 if it does not say",
                             low=0, high=512)
    crop_stretch: float = param(0.5, "how far a non-square target is stretched to a square in the crop: 1 = "
                                     "each axis scaled to target_size (RT-MDNet), 0 = one scale for both "
                                     "axes (the target keeps its aspect; its area maps to target_size^2); "
                                     "0.5 = halfway (a 1:4 target is 1:2 in the crop)",
                                low=0.0, high=1.0)
    max_crop_side: int = param(1024, "upper bound on a crop side in pixels (memory guard)", low=64, high=4096)
    success_threshold: float = param(0.0, "failure when the top-k mean score (logit difference) is not above",
                                     low=-100.0, high=100.0)
    search_from_regressed: bool = param(
        False, "centre the next frame's candidates on the box-regressed result "
               "(RT-MDNet: on the unregressed top-k mean)")
    gap_free: float = param(0.05, "seconds: a frame stamped at most this long after the last tracked "
                                  "frame counts as the next frame; after a longer gap (dropped pairs) the "
                                  "candidate spread grows with the gap. 0 = ignore stamps",
                            low=0.0, high=10.0)
    gap_exponent: float = param(0.5, "the spread grows as (gap / gap_free) ** this: 0.5 = random-walk "
                                     "motion, 1 = unknown constant velocity", low=0.0, high=2.0)
    max_trans: float = param(1.0, "upper bound of the spread (target sides) that stamp gaps may grow to "
                                  "(a wider spread thins the candidates out: re-detection covers larger "
                                  "jumps)", low=0.0, high=10.0)
    gap_scale: bool = param(True, "after a gap longer than gap_free, grow the scale jitter like the spread "
                                  "(scale ** (grown spread / spread)): a target zooms in dropped frames too; "
                                  "false = only the spread grows")
    velocity_weight: float = param(0.0, "constant-velocity prediction: move the search centre by this share "
                                        "of (velocity of the last two good frames x gap) after a gap longer "
                                        "than gap_free; 0 = off",
                                   low=0.0, high=1.0)
    flow_share: float = param(0.5, "share of the candidates drawn around the optical-flow proposal (median "
                                   "flow of the last box from the last tracked frame, see tracking/flow.py; "
                                   "after a gap longer than gap_free, or every frame: flow_every_frame), "
                                   "the rest around the last box; 0 = off", low=0.0, high=1.0)
    flow_every_frame: bool = param(True, "propose from the optical flow on every frame, not only after a gap "
                                         "(offline sequences and lockstep replays too, so they stay equal; "
                                         "still only when the flow moves beyond the candidates' own reach); "
                                         "false = after gaps only")
    flow_grid: int = param(10, "optical-flow proposal: points per side of the grid laid over the last box",
                           low=2, high=50)
    flow_window: int = param(21, "optical-flow proposal: Lucas-Kanade window side in pixels", low=5, high=101)
    flow_window_fit: float = param(1.0, "optical-flow proposal: the window is at most this many times the "
                                        "box's shorter side (at least 5 px), so on a small target it sees "
                                        "the target rather than what moves around it; 0 = always flow_window",
                                   low=0.0, high=10.0)
    flow_levels: int = param(4, "optical-flow proposal: pyramid levels above the image (each halves it), "
                                "so jumps of several windows are followed", low=0, high=8)
    flow_max_disagreement: float = param(0.0, "optical-flow proposal: none when the reliable points' moves "
                                              "disagree (median distance to their median move) by more "
                                              "than this many mean target sides (0.2 was measured); "
                                              "0 = no check",
                                         low=0.0, high=10.0)
    flow_max_move: float = param(4.0, "optical-flow proposal: none when it moves the box more than this "
                                      "many mean target sides, times (gap / gap_free) ** gap_exponent "
                                      "after a gap; 0 = no bound", low=0.0, high=100.0)
    flow_scale: float = param(1.0, "resize the box searched around by the optical flow's scale (how far the "
                                   "last box's points spread apart) to this power, on frames where one "
                                   "scale and shift fit the points (flow_scale_fit): follows a zooming "
                                   "camera or a robot closing in on a rigid target; 0 = off (the "
                                   "candidates' scale jitter alone, RT-MDNet)", low=0.0, high=1.0)
    flow_scale_fit: float = param(0.005, "flow scale: used only when one scale and shift place the points "
                                         "within this many box sides (median); a rigid view fits within "
                                         "0.005, a deforming target or points split between target and "
                                         "background fit worse", low=0.0, high=1.0)
    max_area_ratio: float = param(2.0, "a widened search (a re-detection tile, a flow proposal) crops at "
                                       "most this many times the pixels of an ordinary frame (at a coarser "
                                       "scale beyond), so it costs about as much as an ordinary frame",
                                  low=1.0, high=100.0)
    max_crop_pixels: int = param(0, "upper bound on a frame's crop in pixels (width x height), reached by a "
                                    "coarser scale: bounds the conv layers' time per frame whatever the "
                                    "target's shape or the search's width; 0 = no bound beyond "
                                    "max_area_ratio", low=0, high=16777216)
    size_reuse: float = param(1.0, "pad a frame's crop (with the pixel mean, at its bottom and right) to a "
                                   "size the conv layers met before when that size holds it with at most "
                                   "this factor of its pixels: oneDNN and cuDNN prepare kernels per input "
                                   "size, ~3x a frame's conv time on a size not met lately "
                                   "(crop_sizes.py); 1 = every crop at its own size", low=1.0, high=4.0)


@dataclass(frozen=True)
class InitConfig:
    """First-frame fine-tuning of fc4-fc6 with a fresh fc6."""

    n_pos: int = param(500, "positive samples on the first frame", low=1, high=10000)
    n_neg: int = param(5000, "negative samples on the first frame", low=1, high=50000)
    pos_iou_min: float = param(0.7, "a positive overlaps the target at least this much", low=0.0, high=1.0)
    neg_iou_max: float = param(0.5, "a negative overlaps the target at most this much", low=0.0, high=1.0)
    pos_trans: float = param(0.1, "positive sampler spread (gaussian)", low=0.0, high=5.0)
    pos_scale: float = param(1.2, "positive sampler scale base", low=1.0, high=3.0)
    neg_trans: float = param(1.0, "negative sampler spread (uniform)", low=0.0, high=5.0)
    neg_scale: float = param(2.0, "negative sampler scale base", low=1.0, high=3.0)
    n_inner_neg: int = param(500, "extra negatives inside the target, smaller than it (sides: "
                                  "update.inner_scale); 0 = RT-MDNet's negatives only", low=0, high=50000)
    head_from_domains: bool = param(False, "start the fresh fc6 from the mean of the checkpoint's trained "
                                           "domain heads instead of MDNet's random one: the quick start "
                                           "then scores high at once, look-alikes too (docs/experiments.md, "
                                           "session 20: no better on real_dev or in realtime, so off)")
    iterations: int = param(50, "SGD iterations of first-frame fine-tuning", low=0, high=1000)
    lr: float = param(1e-4, "learning rate of first-frame fine-tuning", low=0.0, high=1.0)
    quick_iterations: int = param(5, "quick start: iterations done inside initialize() on a subset of the "
                                     "samples; the rest of the samples and iterations follow in the learning "
                                     "budget. >= iterations = the whole fine-tuning inside initialize()",
                                  low=0, high=1000)
    quick_pos: int = param(64, "quick start: positives of the first fit", low=1, high=10000)
    quick_neg: int = param(256, "quick start: negatives of the first fit", low=1, high=50000)
    quick_crop: bool = param(False, "quick start: run the conv layers on an ordinary frame's crop around the "
                                    "target only (a third of the pixels of the crop holding every sample: "
                                    "the first box comes ~35 % sooner) and fit on the samples inside it; the "
                                    "whole crop follows in the learning budget. false = the whole crop "
                                    "first (a little more accurate on held-out sets)")
    rest_near_iterations: int = param(
        0, "with quick_crop: of the remaining iterations, this many train first on the samples inside the "
           "quick crop, pooled from the maps initialize already has; the conv pass over the whole crop "
           "and its far samples follow. A learner thread short of time (every first job waited ~0.5 s for "
           "that pass and the pooling) then takes its SGD steps sooner (docs/experiments.md, session 30); "
           "0 = the whole crop first", low=0, high=1000)


@dataclass(frozen=True)
class UpdateConfig:
    """Short-term (on failure) and long-term (periodic) online updates from bounded memories."""

    n_pos: int = param(50, "positive samples collected per successful frame", low=1, high=5000)
    n_neg: int = param(200, "negative samples collected per successful frame", low=1, high=5000)
    pos_iou_min: float = param(0.7, "a positive overlaps the result at least this much", low=0.0, high=1.0)
    neg_iou_max: float = param(0.3, "a negative overlaps the result at most this much", low=0.0, high=1.0)
    pos_trans: float = param(0.1, "positive sampler spread (gaussian)", low=0.0, high=5.0)
    pos_scale: float = param(1.2, "positive sampler scale base", low=1.0, high=3.0)
    neg_trans: float = param(1.5, "negative sampler spread (uniform); kept inside the search crop",
                             low=0.0, high=5.0)
    neg_scale: float = param(1.2, "negative sampler scale base", low=1.0, high=3.0)
    n_inner_neg: int = param(20, "extra negatives per successful frame inside the result, smaller than it "
                                 "(see inner_scale); 0 = RT-MDNet's negatives only", low=0, high=5000)
    inner_scale: tuple[float, float] = param(
        (0.3, 0.55), "side range, in target sides, of the negatives inside the target (IoU = scale squared, "
                     "capped below each sampler's neg_iou_max): they keep the box from shrinking onto a part "
                     "of the target")
    skip_unchanged: bool = param(True, "skip a short-term update when no sample was collected since the last "
                                       "update (it would train on the same samples again: a lost target "
                                       "queued one per frame); false = RT-MDNet, one on every failure")
    iterations: int = param(15, "SGD iterations per update", low=0, high=1000)
    lr: float = param(3e-4, "learning rate of online updates", low=0.0, high=1.0)
    short_term_frames: int = param(20, "frames of samples used by short-term updates (and kept negatives)",
                                   low=1, high=1000)
    long_term_frames: int = param(100, "frames of positive samples kept for long-term updates",
                                  low=1, high=10000)
    long_term_interval: int = param(10, "a long-term update every this many frames", low=1, high=10000)


@dataclass(frozen=True)
class OnlineOptimConfig:
    """Mini-batches and SGD shared by first-frame fine-tuning and online updates."""

    batch_pos: int = param(32, "positives per mini-batch", low=1, high=4096)
    batch_neg: int = param(96, "hard negatives per mini-batch", low=1, high=4096)
    neg_candidates: int = param(1024, "negatives scored to mine the hard ones of a mini-batch",
                                low=1, high=65536)
    momentum: float = param(0.9, "SGD momentum", low=0.0, high=1.0)
    weight_decay: float = param(5e-4, "SGD weight decay", low=0.0, high=1.0)
    grad_clip: float = param(10.0, "gradient norm clip", low=0.0, high=1e6)
    head_lr_mult: float = param(10.0, "learning-rate multiplier of the fresh fc6", low=0.0, high=1000.0)
    modality_dropout: float = param(
        0.0, "share of the mini-batch samples trained with one modality's half of the fused features "
             "zeroed (which one at random), so each modality alone must separate target from background "
             "(a thermal crossover then leaves an RGB classifier); 0 = off (RT-MDNet)", low=0.0, high=1.0)


@dataclass(frozen=True)
class BoxRegressionConfig:
    """Ridge box regression learnt on the first frame, applied to the top-k on success."""

    enabled: bool = param(True, "refine successful results with the box regressor")
    n_samples: int = param(1000, "first-frame training boxes", low=1, high=20000)
    iou_min: float = param(0.6, "training boxes overlap the target at least this much", low=0.0, high=1.0)
    trans: float = param(0.3, "training box sampler spread (uniform)", low=0.0, high=5.0)
    scale: float = param(1.5, "training box sampler scale base", low=1.0, high=3.0)
    alpha: float = param(30000.0, "ridge penalty. RT-MDNet's 1000 was set for VGG-M conv3; on the bundled "
                                  "models' fused features 30000 keeps the first view from being overfitted "
                                  "(README, 'The box regressor's penalty': SR up on every held-out set)",
                         low=0.0, high=1e9)
    prior_size_weight: float = param(0.0, "share of the box's size (log offsets) taken from the regressor "
                                          "the checkpoint learnt offline on many objects (its box_prior; the "
                                          "bundled models carry one), the rest from the first-frame one; the "
                                          "centre stays the first frame's. 0 = first frame only (RT-MDNet); "
                                          "0.5 measured in docs/experiments.md (Box prior)",
                                     low=0.0, high=1.0)
    head_weight: float = param(0.5, "how far the reported box's size moves (log space) to the box head's "
                                    "reading, less the head's first-frame bias (a dense head learnt offline "
                                    "on the frozen conv maps, m5l_core/tracking/box_head.py; the default "
                                    "model carries one). 0 = off (MDNet's box); a checkpoint without a "
                                    "head ignores it",
                               low=0.0, high=1.0)
    head_centre_weight: float = param(0.5, "how far the reported box's centre moves to the box head's, "
                                           "less the head's first-frame offset, in box sides; the next "
                                           "frame's candidates stay about the classifier's centre. 0 = off",
                                      low=0.0, high=1.0)
    head_centre_max: float = param(0.2, "largest head centre offset taken, in box sides, per axis: a reading "
                                        "further off (a look-alike beside the target) is held at it",
                                   low=0.0, high=10.0)


@dataclass(frozen=True)
class FailureConfig:
    """When a frame counts as a failure (LOST: widened search, re-detection after a run of them).

    What is learnt from a frame keeps RT-MDNet's rule whatever this says: update samples only
    from frames scoring above ``search.success_threshold``, a short-term update below it.
    """

    calibrated: bool = param(True, "a failure needs the score to fall clearly below the scores of recent "
                                   "good frames as well as below search.success_threshold; false = the "
                                   "threshold alone (RT-MDNet)")
    window: int = param(20, "good frames whose scores form the reference", low=1, high=1000)
    drop: float = param(3.0, "failure when the score is below the reference median minus this many spreads",
                        low=0.0, high=100.0)
    min_spread: float = param(1.0, "lower bound of the reference spread (robust std of the window), in score "
                                   "units", low=0.0, high=100.0)


@dataclass(frozen=True)
class RedetectConfig:
    """Whole-image search after a loss: one tile of a coarse grid of candidates per frame."""

    enabled: bool = param(True, "search the whole image, tile by tile, after after_lost failed frames")
    after_lost: int = param(10, "consecutive failed frames before the re-detection starts",
                            low=1, high=100000)
    tile: float = param(4.0, "side of one tile in target sides (one tile is scored per frame)",
                        low=1.0, high=100.0)
    stride: float = param(0.5, "grid step of the candidates in target sides", low=0.1, high=10.0)


@dataclass(frozen=True)
class BudgetConfig:
    """How much online learning (first-frame remainder, updates) runs per frame.

    Learning is queued and runs a few steps after each frame's result (or on a learner thread),
    so no frame waits for a whole update. One step = one SGD iteration, or pooling one batch of
    first-frame samples.
    """

    steps_per_frame: float = param(
        10.0, "at most this many learning steps after each tracked frame (fractions accumulate): the "
              "first-frame fit ends within ~6 frames and an update within two, while a frame never waits "
              "for more (2 is RT-MDNet's average, and learns too late); 0 = run all pending learning at "
              "once (RT-MDNet's blocking updates)", low=0.0, high=1000.0)
    mode: str = param("steps", "steps: exactly steps_per_frame (deterministic); time: also keep learning "
                               "while the frame has taken less than frame_ms; thread: a learner thread "
                               "runs pending learning beside tracking (live robots: frames never wait for "
                               "learning, uses a second core; not reproducible)",
                      choices=("steps", "time", "thread"))
    frame_ms: float = param(60.0, "time mode: wall-clock milliseconds per frame that learning may fill",
                            low=0.0, high=100000.0)
    thread_nice: int = param(10, "thread mode: nice value added to the learner thread (Linux), so tracking "
                                 "and the rest of the robot come first", low=0, high=19)
    thread_duty: float = param(0.5, "thread mode: the share of wall-clock time the learner thread may be "
                                    "busy (it rests in proportion after each step), so the tracking thread, "
                                    "the GIL and the robot's other nodes keep the rest; 1 = no rest",
                               low=0.05, high=1.0)
    thread_neg_candidates: int = param(
        256, "thread mode: negatives the learner thread scores to mine each mini-batch's hard ones, "
             "instead of optim.neg_candidates (0 = the same): mining 1024 is ~60 % of a step's cost, so "
             "256 gives the thread ~1.8x the steps per second; a live learner falls far behind the "
             "steps schedule's learning, and more, cheaper steps track better (docs/experiments.md, "
             "session 29)", low=0, high=1000000)
    pool_batch: int = param(8192, "first-frame samples pooled per step when the quick start defers them "
                                  "(8192: all of RT-MDNet's in one step)",
                            low=1, high=100000)
    conv_ms: float = param(0.0, "time and thread modes: milliseconds a frame's conv layers aim at; a crop "
                                "that at the recent time per crop pixel (median of the last frames) would "
                                "take longer is taken at a coarser scale, the same place at fewer pixels "
                                "(crop_budget.py). Bounds a frame's cost whatever the target's shape or the "
                                "machine's load; 0 = off. steps mode never uses it (its boxes must not "
                                "depend on the clock)", low=0.0, high=100000.0)


@dataclass(frozen=True)
class RuntimeConfig:
    """How the network runs; none of these change what the tracker computes beyond rounding."""

    precision: str = param("auto", "compute precision of convolutions and fc layers (autocast); auto = "
                                   "bfloat16 on CPUs that report native bf16 (AVX512-BF16/AMX), else "
                                   "float32; fastest = whichever a one-time probe finds faster on this "
                                   "CPU (not every CPU with the flag is faster in bf16; runtime.py)",
                           choices=("auto", "fastest", "float32", "bfloat16"))
    threads: int = param(1, "torch CPU threads; 0 leaves torch's default (one per core). One thread keeps "
                            "the tracker fast beside other busy processes: OpenMP threads that wait for "
                            "each other collapse when another process takes a core", low=0, high=256)
    channels_last: bool = param(True, "run the conv layers in channels-last memory layout on the CPU (faster "
                                      "there); CUDA keeps the default layout, where cuDNN plans a new input "
                                      "shape in ~30 ms against ~1 s for channels-last float32")
    fused_convs: bool = param(True, "on the CPU, run each EfficientNet-Lite0 convolution and its ReLU6 "
                                    "as one oneDNN call (same numbers; the trunk ~30 % faster in "
                                    "bfloat16), where a one-time probe finds that call working; off: "
                                    "separate PyTorch ops")
    batch_twin_streams: bool = param(True, "when both streams hold the same weights (the bundled model: one "
                                           "frozen ImageNet trunk), run the two crops as one batch")
    input_multiple: int = param(0, "pad each crop at its bottom and right edges (with the pixel mean, "
                                   "what the first convolution's padding adds anyway) to a multiple of this "
                                   "many pixels, so the GPU's convolution library meets a few input shapes "
                                   "and reuses its plans instead of planning anew for every frame's crop; "
                                   "0 = 32 on CUDA, 1 (no padding) on the CPU", low=0, high=256)


@dataclass(frozen=True)
class TrackerConfig:
    """The online M5L tracker (paper §III-C, RT-MDNet procedure)."""

    preprocess: PreprocessConfig = nested(PreprocessConfig)
    search: SearchConfig = nested(SearchConfig)
    init: InitConfig = nested(InitConfig)
    update: UpdateConfig = nested(UpdateConfig)
    optim: OnlineOptimConfig = nested(OnlineOptimConfig)
    bbreg: BoxRegressionConfig = nested(BoxRegressionConfig)
    failure: FailureConfig = nested(FailureConfig)
    redetect: RedetectConfig = nested(RedetectConfig)
    budget: BudgetConfig = nested(BudgetConfig)
    runtime: RuntimeConfig = nested(RuntimeConfig)
