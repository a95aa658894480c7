"""The one registry of WPS processes: what GetCapabilities lists is exactly this list."""


def get_processes():
    """Fresh process instances, in the order the capabilities list them."""
    return []
