"""Files written whole or not at all: a reader (a status poll, the service publishing a checkpoint's
metrics) sees the old content or the new one, never a part."""
import os
import threading
from pathlib import Path


def write_atomic(path, data):
    """Write ``data`` (str as UTF-8, or bytes) to ``path`` through a temporary file beside it, renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # writers never share one
    try:
        with open(tmp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
