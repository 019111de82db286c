"""Mails programs send, shaped after ones seen in the wild: notifications, newsletters,
vacation responders and the bounces of three MTAs."""

from __future__ import annotations

from support import SUPPORT, make_mail


def incident_notification(number: int = 678439) -> bytes:
    # A ticketing system's notification (ServiceNow): bulk and auto-generated, real work.
    return make_mail(
        subject=f"Incident INC{number} -- zugewiesen an EXT-SUPPORT", sender="IT <example@service-now.com>",
        body=f"Incident INC{number} wurde Ihrer Gruppe zugewiesen.",
        headers={"Precedence": "bulk", "Auto-Submitted": "auto-generated", "X-ServiceNow-Generated": "true"},
    )[0]


def newsletter() -> bytes:
    return make_mail(
        subject="Kontakte", sender="Paula <databases.en@example.com>", body="Buy our contact database.",
        headers={"Precedence": "bulk", "List-Unsubscribe": "<mailto:unsubscribe-720@example.com>"},
    )[0]


def vacation_reply(in_reply_to: str = "<4e6e35f5a38b4_479f@small-app-01.mail>") -> bytes:
    # Gmail's vacation responder to a mail we never sent: auto-replied, but also bulk.
    return make_mail(
        subject="أهلين عميلنا الكريم", sender="Shop <example@gmail.com>", body="شكرا لتواصلك معنا",
        refs=[in_reply_to], headers={"Precedence": "bulk", "X-Autoreply": "yes", "Auto-Submitted": "auto-replied"},
    )[0]


def auto_reply(in_reply_to: str = "<unknown-1@elsewhere.example>") -> bytes:
    return make_mail(subject="Re: Discussion", sender="sony@chatwoot.example", body="I am away.",
                     refs=[in_reply_to], headers={"X-Autoreply": "yes"})[0]


def exchange_out_of_office(in_reply_to: str) -> bytes:
    # Exchange says auto-generated on its out-of-office replies, with this suppression header.
    return make_mail(subject="Automatische Antwort: Quotation", sender="hans.mueller@contoso.example",
                     body="Ich bin bis 30.11. nicht im Büro.", refs=[in_reply_to],
                     headers={"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"})[0]


def postfix_bounce(original_id: str, recipient: str = "not_existing@example.org", sender: bool = True) -> bytes:
    """A Postfix DSN (RFC 3464) returning the headers of ``original_id``; ``sender=False``: no From."""
    head = "From: MAILER-DAEMON@mx1.example.com (Mail Delivery System)\r\n" if sender else ""
    return (
        f"{head}To: {SUPPORT}\r\nMessage-ID: <dsn-{recipient}@mx1.example.com>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx1.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {SUPPORT}\r\nTo: {recipient}\r\n"
        f"Message-ID: {original_id}\r\nSubject: Your ticket\r\n\r\n--b--\r\n"
    ).encode()


def exim_bounce(recipient: str = "compta@shop.example") -> bytes:
    # Exim: plain text, the failed address in X-Failed-Recipients, the original quoted below.
    return (
        f"From: Mail Delivery System <Mailer-Daemon@relay.example>\r\nTo: {SUPPORT}\r\n"
        f"Message-ID: <exim-{recipient}@relay.example>\r\nSubject: Mail delivery failed: returning message to sender\r\n"
        f"X-Failed-Recipients: {recipient}\r\nAuto-Submitted: auto-replied\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        f"A message that you sent could not be delivered to one or more of its recipients:\r\n\r\n  {recipient}\r\n"
        "    mailbox is full\r\n\r\n------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        f"From: {SUPPORT}\r\nMessage-ID: <never-sent-by-us@forged.example>\r\nSubject: Invoice\r\n\r\nHello\r\n"
    ).encode()
