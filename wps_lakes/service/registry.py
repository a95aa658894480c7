"""The one registry of WPS processes: what GetCapabilities lists is exactly this list."""


def get_processes():
    """Fresh process instances, in the order the capabilities list them: the native processes,
    then the ESGF compute profile's."""
    from ..frontends.esgf import ESGF_PROCESSES
    from ..processes import native_processes

    return native_processes() + [cls() for cls in ESGF_PROCESSES]
