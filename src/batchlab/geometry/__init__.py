"""Geometry of the training loss at a point: Hessian spectra, critical points, Keskar sharpness.

All functions take a model and data tensors and look at the mean cross-entropy as a function of
the flat vector of trainable parameters (:mod:`batchlab.geometry.functional`); none of them
changes the model's weights or leaves its train/eval mode changed.
"""

from batchlab.geometry.analysis import hessian_summary, select_examples, sharpness_table
from batchlab.geometry.critical import (
    KINDS,
    LOCAL_MAXIMUM,
    LOCAL_MINIMUM,
    NOT_CRITICAL,
    SADDLE_POINT,
    CriticalPointReport,
    SaddleDemo,
    classify,
    classify_at,
    classify_point,
    saddle_demo,
    saddle_network,
)
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, MODES, FlatLoss, evaluation_mode
from batchlab.geometry.hessian import (
    DENSE_LIMIT,
    EIGEN_METHODS,
    ConvergenceError,
    EigenResult,
    ExtremeEigenvalues,
    HessianOperator,
    TraceEstimate,
    choose_eigen_method,
    extreme_eigenpairs,
    extreme_eigenvalues,
    hessian_trace,
    hvp,
    power_iteration,
    top_eigenpairs,
    top_eigenvalues,
    trace_estimate,
)
from batchlab.geometry.lanczos import LanczosResult, lanczos_largest
from batchlab.geometry.minimum import accuracy_reason, curvature_reason, not_a_minimum_warning, slope_reason
from batchlab.geometry.sharpness import (
    SharpnessResult,
    check_sharpness_options,
    keskar_sharpness,
    pseudo_inverse_apply,
    random_subspace,
    sharpness_of_objective,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DENSE_LIMIT",
    "KINDS",
    "LanczosResult",
    "LOCAL_MAXIMUM",
    "LOCAL_MINIMUM",
    "MODES",
    "NOT_CRITICAL",
    "SADDLE_POINT",
    "EIGEN_METHODS",
    "ConvergenceError",
    "CriticalPointReport",
    "EigenResult",
    "ExtremeEigenvalues",
    "FlatLoss",
    "HessianOperator",
    "SaddleDemo",
    "SharpnessResult",
    "TraceEstimate",
    "accuracy_reason",
    "check_sharpness_options",
    "choose_eigen_method",
    "classify",
    "classify_at",
    "classify_point",
    "curvature_reason",
    "evaluation_mode",
    "extreme_eigenpairs",
    "extreme_eigenvalues",
    "hessian_summary",
    "hessian_trace",
    "hvp",
    "keskar_sharpness",
    "lanczos_largest",
    "not_a_minimum_warning",
    "power_iteration",
    "pseudo_inverse_apply",
    "random_subspace",
    "saddle_demo",
    "saddle_network",
    "select_examples",
    "sharpness_table",
    "sharpness_of_objective",
    "slope_reason",
    "top_eigenpairs",
    "top_eigenvalues",
    "trace_estimate",
]
