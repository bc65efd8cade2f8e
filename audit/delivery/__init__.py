"""Delivering a written report: one module per channel, one table of channels.

Each channel module has the same small interface:

    NAME                       the channel's name (in logs)
    configured(config)         whether the config asks for this channel
    only_on_change(config)     whether it is skipped when nothing changed since the last report
    deliver(delivery)          send; raise MailError (a clear message, no secret) when it failed

A new channel is a new module here and one entry in CHANNELS. The caller writes the report first and
only then calls `send_report`, so a failed send never loses the report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING

from audit.config import Config
from audit.delivery import graph_mail, smtp, webhook
from audit.delivery.graph_mail import UPLOAD_CHUNK, graph_message, send_graph, sender_client
from audit.delivery.message import (
    SMTP_TIMEOUT,
    XLSX_TYPE,
    Delivery,
    MailError,
    build_message,
    has_news,
    render_html,
    render_text,
    subject_line,
)
from audit.delivery.smtp import send_smtp
from audit.delivery.webhook import post_webhook
from audit.models import RunResult

if TYPE_CHECKING:
    from audit.graph import GraphClient
    from audit.report import ReportFiles

log = logging.getLogger("audit")

# In the order they are tried: the mail first, then the chat line (which never fails the delivery).
CHANNELS: dict[str, ModuleType] = {
    smtp.NAME: smtp,
    graph_mail.NAME: graph_mail,
    webhook.NAME: webhook,
}


def configured(config: Config) -> list[str]:
    """The channels the config asks for, in the order they are tried."""
    return [name for name, channel in CHANNELS.items() if channel.configured(config)]


def send_report(
    result: RunResult,
    files: ReportFiles,
    config: Config,
    *,
    graph: GraphClient | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = SMTP_TIMEOUT,
) -> bool:
    """Deliver the written report on every configured channel.

    Returns False when nothing was sent (no channel configured, or each one only_on_change and nothing
    changed). Raises the first MailError after every channel has been tried.
    graph: a client for the sending tenant (Graph mail); built from the config when omitted.
    """
    names = configured(config)
    if not names:
        return False
    delivery = Delivery(result, files, config, os.environ if environ is None else environ, graph, timeout)
    news: bool | None = None
    sent = False
    failure: MailError | None = None
    for name in names:
        channel = CHANNELS[name]
        if channel.only_on_change(config):
            news = has_news(result, files.assessment) if news is None else news
            if not news:
                log.info("report not sent by %s: nothing changed since the last report (only_on_change)", name)
                continue
        try:
            channel.deliver(delivery)
        except MailError as exc:
            failure = failure or exc
        sent = True
    if failure:
        raise failure
    return sent


__all__ = [
    "CHANNELS",
    "UPLOAD_CHUNK",
    "XLSX_TYPE",
    "Delivery",
    "MailError",
    "build_message",
    "configured",
    "graph_message",
    "has_news",
    "post_webhook",
    "render_html",
    "render_text",
    "send_graph",
    "send_report",
    "send_smtp",
    "sender_client",
    "subject_line",
]
