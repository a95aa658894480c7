"""What the web server and every job process share: the service settings (the PyWPS configuration),
input references (fetching http(s), the folders file:// may name), and the files and records of a
job. No process, job or front-end code here: every layer above uses it."""
