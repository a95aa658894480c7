"""Jobs: how a request becomes a job (dispatch), where it runs (the local fork server or Celery
workers), and how jobs are listed and dismissed (store). Front-ends and the app use this layer;
it uses the processes and the runtime below it, never a front-end."""
