"""Host and domain names the kernel accepts (sethostname(2), setdomainname(2))."""

from __future__ import annotations

import string

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

# __NEW_UTS_LEN in include/uapi/linux/utsname.h: sethostname(2) and setdomainname(2) fail with
# EINVAL beyond 64 bytes.
HOST_NAME_MAX = 64
# RFC 1035 §2.3.4: a label is at most 63 octets.
LABEL_MAX = 63

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


@st.composite
def dns_labels(draw: st.DrawFn, *, max_size: int = LABEL_MAX, lowercase: bool = False) -> str:
    """One RFC 1123 §2.1 label: letters, digits and inner hyphens, 1 to `max_size` long."""
    ends = _LOWER_ALNUM if lowercase else _ALNUM
    size = draw(st.integers(1, min(max_size, LABEL_MAX)))
    if size == 1:
        return draw(st.sampled_from(ends))
    middle = draw(st.text(ends + "-", min_size=size - 2, max_size=size - 2))
    return draw(st.sampled_from(ends)) + middle + draw(st.sampled_from(ends))


@st.composite
def _dotted_names(draw: st.DrawFn, max_length: int, max_labels: int) -> str:
    # Labels are drawn against the remaining byte budget, so the result fits by construction.
    labels = [draw(dns_labels(max_size=max_length))]
    budget = max_length - len(labels[0])
    while budget >= 2 and len(labels) < max_labels and draw(st.booleans()):
        label = draw(dns_labels(max_size=budget - 1))  # one byte goes to the dot
        labels.append(label)
        budget -= len(label) + 1
    return ".".join(labels)


def _check(max_length: int, max_labels: int) -> None:
    if not 1 <= max_length <= HOST_NAME_MAX:
        raise InvalidArgument(f"max_length={max_length} must be in [1, {HOST_NAME_MAX}]")
    if max_labels < 1:
        raise InvalidArgument(f"max_labels={max_labels} must be at least 1")


def hostnames(*, max_length: int = HOST_NAME_MAX, max_labels: int = 4) -> st.SearchStrategy[str]:
    """RFC 1123 host names of at most `max_length` bytes (the kernel's limit is 64)."""
    _check(max_length, max_labels)
    return _dotted_names(max_length, max_labels)


def domainnames(*, max_length: int = HOST_NAME_MAX, max_labels: int = 4) -> st.SearchStrategy[str]:
    """NIS domain names for `domainname`: same rules and 64-byte limit as host names."""
    _check(max_length, max_labels)
    return _dotted_names(max_length, max_labels)
