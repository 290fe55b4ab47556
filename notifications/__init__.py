"""Notification delivery: rendering each notice in the reader's language and sending it by
e-mail or to group robots (issue 9). The activity that drives it is
activities/notifications.py; delivery rows are models/notification_delivery.py."""
