"""gunicorn settings for production (docker/Dockerfile): the access log names no patient."""

import multiprocessing

bind = "0.0.0.0:8000"
# Two workers per core is gunicorn's usual starting point; each also runs a few threads so that a slow
# warehouse query does not hold a whole worker.
workers = 2 * multiprocessing.cpu_count()
threads = 4
worker_class = "gthread"
timeout = 60
# TLS ends at the reverse proxy; trust its X-Forwarded-* headers (the proxy must overwrite them).
forwarded_allow_ips = "*"
accesslog = "-"
# The path without its query string, and no referrer: query strings and referring pages may carry a
# patient number or a search (the default format logs both).
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'


def post_worker_init(worker: object) -> None:
    """Load the question engine's models (spaCy, the classifier) and the pipeline's modules before the
    worker takes requests: otherwise the first question each new worker gets waits several seconds."""
    import hisplatform.queries  # noqa: F401
    from nlquery import classifier

    classifier.nlp()
    classifier.load()
