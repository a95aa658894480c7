"""GetCapabilities and DescribeProcess answers, kept once made.

They cannot change while the server runs, yet PyWPS renders each from a freshly compiled template
and logs it in the job database (three commits). Keeping the answers makes them cost microseconds.
"""
import threading
from collections import OrderedDict
from urllib.parse import parse_qsl

CACHEABLE = {"getcapabilities", "describeprocess"}
MAX_ENTRIES = 256  # distinct query strings kept (least recently used dropped)


class DocumentCache:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    @staticmethod
    def key(environ):
        if environ.get("REQUEST_METHOD") != "GET":
            return None
        pairs = sorted((k.lower(), v) for k, v in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if dict(pairs).get("request", "").lower() not in CACHEABLE:
            return None
        return tuple(pairs) + ((("accept", environ.get("HTTP_ACCEPT", "")),))

    def __call__(self, environ, start_response):
        key = self.key(environ)
        if key is None:
            return self.wsgi_app(environ, start_response)
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
        if entry is None:
            captured = {}

            def capture(status, headers, exc_info=None):
                captured.update(status=status, headers=headers)
                return lambda data: None

            body = b"".join(self.wsgi_app(environ, capture))
            entry = (captured["status"], captured["headers"], body)
            if captured["status"].startswith("200"):
                with self.lock:
                    self.entries[key] = entry
                    while len(self.entries) > MAX_ENTRIES:
                        self.entries.popitem(last=False)
        status, headers, body = entry
        start_response(status, headers)
        return [body]
