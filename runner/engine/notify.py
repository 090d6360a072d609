"""Alerts (``notify:``): a webhook and/or an e-mail when a pipeline needs a person, once per episode.

Checked at the end of every run (never a plan): the pipeline quarantined, the deletion guard
holding changes, more than ``failed_share`` of the objects the run touched failing, no run ended
ok or partial for ``no_success_for``. Each condition is an episode: it is announced when it
starts and not again on every run while it lasts; once a run finds it over, the next start is
a new episode. An alert that could not be delivered (the receiver down) is tried again by the
next run. Delivery problems never change a run's outcome; they are logged, redacted.

The webhook is a JSON POST whose ``text`` field Slack and Teams incoming webhooks show as is,
with the facts beside it (pipeline, alert, run, status, detail) for other receivers.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from runner import durations, retries, secrets
from runner.manifest.model import Manifest, Notify
from runner.state import alerts
from runner.state.store import StateStore

logger = logging.getLogger("provision")
TIMEOUT = 15.0

TITLES = {"quarantined": "quarantined", "deletion_guard": "the deletion guard holds changes",
          "failures": "objects failing", "no_success": "no successful run"}


@dataclass(frozen=True)
class Alert:
    kind: str
    detail: str


def conditions(notify: Notify, summary: dict[str, Any], last_success: str | None,
               first_run: str | None) -> tuple[list[Alert], set[str]]:
    """The alerts this run's outcome raises, and the kinds it could judge (a run stopped at the
    quarantine probe cannot say whether objects fail; an interrupted one judges nothing)."""
    status = summary["status"]
    if status == "interrupted":
        return [], set()
    judged = {"quarantined", "no_success"} | (set() if status == "quarantined" else {"deletion_guard", "failures"})
    found: list[Alert] = []
    quarantine = summary.get("quarantine")
    if notify.quarantined and quarantine and quarantine.get("since"):
        found.append(Alert("quarantined", f"since {quarantine['since']} after {quarantine.get('failed_runs')} runs "
                                          f"that failed wholesale: {quarantine.get('reason')}"))
    types = summary.get("object_types") or {}
    guarded = [f"{name}: {c['guard']}" for name, c in types.items() if c.get("guard")]
    if notify.deletion_guard and guarded:
        found.append(Alert("deletion_guard", "; ".join(guarded)))
    failed = sum(c.get("failed", 0) for c in types.values())
    touched = failed + sum(c.get(k, 0) for c in types.values() for k in ("added", "updated", "renamed", "disabled",
                                                                          "deleted"))
    if failed and touched and failed / touched > notify.failed_share:
        found.append(Alert("failures", f"{failed} of {touched} objects the run touched failed, more than "
                                       f"{notify.failed_share:.0%}"))
    if notify.no_success_for:
        limit = durations.seconds(notify.no_success_for) or 0
        since = last_success or first_run
        if since is not None and _age(since) > limit and status not in ("ok", "partial"):
            found.append(Alert("no_success", f"no run ended ok or partial for {notify.no_success_for} (last: "
                                             f"{last_success or 'never'})"))
    return found, judged


def after_run(manifest: Manifest, store: StateStore, summary: dict[str, Any]) -> None:
    """Announce the episodes this run starts (and retry undelivered ones); end those it finds over."""
    notify = manifest.notify
    if notify is None:
        return
    last_success, first_run = alerts.last_success(store, manifest.name), alerts.first_run(store, manifest.name)
    found, judged = conditions(notify, summary, last_success, first_run)
    open_now = alerts.open_episodes(store, manifest.name)
    active = {a.kind for a in found}
    alerts.close(store, manifest.name, [k for k in open_now if k in judged and k not in active])
    for alert in found:
        episode = open_now.get(alert.kind)
        if episode is None:
            alerts.open_episode(store, manifest.name, alert.kind, alert.detail)
        done = episode["delivered"] if episode is not None else set()
        wanted = channels(notify) - done
        if wanted:  # announced on each channel once per episode; a channel that failed is tried next run
            alerts.mark_delivered(store, manifest.name, alert.kind, done | send(manifest, notify, alert, summary,
                                                                               wanted))
    store.commit()


def channels(notify: Notify) -> set[str]:
    return {name for name, block in (("webhook", notify.webhook), ("email", notify.email)) if block}


def send(manifest: Manifest, notify: Notify, alert: Alert, summary: dict[str, Any], wanted: set[str]) -> set[str]:
    """Deliver ``alert`` on the ``wanted`` channels; the ones it reached."""
    text = secrets.redact(f"provision: pipeline {manifest.name}: {TITLES[alert.kind]}: {alert.detail} "
                          f"(run {summary['run_id']}, {summary['status']})")
    reached = set()
    if "webhook" in wanted and notify.webhook and _webhook(notify.webhook, {
            "text": text, "pipeline": manifest.name, "alert": alert.kind, "detail": secrets.redact(alert.detail),
            "run_id": summary["run_id"], "status": summary["status"]}):
        reached.add("webhook")
    if "email" in wanted and notify.email and _email(notify.email, f"provision: {manifest.name}: {TITLES[alert.kind]}",
                                                     text, manifest):
        reached.add("email")
    return reached


def _webhook(config: dict[str, Any], payload: dict[str, Any]) -> bool:
    import requests  # here, not at the top: every run imports this module, few send a webhook

    try:
        answer = requests.post(config["url"], json=payload, headers=config.get("headers") or {}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        logger.warning("notify: the webhook could not be reached: %s; the next run tries again",
                       secrets.redact(str(exc)))
        return False
    if answer.status_code >= 300:
        logger.warning("notify: the webhook answered HTTP %d; the next run tries again", answer.status_code)
        return False
    return True


def _email(config: dict[str, Any], subject: str, text: str, manifest: Manifest) -> bool:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = config["from"], ", ".join(config["to"]), subject
    message.set_content(text)
    try:
        with smtplib.SMTP(config["host"], config.get("port", 587), timeout=TIMEOUT) as smtp:
            if config.get("starttls", True):
                ca = config.get("ca_file")
                context = ssl.create_default_context(cafile=str(manifest.base_dir / ca) if ca else None)
                smtp.starttls(context=context)
            if config.get("user"):
                smtp.login(config["user"], config.get("password") or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        logger.warning("notify: the e-mail to %s could not be sent: %s; the next run tries again",
                       ", ".join(config["to"]), secrets.redact(str(exc)))
        return False
    return True


def _age(stamp: str) -> float:
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (retries.now() - when).total_seconds()
