"""The one registry of WPS processes: what GetCapabilities lists is exactly this list."""


def get_processes():
    """Fresh process instances, in the order the capabilities list them."""
    from .esgf import ESGF_PROCESSES
    from .wps_detect import Detect
    from .wps_split import Split
    from .wps_train import Train

    return [Train(), Detect(), Split()] + [cls() for cls in ESGF_PROCESSES]
