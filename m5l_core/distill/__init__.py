"""``m5l-distill``: the paper's VGG-M conv1-3 learns an ImageNet teacher's stride-8 features.

No ``imagenet-vgg-m.mat`` can be had on this project's machines, but EfficientNet-Lite0's ImageNet
weights can. Distillation turns them into VGG-M weights for both M5L streams:

* RGB stream: random crops of real photos; teacher and student see the same crop.
* Thermal stream (cross-modal): the same crop of an aligned RGB/thermal pair; the teacher sees the
  RGB image, the student the thermal one, so thermal features come to mean what RGB ones mean.

Modules: :mod:`~m5l_core.distill.config` (DistillConfig), :mod:`~m5l_core.distill.data` (crops),
:mod:`~m5l_core.distill.geometry` (student cell -> teacher coordinate),
:mod:`~m5l_core.distill.objective` (teacher, students, loss), :mod:`~m5l_core.distill.state`
(checkpoint), :mod:`~m5l_core.distill.result` (the file ``m5l-train --init vggm:PATH`` reads),
:mod:`~m5l_core.distill.loop` and :mod:`~m5l_core.distill.cli`.
"""

from m5l_core.distill.config import DistillConfig, load_distill_config
from m5l_core.distill.loop import distill
from m5l_core.distill.result import RESULT_NAME, write_distilled_vggm

__all__ = ["RESULT_NAME", "DistillConfig", "distill", "load_distill_config", "write_distilled_vggm"]
