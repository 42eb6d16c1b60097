"""Telling customers what is coming: the events derived from the outbox
(events.py), how webhooks are signed (signing.py) and retried (retry.py),
which addresses they may reach (addresses.py), and the emails (emails.py,
templates/). Delivery itself is the workers' (workers/webhooks.py,
workers/mailer.py); the events are written in persistence/notifications.py.
"""
