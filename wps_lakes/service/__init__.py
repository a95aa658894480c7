"""The application: the WSGI router (``app``), access tokens (``auth``), request guards (``guards``), the
cached capability documents (``documents``) and the registry of served processes (``registry``)."""
