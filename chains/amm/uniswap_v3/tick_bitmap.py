"""``TickBitmap`` (v3-core): one bit per initialized (compressed) tick, 256 ticks per uint256 word.

The bitmap is a plain ``dict[int, int]`` (word position -> word), as the pool's ``tickBitmap`` mapping.
``next_initialized_tick_within_one_word`` never looks past the current word, exactly as the contract: the
swap loop's step boundaries, and therefore the rounding of every step, depend on it.
"""

from __future__ import annotations

from chains.amm.uniswap_v3.errors import TickMisalignedError

__all__ = ["flip_tick", "next_initialized_tick_within_one_word", "position"]


def position(tick: int) -> tuple[int, int]:
    """``(word_pos, bit_pos)`` of a compressed tick: ``(tick >> 8, tick % 256)``."""
    return tick >> 8, tick & 0xFF


def flip_tick(bitmap: dict[int, int], tick: int, tick_spacing: int) -> None:
    """Flip the bit of ``tick`` (which must be a multiple of ``tick_spacing``); empty words are removed."""
    if tick % tick_spacing:
        raise TickMisalignedError(f"tick {tick} is not a multiple of the tick spacing {tick_spacing}")
    compressed = tick // tick_spacing
    word_pos = compressed >> 8
    word = bitmap.get(word_pos, 0) ^ (1 << (compressed & 0xFF))
    if word:
        bitmap[word_pos] = word
    else:
        bitmap.pop(word_pos, None)


def next_initialized_tick_within_one_word(
    bitmap: dict[int, int], tick: int, tick_spacing: int, lte: bool
) -> tuple[int, bool]:
    """The next initialized tick at or left of ``tick`` (``lte``) or right of it, within the same word.

    Returns ``(next_tick, initialized)``; when no bit is set the word boundary is returned, uninitialized.
    """
    compressed = tick // tick_spacing  # floor: rounds toward negative infinity as the contract does
    if lte:
        bit_pos = compressed & 0xFF
        masked = bitmap.get(compressed >> 8, 0) & ((2 << bit_pos) - 1)
        if masked:
            return (compressed - bit_pos + masked.bit_length() - 1) * tick_spacing, True
        return (compressed - bit_pos) * tick_spacing, False
    compressed += 1
    bit_pos = compressed & 0xFF
    masked = bitmap.get(compressed >> 8, 0) >> bit_pos
    if masked:
        return (compressed + (masked & -masked).bit_length() - 1) * tick_spacing, True
    return (compressed + 255 - bit_pos) * tick_spacing, False
