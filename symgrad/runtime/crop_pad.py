"""XLA's padding of one axis (negative values crop) as a slice and a non-negative padding: plain
integer arithmetic, shared by every target's convolution."""


def _crop_and_pad(n, lo, hi):
    """Padding (lo, hi) of an axis of length n as a slice of it and (lo, hi) >= 0 to add.  Negative
    padding crops; a crop past the far end eats into the other side's padding, as in XLA."""
    start, stop = min(max(-lo, 0), n), max(min(n + hi, n), 0)
    kept = max(stop - start, 0)
    front = min(max(lo, 0), max(n + lo + hi, 0))
    return slice(start, start + kept), (front, max(n + lo + hi - front - kept, 0))
