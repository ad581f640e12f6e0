"""Mirror of projections/customers.py: customers, customer_emails, password_resets."""

from __future__ import annotations

from datetime import datetime

from events.types import RecordedEvent
from projections.mirrors.base import Mirror, Tables, date_of, delete_where, insert, reference_of

_PROFILE = ("email", "salutation", "first_name", "last_name", "gender", "date_of_birth")

mirror = Mirror(
    name="customers",
    columns={
        "customers": (
            "customer_reference",
            "email",
            *_PROFILE[1:],
            "password_hash",
            "registration_key_hash",
            "confirmed_at",
            "token_generation",
            "created_at",
            "updated_at",
        ),
        "customer_emails": ("email_lower", "customer_reference"),
        "password_resets": ("key_hash", "customer_reference", "expires_at"),
    },
    fingerprint="f4cea49e20168a90",
)


@mirror.on("CustomerCreated")
def _created(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    ref = p["customer_reference"]
    row = {name: p[name] for name in _PROFILE}
    row.update(
        customer_reference=ref,
        date_of_birth=date_of(p["date_of_birth"]),
        password_hash=p["password_hash"],
        registration_key_hash=bytes.fromhex(p["registration_key_hash"]),
        confirmed_at=None,
        token_generation=0,
        created_at=e.recorded_at,
        updated_at=e.recorded_at,
    )
    insert(t["customers"], ref, row)
    email = p["email"].lower()
    insert(t["customer_emails"], email, {"email_lower": email, "customer_reference": ref})


@mirror.on("CustomerConfirmed")
def _confirmed(t: Tables, e: RecordedEvent) -> None:
    row = t["customers"].get(reference_of(e))
    if row is not None:
        row.update(confirmed_at=e.recorded_at, registration_key_hash=None, updated_at=e.recorded_at)


@mirror.on("CustomerUpdated")
def _updated(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    ref = reference_of(e)
    changed = [name for name in p.get("changed", []) if name in _PROFILE]
    row = t["customers"].get(ref)
    if row is not None:
        row["updated_at"] = e.recorded_at
        for name in changed:
            row[name] = date_of(p[name]) if name == "date_of_birth" else p[name]
    if "email" in changed:
        emails = t["customer_emails"]
        for key in [k for k, r in emails.items() if r["customer_reference"] == ref]:
            del emails[key]
            lower = p["email"].lower()
            insert(emails, lower, {"email_lower": lower, "customer_reference": ref})


@mirror.on("CustomerPasswordChanged")
def _password_changed(t: Tables, e: RecordedEvent) -> None:
    ref = reference_of(e)
    row = t["customers"].get(ref)
    if e.payload.get("reason") == "rehash":
        if row is not None:
            row["password_hash"] = e.payload["password_hash"]
        return
    if row is not None:
        row["password_hash"] = e.payload["password_hash"]
        row["token_generation"] += 1
        row["updated_at"] = e.recorded_at
    delete_where(t["password_resets"], "customer_reference", ref)


@mirror.on("CustomerPasswordResetRequested")
def _reset_requested(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    key = bytes.fromhex(p["key_hash"])
    t["password_resets"].setdefault(  # ON CONFLICT (key_hash) DO NOTHING
        key,
        {
            "key_hash": key,
            "customer_reference": reference_of(e),
            "expires_at": datetime.fromisoformat(p["expires_at"]),
        },
    )


@mirror.on("CustomerAnonymized")
def _customer_anonymized(t: Tables, e: RecordedEvent) -> None:
    ref = reference_of(e)
    t["customers"].pop(ref, None)
    delete_where(t["customer_emails"], "customer_reference", ref)
    delete_where(t["password_resets"], "customer_reference", ref)
