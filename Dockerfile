# etd-audit: the audit and its built-in scheduler in one small image.
#
#   docker build -t etd-audit .
#   docker run -d --name etd-audit --read-only --tmpfs /tmp \
#     --security-opt no-new-privileges --cap-drop ALL \
#     -v /srv/etd-audit/config:/etc/etd-audit:ro \
#     -v etd-audit-reports:/var/lib/etd-audit/reports \
#     --env-file /srv/etd-audit/secrets.env \
#     etd-audit
#
# The config is mounted read-only at /etc/etd-audit/etd-audit.toml. Its relative paths resolve
# against that folder, which cannot be written, so it should say
#   [audit] out_dir = "/var/lib/etd-audit/reports"
# Secrets (client secrets, SMTP password, webhook URL) come from the environment variables or the
# mounted files the config names; nothing secret is baked into the image. The image runs as a non-root
# user and needs no writable root file system: only the report volume and /tmp (the heartbeat) are
# written, so run it --read-only with a tmpfs on /tmp.
#
# Supply chain: every dependency is installed from requirements.lock, each pinned with the sha256 of
# its files (pip --require-hashes refuses any other file), and the package itself is built from this
# context with the locked setuptools and no index at all. Regenerate the lock after a change of
# pyproject.toml's dependencies with
#   pip-compile --generate-hashes --strip-extras --allow-unsafe --all-build-deps --no-emit-index-url \
#     --no-emit-find-links --output-file requirements.lock pyproject.toml

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/etd-audit
WORKDIR /src
COPY requirements.lock .
RUN /opt/etd-audit/bin/pip install --require-hashes --no-deps -r requirements.lock
# .dockerignore lets through only what the package build needs.
COPY . .
RUN /opt/etd-audit/bin/pip install --no-deps --no-build-isolation --no-index .

FROM python:3.11-slim
ENV PATH=/opt/etd-audit/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The scheduler's heartbeat (and nothing else so far) lives in $XDG_STATE_HOME/etd-audit, created 0700.
ENV XDG_STATE_HOME=/var/lib/etd-audit/state
RUN groupadd --system --gid 10001 etd-audit \
 && useradd --system --uid 10001 --gid etd-audit --home-dir /var/lib/etd-audit --shell /usr/sbin/nologin etd-audit \
 && mkdir -p /etc/etd-audit /var/lib/etd-audit/reports \
 && chown -R etd-audit:etd-audit /var/lib/etd-audit
COPY --from=build /opt/etd-audit /opt/etd-audit
VOLUME ["/var/lib/etd-audit/reports"]
USER 10001:10001
WORKDIR /var/lib/etd-audit

# The scheduler rewrites its heartbeat every 30 s and after each run; keep this path in step with
# [schedule] heartbeat_file (by default $XDG_STATE_HOME/etd-audit/heartbeat).
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "-m", "audit.schedule", "--check-heartbeat", "/var/lib/etd-audit/state/etd-audit/heartbeat", "--max-age", "120"]

# SIGTERM (docker stop) lets a run in progress finish; give it time: docker stop -t 600, or
# stop_grace_period in compose.
STOPSIGNAL SIGTERM
CMD ["etd-audit", "schedule", "--config", "/etc/etd-audit/etd-audit.toml"]
