"""FHIR R4 ``Appointment`` + ``Patient`` → a booking and a contact (the mapping is in docs/fhir.md),
and the shared-secret HMAC that authenticates an EHR's webhook."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

STATUS = {"proposed": "booked", "pending": "booked", "booked": "booked", "waitlist": "booked",
          "arrived": "checked_in", "checked-in": "checked_in", "fulfilled": "completed", "cancelled": "cancelled",
          "entered-in-error": "cancelled", "noshow": "no_show"}


# Our status → FHIR R4 Appointment.status when writing a change back. R4 has no "confirmed": a
# confirmation is "booked" with the patient's participant status "accepted" (see docs/fhir.md).
WRITE_BACK = {"confirmed": "booked", "cancelled": "cancelled", "no_show": "noshow", "checked_in": "arrived",
              "completed": "fulfilled"}


class FhirInvalidError(ValueError):
    """The payload is not a FHIR R4 Appointment with its Patient as this webhook expects."""


@dataclass(frozen=True)
class Patient:
    name: str | None
    phone: str | None
    email: str | None
    birth_date: str | None


@dataclass(frozen=True)
class FhirAppointment:
    external_id: str
    status: str
    starts_at: datetime
    ends_at: datetime
    service: str
    location: str
    staff_id: UUID | None
    patient: Patient


def workspace_secret(master: str, workspace_id: UUID) -> str:
    """Each workspace gets its own secret, derived from the one configured: no secret is stored."""
    return hmac.new(master.encode(), f"fhir-webhook:{workspace_id}".encode(), hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(signature(secret, body), header.strip())


def parse(payload: Any) -> FhirAppointment:
    if not isinstance(payload, dict):
        raise FhirInvalidError("the body must be a FHIR resource (a JSON object)")
    resources = _resources(payload)
    appointments = [r for r in resources if r.get("resourceType") == "Appointment"]
    if len(appointments) != 1:
        raise FhirInvalidError("send exactly one Appointment (alone with a contained Patient, or in a Bundle)")
    appointment = appointments[0]
    contained = [r for r in appointment.get("contained", []) if isinstance(r, dict)]
    patients = [r for r in resources + contained if r.get("resourceType") == "Patient"]
    external_id = _text(appointment.get("id"), "Appointment.id")
    status = STATUS.get(str(appointment.get("status")))
    if status is None:
        raise FhirInvalidError("Appointment.status must be an R4 appointment status")
    return FhirAppointment(
        external_id=external_id, status=status,
        starts_at=_instant(appointment.get("start"), "Appointment.start"),
        ends_at=_instant(appointment.get("end"), "Appointment.end"),
        service=_service(appointment), location=_participant_display(appointment, "Location") or "",
        staff_id=_staff(appointment), patient=_patient(_the_patient(appointment, patients)),
    )


def _resources(payload: dict[str, Any]) -> list[dict[str, Any]]:
    if payload.get("resourceType") == "Bundle":
        entries = payload.get("entry")
        if not isinstance(entries, list):
            raise FhirInvalidError("Bundle.entry must be a list")
        return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return [payload]


def _text(value: Any, where: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise FhirInvalidError(f"{where} must be a string of 1-{limit} characters")
    return value.strip()


def _instant(value: Any, where: str) -> datetime:
    try:
        instant = datetime.fromisoformat(_text(value, where, 40).replace("Z", "+00:00"))
    except ValueError:
        raise FhirInvalidError(f"{where} must be a FHIR instant with a time zone offset") from None
    if instant.tzinfo is None or not 1971 <= instant.year <= 2200:
        raise FhirInvalidError(f"{where} must be a FHIR instant with a time zone offset")
    return instant


def _service(appointment: dict[str, Any]) -> str:
    for concept in appointment.get("serviceType") or []:
        if isinstance(concept, dict):
            if isinstance(concept.get("text"), str):
                return concept["text"][:200]
            for coding in concept.get("coding") or []:
                if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                    return coding["display"][:200]
    description = appointment.get("description")
    return description[:200] if isinstance(description, str) and description.strip() else "Appointment"


def _actors(appointment: dict[str, Any]) -> list[dict[str, Any]]:
    participants = appointment.get("participant")
    if not isinstance(participants, list):
        raise FhirInvalidError("Appointment.participant must be a list")
    return [p["actor"] for p in participants if isinstance(p, dict) and isinstance(p.get("actor"), dict)]


def _participant_display(appointment: dict[str, Any], kind: str) -> str | None:
    for actor in _actors(appointment):
        if str(actor.get("reference", "")).startswith(f"{kind}/") and isinstance(actor.get("display"), str):
            return str(actor["display"])[:200]
    return None


def _staff(appointment: dict[str, Any]) -> UUID | None:
    for actor in _actors(appointment):
        reference = str(actor.get("reference", ""))
        if reference.startswith("Practitioner/"):
            try:
                return UUID(reference.split("/", 1)[1])
            except ValueError:
                return None  # a practitioner commhub does not know: the booking has no staff member
    return None


def _the_patient(appointment: dict[str, Any], patients: list[dict[str, Any]]) -> dict[str, Any]:
    for actor in _actors(appointment):
        reference = str(actor.get("reference", ""))
        if reference.startswith("#") or reference.startswith("Patient/"):
            wanted = reference.lstrip("#").removeprefix("Patient/")
            for patient in patients:
                if patient.get("id") == wanted:
                    return patient
    if len(patients) == 1:
        return patients[0]
    raise FhirInvalidError("the Appointment's Patient participant must be contained or in the Bundle")


def _patient(patient: dict[str, Any]) -> Patient:
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    parts = [g for g in official.get("given") or [] if isinstance(g, str)]
    if isinstance(official.get("family"), str):
        parts.append(official["family"])
    name = " ".join(parts) or (official.get("text") if isinstance(official.get("text"), str) else None)
    phone = email = None
    for telecom in patient.get("telecom") or []:
        if isinstance(telecom, dict) and isinstance(telecom.get("value"), str):
            if telecom.get("system") in ("phone", "sms") and phone is None:
                phone = telecom["value"]
            elif telecom.get("system") == "email" and email is None:
                email = telecom["value"]
    if phone is None and email is None:
        raise FhirInvalidError("Patient.telecom needs a phone or an email to reach the patient")
    birth = patient.get("birthDate")
    return Patient(name=name[:200] if name else None, phone=phone, email=email,
                   birth_date=birth if isinstance(birth, str) and len(birth) <= 10 else None)


def with_status(resource: dict[str, Any], status: str) -> dict[str, Any]:
    """The source's own Appointment resource with our new status written in (everything else kept,
    so a PUT of it changes only the status): for a confirmation, the patient's participation too."""
    if resource.get("resourceType") != "Appointment":
        raise FhirInvalidError("the source did not return an Appointment")
    updated = {**resource, "status": WRITE_BACK[status]}
    if status == "confirmed":
        updated["participant"] = [
            {**p, "status": "accepted"} if isinstance(p, dict) and _is_patient(p) else p
            for p in resource.get("participant") or []]
    return updated


def _is_patient(participant: dict[str, Any]) -> bool:
    actor = participant.get("actor")
    reference = str(actor.get("reference", "")) if isinstance(actor, dict) else ""
    return reference.startswith("Patient/")
