"""Service extensions around PyWPS: the WSGI router, job handling and protocol front-ends."""
