// Words and times as the agent reads them: statuses, refusal reasons, timeline entries.

const CHANNELS = { sms: "SMS", email: "Email", voice: "Voice", webchat: "Web chat", social: "Social" };
const STATUSES = {
  queued: "queued", sent: "sent", delivered: "delivered", undelivered: "undelivered", failed: "failed",
  captured: "captured (sandbox)", refused: "not sent", read: "read",
};
const REFUSALS = {
  erased: "the contact was erased",
  merged: "the contact was merged into another",
  processing_restricted: "processing is restricted for this contact",
  objected_to_marketing: "the contact objected to marketing",
  consent_withdrawn: "the contact withdrew consent",
  consent_expired: "the contact's consent has expired",
  no_marketing_consent: "there is no marketing consent",
  no_address_for_channel: "there is no address for this channel",
  quiet_hours: "it is within quiet hours in the contact's time zone",
  outside_customer_service_window: "WhatsApp allows free text only within 24 hours of the customer's last message: send an approved template",
  outside_human_agent_window: "Meta allows replies only within 7 days of the customer's last message",
};
const CALLS = { started: "Incoming call", answered: "Call answered", missed: "Missed call", voicemail: "Voicemail",
  transcription: "Voicemail transcription" };
const FINAL = new Set(["delivered", "undelivered", "failed", "captured", "refused", "read"]);

export const callText = (kind) => CALLS[kind] ?? "Call";

export const channelName = (channel) => CHANNELS[channel] ?? channel ?? "";
export const statusText = (status, errorCode) =>
  `${STATUSES[status] ?? status}${status === "failed" && errorCode ? ` (${errorCode})` : ""}`;
export const refusalText = (reason) => REFUSALS[reason] ?? reason ?? "it is not allowed";

/** Delivery statuses only move forward; a late read must not turn "captured" back into "queued". */
export const statusRank = (status) => (FINAL.has(status) ? 2 : status === "sent" ? 1 : 0);

export const displayName = (name) => name || "Unnamed contact";

export function initials(name) {
  if (!name) return "?";
  const words = name.trim().split(/\s+/).filter(Boolean);
  return ((words[0]?.[0] ?? "") + (words.length > 1 ? words[words.length - 1][0] : "")).toUpperCase() || "?";
}

/** A stable colour slot (0–7) from an id, so each contact keeps its avatar colour. */
export function colourSlot(id) {
  let hash = 0;
  for (const char of id ?? "") hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return hash % 8;
}

const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const dayMonth = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** Short time for lists: 14:05 today, Mon this week, 3 Nov before. */
export function shortTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return timeOnly.format(date);
  if (now - date < 6 * 24 * 3600 * 1000) return weekday.format(date);
  return dayMonth.format(date);
}

export const longDate = (iso) => (iso ? dateOnly.format(new Date(iso)) : "");
export const longTime = (iso) => (iso ? full.format(new Date(iso)) : "");

/** The inbox shows a one-line preview, as the server does. */
export function preview(body, length = 140) {
  if (typeof body !== "string") return null;
  const text = body.split(/\s+/).filter(Boolean).join(" ");
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

const plainKind = (kind) => kind.replace(/[._]/g, " ");

/** One line for a timeline entry. ``detail`` is null after erasure, so every branch copes with that. */
export function timelineText(entry) {
  const d = entry.detail ?? {};
  switch (entry.kind) {
    case "contact.created": return "Contact created";
    case "contact.rectified": return d.fields ? `Profile corrected (${d.fields.join(", ").replace(/_/g, " ")})` : "Profile corrected";
    case "contact.tagged": return d.tag ? `Tagged “${d.tag}”` : "Tagged";
    case "contact.untagged": return d.tag ? `Tag “${d.tag}” removed` : "Tag removed";
    case "contact.note": return d.text ? `Note: ${d.text}` : "Note added";
    case "consent.granted": return `Consent granted: ${channelName(d.channel)} ${d.purpose ?? ""}`.trim();
    case "consent.withdrawn": return `Consent withdrawn: ${channelName(d.channel)} ${d.purpose ?? ""}`.trim();
    case "privacy.restricted": return "Processing restricted";
    case "privacy.restriction_lifted": return "Restriction lifted";
    case "privacy.objected": return "Objected to marketing";
    case "privacy.objection_withdrawn": return "Objection to marketing withdrawn";
    case "privacy.erased": return "Personal data erased";
    case "contact.merged": return "A duplicate was merged in";
    case "contact.merged_into": return "Merged into another contact";
    case "message.received": return d.preview ? `Received: ${d.preview}` : "Message received";
    case "message.sent": return d.preview ? `Sent: ${d.preview}` : "Message sent";
    case "message.refused": return `Send refused: ${refusalText(d.reason)}`;
    case "conversation.note": return d.preview ? `Internal note: ${d.preview}` : "Internal note";
    case "appointment.booked": return `Appointment booked${d.service ? `: ${d.service}` : ""}${d.starts_at ? ` for ${longTime(d.starts_at)}` : ""}`;
    case "appointment.rescheduled": return d.starts_at ? `Appointment moved to ${longTime(d.starts_at)}` : "Appointment moved";
    case "appointment.confirmed": return d.via === "reply" ? "Appointment confirmed by reply" : "Appointment confirmed";
    case "appointment.cancelled": return "Appointment cancelled";
    case "appointment.checked_in": return "Checked in for the appointment";
    case "appointment.completed": return "Appointment completed";
    case "appointment.no_show": return "Did not attend the appointment";
    case "appointment.written_back": return `Status written back to the source system${d.fhir_status ? ` (${d.fhir_status})` : ""}`;
    case "appointment.write_back_failed": return `Could not write the status back to the source system${d.http_status ? ` (HTTP ${d.http_status})` : ""}`;
    case "appointment.reminder_sent": return `Reminder sent${d.channel ? ` by ${channelName(d.channel)}` : ""}`;
    case "appointment.reminder_skipped": return `Reminder not sent (${(d.reason ?? "skipped").replace(/_/g, " ")})`;
    case "call": return [CALLS[d.call] ?? "Call", d.duration ? `(${d.duration}s)` : "", d.preview ?? ""].filter(Boolean).join(" ");
    default: return plainKind(entry.kind);
  }
}
