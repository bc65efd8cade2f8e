"""Chat channel: the one-line summary POSTed to an incoming webhook ([webhook] url_env).

The URL itself is a credential (anyone holding it can post): it must be https://, a redirect is not
followed, and it is never logged. A failure is only logged: the report and the mail do not depend on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import requests

from audit.config import Config, WebhookConfig, is_https_url
from audit.delivery.message import Delivery, subject_line
from audit.logs import register_secret
from audit.session import proxy_url, tls_verify

log = logging.getLogger("audit")

NAME = "webhook"
WEBHOOK_TIMEOUT = 15.0


def settings(config: Config) -> WebhookConfig | None:
    """[webhook], or the older [email] webhook_url_env of a config built in code (load_config maps it)."""
    if config.webhook is not None:
        return config.webhook
    email = config.email
    if email is not None and email.webhook_url_env:
        return WebhookConfig(url_env=email.webhook_url_env, only_on_change=email.only_on_change)
    return None


def configured(config: Config) -> bool:
    return settings(config) is not None


def only_on_change(config: Config) -> bool:
    hook = settings(config)
    return bool(hook and hook.only_on_change)


def deliver(delivery: Delivery) -> None:
    hook = settings(delivery.config)
    assert hook is not None
    post_webhook(
        hook.url_env,
        subject_line(delivery.result, delivery.files),
        environ=delivery.environ,
        verify=tls_verify(delivery.config.audit),
        proxy=proxy_url(delivery.config.audit),
    )


def post_webhook(
    url_env: str,
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    verify: str | bool = True,
    proxy: str | None = None,
    timeout: float = WEBHOOK_TIMEOUT,
) -> bool:
    """POST {"text": text} to the incoming webhook in $url_env. Failures are logged, never raised.

    The URL itself is a credential (anyone holding it can post), so it is never logged.
    """
    env = os.environ if environ is None else environ
    url = env.get(url_env)
    register_secret(url)
    if not url:
        log.warning("webhook not posted: the environment variable %s is not set", url_env)
        return False
    if not is_https_url(url):
        log.warning("webhook in %s not posted: the URL is not https://, and it must not travel in clear", url_env)
        return False
    try:
        # A redirect is not followed: it would carry the post (and the URL's secret path) somewhere else.
        answer = requests.post(
            url,
            json={"text": text},
            timeout=timeout,
            verify=verify,
            proxies={"https": proxy, "http": proxy} if proxy else None,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.warning("webhook in %s not posted: %s", url_env, type(exc).__name__)
        return False
    if 300 <= answer.status_code < 400:
        log.warning(
            "webhook in %s not posted: the server answered %d, a redirect (not followed)", url_env, answer.status_code
        )
        return False
    if answer.status_code >= 300:
        log.warning("webhook in %s not posted: the server answered %d", url_env, answer.status_code)
        return False
    log.info("summary posted to the webhook in %s", url_env)
    return True
