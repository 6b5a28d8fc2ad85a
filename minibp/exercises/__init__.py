"""Checkers for the notebooks' implement-it exercises.

A notebook's exercise cell defines a function whose body the student writes (a stub raising
``NotImplementedError`` until then) and hands it to the exercise's checker::

    eq2_delta = exercises.check_eq2_delta(eq2_delta)

The checker runs the function against minibp's own, tested implementation on random cases and
names the likely mistake in one sentence (see :mod:`minibp.exercises.core`). It returns the
function the rest of the notebook uses: the student's once it is right, minibp's while the stub
is empty.

=========  ===============================  ==========================================
notebook   checker                          what the student writes
=========  ===============================  ==========================================
01         :func:`check_eq2_delta`          eq (2): backprop's δ through a tanh layer
02         :func:`check_eq3_delta`          eq (3): feedback alignment's δ
02         :func:`check_eq4_update`         eq (4): the forward update ΔW
03         :func:`check_eq5_step`           eq (5) with decay: one step of the transposing rule
04         :func:`check_mirror_step`        eqs (6), (7), (12): one mirror batch with bias-blocking
05         :func:`check_kp_step`            eq (17): Kolen–Pollack's step of B
06         :func:`check_delta_angle`        Fig 4's delta angle
07         :func:`check_conv_macs`          a convolution's multiply-accumulates
08         :func:`check_conv_feedback`      eq (3) for a convolution: the transposed convolution
08         :func:`check_local_mirror`       eq (7) for a locally connected layer: a correlation per position
09         :func:`check_null_grad`          the null primitive's gradient (Kunin et al. 2020)
=========  ===============================  ==========================================
"""

from .core import STRICT_ENV, Case, ExerciseMistake, check, grade
from .measures import check_conv_feedback, check_conv_macs, check_delta_angle, check_local_mirror, check_null_grad
from .paper import check_eq2_delta, check_eq3_delta, check_eq4_update, check_eq5_step, check_kp_step, check_mirror_step

__all__ = [
    "STRICT_ENV",
    "Case",
    "ExerciseMistake",
    "check",
    "check_conv_feedback",
    "check_conv_macs",
    "check_delta_angle",
    "check_eq2_delta",
    "check_eq3_delta",
    "check_eq4_update",
    "check_eq5_step",
    "check_kp_step",
    "check_local_mirror",
    "check_mirror_step",
    "check_null_grad",
    "grade",
]
