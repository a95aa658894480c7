"""The protocols beyond PyWPS's WPS 1.0.0, each over the same processes and the same jobs: WPS 2.0.0
(``wps2``), OGC API - Processes with its HTML pages (``ogcapi``, ``ogcapi_openapi``), the ESGF compute
profile (``esgf``), and what WPS 2.0.0 and OGC API share (``bridge``: one way into Execute, one view
of jobs)."""
