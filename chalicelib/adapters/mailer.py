"""SES: send one account email, at most once per key, never to an address
that bounced or complained (SNS notifications, billing.on_mail_notice).

Once: the key is claimed in the store before sending and released if SES
refuses, so a job or webhook delivered twice sends one message; a crash
between the claim and the send loses that message rather than doubling it.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from ..core.emails import Email
from .billing_store import BillingStore

log = logging.getLogger("sealsync.mail")


class Mailer:
    def __init__(self, ses: Any, store: BillingStore, sender: str,
                 config_set: str | None = None) -> None:
        self.ses = ses
        self.store = store
        self.sender = sender
        self.config_set = config_set  # its event destination: bounces, complaints -> SNS

    def send_once(self, user_id: str, address: str | None, key: str, email: Email) -> bool:
        """True if this call sent it."""
        if not address or self.store.suppressed(address):
            return False
        pk, sk = f"A#{user_id}", f"MAIL#{key}"
        if not self.store.first_time(pk, sk, int(time.time())):
            return False
        extra = {"ConfigurationSetName": self.config_set} if self.config_set else {}
        try:
            self.ses.send_email(**extra,
                Source=self.sender, Destination={"ToAddresses": [address]},
                Message={"Subject": {"Data": email.subject, "Charset": "UTF-8"},
                         "Body": {"Text": {"Data": email.body, "Charset": "UTF-8"}}},
                Tags=[{"Name": "kind", "Value": email.kind}])
        except Exception:
            self.store.forget(pk, sk)  # not sent: a retry may send it
            raise
        log.info("sent %s mail", email.kind)  # never the address or the body
        return True
