"""Amounts and quantities in portal pages, written by the service's one
:class:`~datamarket.core.display.Formatter` (``ServiceSettings.display``).

Templates call two globals:

* ``money(amount_minor, currency)``: an exact amount of the currency (a code such as ``USD`` or a
  named unit ``CREDIT:0``), in a ``<span class="money">`` whose ``data-amount-minor`` keeps the
  integer the ledger holds;
* ``qty(value)``: a value that is not money, to the formatter's significant digits, in a ``<span>``
  whose ``title`` is the exact value (shown on hover; the JSON API carries it too);
* ``major(amount, currency)``: an unbooked amount in major units (a term of a payment rule), two
  decimals finer than the currency, exact value on hover.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from datamarket.core.display import DEFAULT_LOCALE, Formatter, exact
from datamarket.ledger.money import Currency

_DEFAULT = Formatter()


def formatter(ctx: Context) -> Formatter:
    fmt = ctx.get("fmt")
    return fmt if isinstance(fmt, Formatter) else _DEFAULT


def _scale(currency: str) -> int:
    return Currency.parse(str(currency), stored=True).scale


@pass_context
def money(ctx: Context, amount_minor: Any, currency: str) -> Markup:
    """``<span class="money" data-amount-minor=N>`` with the formatted amount."""
    n = int(amount_minor)
    text = formatter(ctx).money(n, str(currency), _scale(currency))
    return Markup('<span class="money" data-amount-minor="{}">{}</span>').format(n, text)


@pass_context
def major(ctx: Context, amount: Any, currency: str) -> Markup:
    """An unbooked amount in major units, the exact value on hover."""
    text = formatter(ctx).major(float(amount), str(currency), _scale(currency))
    return Markup('<span class="money-exact" title="{}">{}</span>').format(exact(float(amount)), text)


@pass_context
def qty(ctx: Context, value: Any) -> Markup:
    """A value that is not money, to the formatter's significant digits, the exact value on hover."""
    text = formatter(ctx).quantity(value)
    if isinstance(value, float):
        return Markup('<span class="qty" title="{}">{}</span>').format(exact(value), text)
    return Markup(escape(text))


def install(env: Environment) -> None:
    """Make ``money``, ``major`` and ``qty`` available to every template of ``env``."""
    env.globals.update(money=money, major=major, qty=qty, default_locale=DEFAULT_LOCALE)
