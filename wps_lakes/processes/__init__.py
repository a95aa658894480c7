"""The native WPS processes (train, detect, split) and their base class.

The service serves these and the ESGF compute profile's wrappers of them: ``service.registry``
holds the one list that GetCapabilities shows.
"""


def native_processes():
    """Fresh instances of the native processes, in the order the capabilities list them."""
    from .detect import Detect
    from .split import Split
    from .train import Train

    return [Train(), Detect(), Split()]
