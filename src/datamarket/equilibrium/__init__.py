"""Generic equilibrium tools: Leontief fixed-point systems and the price of anarchy.

Family-specific equilibria live in their family's package (Chaintreau et al.'s market equilibria in
:mod:`datamarket.mechanisms.balanced_market`, Westenbroek et al.'s generalized Nash equilibrium in
:mod:`datamarket.mechanisms.competing_buyers`); they build on these helpers.

>>> price_of_anarchy(10.2, 10.0)
1.02
"""

from datamarket.equilibrium.anarchy import price_of_anarchy
from datamarket.equilibrium.leontief import jacobi_solve, spectral_radius

__all__ = ["jacobi_solve", "price_of_anarchy", "spectral_radius"]
