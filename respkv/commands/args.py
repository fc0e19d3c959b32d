"""Argument parsing with Redis' exact rules and error texts."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from respkv.commands import errors

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def parse_int(raw: bytes, error=errors.NOT_INTEGER) -> int:
    """A signed 64-bit integer in Redis' strict form (no spaces, no '+', no leading 0s)."""
    if not raw or len(raw) > 20:
        raise error
    if raw[0] == 0x2D:  # '-'
        digits = raw[1:]
    else:
        digits = raw
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30) or raw == b"-0":
        raise error
    value = int(raw)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise error
    return value


# What C's strtod/strtold accept as a whole string (Python's float() also takes
# "1_0" and surrounding spaces, which C does not; C takes hex, which float() does not).
_DECIMAL = re.compile(
    rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?", re.IGNORECASE
)
_HEX = re.compile(
    rb"([+-]?)0x(?:([0-9a-f]+)\.?([0-9a-f]*)|\.([0-9a-f]+))(?:p([+-]?\d+))?", re.IGNORECASE
)


def parse_float(raw: bytes, error=errors.NOT_FLOAT) -> float:
    """A double as Redis' strtod accepts it (no spaces, no nan; inf allowed)."""
    if _DECIMAL.fullmatch(raw):
        value = float(raw)
    elif _HEX.fullmatch(raw):
        try:
            value = float.fromhex(raw.decode("ascii"))
        except OverflowError:  # out of range: infinite, as float() makes "1e400"
            value = -math.inf if raw.startswith(b"-") else math.inf
    else:
        raise error
    if math.isnan(value):
        raise error
    return value


# -- long double, as INCRBYFLOAT computes -------------------------------------
#
# Redis does INCRBYFLOAT in x87 80-bit long double (64-bit mantissa). Python
# has no such type, so values are kept as exact Fractions and rounded to that
# format after each step: the result is bit-identical to Redis on x86-64 and
# the same on every node whatever its CPU (apply must be deterministic).

_LD_MANT_BITS = 64
_LD_MIN_QUANTUM = -16445  # exponent of the smallest subnormal
_LD_OVERFLOW = Fraction(1 << 16384)  # everything >= this rounds to inf
_LD_MAX_CHARS = 5 * 1024  # MAX_LONG_DOUBLE_CHARS
_INF = math.inf


def round_long_double(value: Fraction) -> Fraction | float:
    """``value`` rounded to the nearest long double (ties to even), or +-inf."""
    if value == 0:
        return Fraction(0)
    num, den = abs(value.numerator), value.denominator
    exp = num.bit_length() - den.bit_length()  # floor(log2(|value|)) is exp or exp-1
    if (num << max(0, -exp)) < (den << max(0, exp)):
        exp -= 1
    quantum = max(exp - (_LD_MANT_BITS - 1), _LD_MIN_QUANTUM)
    if quantum >= 0:
        den <<= quantum
    else:
        num <<= -quantum
    mant, rest = divmod(num, den)
    if 2 * rest > den or (2 * rest == den and mant & 1):
        mant += 1
    rounded = Fraction(mant << quantum) if quantum >= 0 else Fraction(mant, 1 << -quantum)
    if rounded >= _LD_OVERFLOW:
        return _INF if value > 0 else -_INF
    return rounded if value > 0 else -rounded


def parse_long_double(raw: bytes, error=errors.NOT_FLOAT) -> Fraction | float:
    """A long double as Redis' string2ld reads it: exact Fraction, or +-inf.

    Rejected like Redis: empty or too long, spaces, nan, and overflow or
    underflow to zero (strtold's ERANGE).
    """
    if not raw or len(raw) >= _LD_MAX_CHARS:
        raise error
    if (hexa := _HEX.fullmatch(raw)) is not None:
        exact = _hex_fraction(hexa)
    elif _DECIMAL.fullmatch(raw):
        exact = _decimal_fraction(raw)
    else:
        raise error
    if isinstance(exact, float):
        return exact
    value = round_long_double(exact)
    if isinstance(value, float) or (value == 0 and exact != 0):
        raise error  # ERANGE: overflow, or underflow to zero
    return value


def _decimal_fraction(raw: bytes) -> Fraction | float:
    text = raw.lower()
    sign = -1 if text[:1] == b"-" else 1
    text = text.lstrip(b"+-")
    if text.startswith(b"inf"):
        return sign * _INF
    mantissa, _, exp_text = text.partition(b"e")
    whole, _, frac = mantissa.partition(b".")
    digits = _int_from_digits(whole + frac)
    exp = _clamped_exponent(exp_text) - len(frac)
    if digits == 0:
        return Fraction(0)
    # Beyond these the result surely overflows or underflows (and 10**exp is huge).
    if exp > 5000:
        return Fraction(sign << 20000)
    if exp < -11000:
        return Fraction(sign, 1 << 20000)
    scale = Fraction(10) ** exp
    return sign * digits * scale


def _hex_fraction(found: re.Match[bytes]) -> Fraction | float:
    sign_text, whole, frac, only_frac, exp_text = found.groups()
    frac = only_frac if only_frac is not None else frac
    whole = whole or b""
    digits = int((whole + frac) or b"0", 16)  # base 16 has no digit limit
    exp = _clamped_exponent(exp_text) - 4 * len(frac)
    if digits == 0:
        return Fraction(0)
    sign = -1 if sign_text == b"-" else 1
    if exp > 20000:
        return Fraction(sign << 20000)  # overflows when rounded
    if exp < -20000 - 4 * len(frac):
        return Fraction(sign, 1 << 20000)  # underflows when rounded
    return sign * Fraction(digits) * Fraction(2) ** exp


def _clamped_exponent(text: bytes | None) -> int:
    """An exponent's value, clamped far beyond any long double's range."""
    if not text:
        return 0
    negative = text[:1] == b"-"
    digits = text.lstrip(b"+-").lstrip(b"0") or b"0"
    value = int(digits) if len(digits) < 9 else 10**9
    return -value if negative else value


def format_long_double(value: Fraction) -> bytes:
    """Redis' ld2string(LD_STR_HUMAN): printf("%.17Lf"), trailing zeros trimmed."""
    scaled = round(abs(value) * 10**17)  # Fraction rounds ties to even, like glibc
    digits = _digits_of_int(scaled).rjust(18, b"0")
    whole, frac = digits[:-17], digits[-17:].rstrip(b"0")
    text = whole + b"." + frac if frac else whole
    return b"-" + text if value < 0 and text != b"0" else text


# Python refuses int <-> decimal text beyond 4300 digits (a DoS guard), but a
# long double has up to 4933 integer digits: convert in chunks.
_CHUNK = 4000


def _int_from_digits(digits: bytes) -> int:
    value = 0
    for start in range(0, len(digits), _CHUNK):
        part = digits[start : start + _CHUNK]
        value = value * 10 ** len(part) + int(part)
    return value


def _digits_of_int(value: int) -> bytes:
    if value < 10**_CHUNK:
        return b"%d" % value
    high, low = divmod(value, 10**_CHUNK)
    return _digits_of_int(high) + (b"%d" % low).rjust(_CHUNK, b"0")
