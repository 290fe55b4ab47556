"""The configured channels, from settings (BATON_SMTP_*, BATON_WEBHOOK_ROBOTS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifications.channels import (
    DeliveryChannels,
    SmtpChannel,
    SmtpConfig,
    WebhookRobotChannel,
)

if TYPE_CHECKING:
    from settings import Settings


def channels_from_settings(settings: Settings) -> DeliveryChannels:
    """E-mail when BATON_SMTP_HOST is set; one channel per configured robot."""
    email = None
    if settings.smtp_host:
        email = SmtpChannel(SmtpConfig(
            host=settings.smtp_host, port=settings.smtp_port, tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password
            else None,
            sender=settings.smtp_from, timeout_seconds=settings.smtp_timeout_seconds))
    robots = tuple(
        WebhookRobotChannel(
            robot_name=robot.name, provider=robot.provider, url=robot.url.get_secret_value(),
            secret=robot.secret.get_secret_value() if robot.secret else None,
            kinds=frozenset(robot.kinds), language=robot.language,
            timeout_seconds=settings.smtp_timeout_seconds)
        for robot in settings.webhook_robots)
    return DeliveryChannels(email=email, robots=robots)
