"""Notifications: events from run outcomes (`events`), the channels (`channels`: Telegram, e-mail,
Slack, PagerDuty) and the durable outbox that delivers them exactly once per channel (`outbox`)."""
