"""Mail channel: the report by SMTP, with STARTTLS, implicit TLS or none (a relay on this machine)."""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from audit.config import Config, EmailConfig, is_loopback
from audit.delivery.message import SMTP_TIMEOUT, Delivery, MailError, build_message
from audit.logs import register_secret

log = logging.getLogger("audit")

NAME = "smtp"


def configured(config: Config) -> bool:
    return config.email is not None and bool(config.email.to) and config.email.transport == NAME


def only_on_change(config: Config) -> bool:
    return bool(config.email and config.email.only_on_change)


def deliver(delivery: Delivery) -> None:
    email = delivery.config.email
    assert email is not None
    send_smtp(
        build_message(delivery.result, delivery.files, email),
        email,
        environ=delivery.environ,
        ca_bundle=delivery.config.audit.ca_bundle,
        timeout=delivery.timeout,
    )
    log.info("report mailed to %s by %s", ", ".join(email.to), NAME)


def _secret(environ: Mapping[str, str], name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = environ.get(name)
    if not value:
        raise MailError(
            f"{what} is read from the environment variable {name}, which is not set. "
            f"Set {name} in the environment that runs etd-audit."
        )
    register_secret(value)
    return value


def send_smtp(
    message: EmailMessage,
    email: EmailConfig,
    *,
    environ: Mapping[str, str] | None = None,
    ca_bundle: Path | None = None,
    timeout: float = SMTP_TIMEOUT,
) -> None:
    """Send by SMTP with STARTTLS, implicit TLS or none (a local relay); MailError on any failure."""
    env = os.environ if environ is None else environ
    host, port, security = email.smtp_host, email.smtp_port, email.smtp_security
    if not host:
        raise MailError("email.smtp_host is not set. Name the SMTP server in [email] smtp_host.")
    username = _secret(env, email.smtp_username_env, "The SMTP user name")
    password = _secret(env, email.smtp_password_env, "The SMTP password")
    if security == "none" and password is not None and not is_loopback(host):
        raise MailError(
            f'smtp_security = "none" would send the SMTP password to {host} in clear. Use "starttls" or "tls", '
            "or a relay on this machine without signing in."
        )
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    where = f"{host}:{port} ({security})"
    try:
        if security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if security == "starttls":
                client.starttls(context=context)
            if username is not None and password is not None:
                client.login(username, password)
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(
            f"the SMTP server {where} refused the sign-in ({exc.smtp_code}). Check the account "
            f"in {email.smtp_username_env} and its password in {email.smtp_password_env}."
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise MailError(
            f'the SMTP server {where} does not offer STARTTLS. Use smtp_security = "tls" '
            '(usually port 465), or "none" only for a relay on the same host.'
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(
            f"the SMTP server {where} refused every recipient ({_refusals(exc.recipients)}). "
            "Check email.to and whether the server relays for the sender."
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(
            f"could not send the report through the SMTP server {where}: "
            f"{type(exc).__name__}: {exc}. Check smtp_host, smtp_port and smtp_security, "
            "and that the server can be reached from here."
        ) from None
    if refused:
        log.warning("the SMTP server refused some recipients: %s", _refusals(refused))


def _refusals(recipients: Mapping[str, Any]) -> str:
    return "; ".join(f"{addr}: {reply[0]}" for addr, reply in recipients.items())
