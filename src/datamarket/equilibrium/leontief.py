r"""Generic linear fixed-point tools for Leontief systems :math:`d = A d + \gamma`.

A Leontief (input-output) system has the unique solution :math:`d = (I - A)^{-1}\gamma` when the spectral
radius :math:`\rho(A) < 1`; the Jacobi iteration :math:`d \leftarrow A d + \gamma` then converges at
geometric rate :math:`\rho(A)` and serves as an independent cross-check of the direct solve. Westenbroek et
al.'s
generalized Nash equilibrium (:mod:`datamarket.mechanisms.competing_buyers`, Westenbroek et al.,
eqs. 25-26) is one such system.

>>> a = np.array([[0.0, 0.5], [0.25, 0.0]])
>>> round(spectral_radius(a), 12)
0.353553390593
>>> d, iterations, converged = jacobi_solve(a, np.array([1.0, 1.0]))
>>> converged, np.allclose(d, np.linalg.solve(np.eye(2) - a, [1.0, 1.0]))
(True, True)
"""

from __future__ import annotations

import numpy as np

from datamarket.core.types import FloatArray

__all__ = ["jacobi_solve", "spectral_radius"]


def spectral_radius(a: FloatArray) -> float:
    """Largest eigenvalue modulus of a square matrix (``numpy.linalg.eigvals``)."""
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(a))))


def jacobi_solve(
    a: FloatArray, gamma: FloatArray, *, tol: float = 1e-13, max_iter: int = 200_000
) -> tuple[FloatArray, int, bool]:
    r"""Fixed-point (Jacobi) iteration :math:`d \leftarrow A d + \gamma` from :math:`d = \gamma`.

    Converges iff :math:`\rho(A) < 1` (geometric rate :math:`\rho(A)`); this is the independent
    cross-check of a direct solve. Returns ``(d, iterations, converged)``; the stopping rule is a
    relative change below ``tol``.
    """
    d = np.array(gamma, dtype=np.float64)
    for it in range(1, max_iter + 1):
        new = a @ d + gamma
        if not np.all(np.isfinite(new)):
            return new, it, False
        if np.max(np.abs(new - d)) <= tol * max(1.0, float(np.max(np.abs(new)))):
            return new, it, True
        d = new
    return d, max_iter, False
