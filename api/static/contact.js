// The contact side panel: profile, consent, notes (add one) and the timeline, newest first.

import { get, post, readUntil } from "./api.js";
import { AppointmentsPanel } from "./appointments.js";
import { $, h, toast } from "./dom.js";
import { channelName, colourSlot, displayName, initials, longDate, longTime, shortTime, timelineText } from "./format.js";

const PAGE = 1000;
// Live updates that add a timeline entry for their contact.
const TIMELINE_UPDATES = new Set([
  "conversation.message_received", "conversation.message_sent", "conversation.message_refused", "conversation.note_added",
  "conversation.call_logged",
]);

export class ContactPanel {
  constructor(app) {
    this.app = app;
    this.id = null;
    this.ticket = 0;
    this.profile = null;
    this.timeline = [];
    this.wanted = 0; // the timeline must reach this position (from live updates)
    this.timer = null;
    this.appointments = new AppointmentsPanel(() => this.load());
    $("note-form").addEventListener("submit", (event) => this.addNote(event));
    $("note-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $("note-form").requestSubmit();
      }
    });
  }

  async open(contactId) {
    if (contactId === this.id) return;
    this.id = contactId;
    this.profile = null;
    this.timeline = [];
    this.wanted = 0;
    $("contact-empty").hidden = true;
    $("contact-body").hidden = false;
    await Promise.all([this.load({ profile: true }), this.appointments.open(contactId)]);
  }

  clear() {
    this.ticket += 1;
    this.id = null;
    this.appointments.clear();
    $("contact-body").hidden = true;
    $("contact-empty").hidden = false;
  }

  /** Read the profile (when asked) and the timeline entries after the last one shown. */
  async load({ profile = false } = {}) {
    const ticket = ++this.ticket;
    const id = this.id;
    const after = this.timeline.at(-1)?.position ?? 0;
    const wanted = this.wanted;
    try {
      const [person, entries] = await Promise.all([
        profile || !this.profile ? get(`/contacts/${id}`) : this.profile,
        readUntil(() => this.readTimeline(id, after), (items) => (items.at(-1)?.position ?? after) >= wanted),
      ]);
      if (ticket !== this.ticket) return;
      this.profile = person;
      const known = new Set(this.timeline.map((entry) => entry.position));
      this.timeline.push(...(entries ?? []).filter((entry) => !known.has(entry.position)));
      this.render();
    } catch (error) {
      if (ticket === this.ticket) toast(error.message, "error");
    }
  }

  async readTimeline(id, after) {
    const all = [];
    for (;;) {
      const page = await get(`/contacts/${id}/timeline?after=${after}&limit=${PAGE}`);
      all.push(...page.items);
      if (page.items.length < PAGE) return all;
      after = page.items.at(-1).position;
    }
  }

  /** A live update: refresh what it changed, a moment later so a burst of updates reads once. */
  onUpdate(update) {
    if (!this.id || update.contact_id !== this.id) return;
    const isContact = update.type.startsWith("contact.");
    const isAppointment = update.type.startsWith("appointment.");
    if (!isContact && !isAppointment && !TIMELINE_UPDATES.has(update.type)) return;
    if (isAppointment) this.appointments.refreshSoon(); // booked, moved, cancelled… by someone else too
    if (update.type === "contact.erased") this.timeline = []; // earlier entries lost their detail: read all again
    this.wanted = Math.max(this.wanted, update.position);
    this.profileStale ||= isContact;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const profile = this.profileStale;
      this.profileStale = false;
      this.load({ profile });
    }, 100);
  }

  render() {
    const p = this.profile;
    if (!p) return;
    const avatar = $("contact-avatar");
    avatar.className = `avatar large c${colourSlot(p.contact_id)}`;
    avatar.textContent = initials(p.name);
    $("contact-name").textContent = p.erased ? "Erased contact" : displayName(p.name);
    const flags = [];
    if (p.erased) flags.push(h("span", { class: "chip danger" }, "Erased"));
    if (p.restricted) flags.push(h("span", { class: "chip danger" }, "Processing restricted"));
    if (p.objected_to_marketing) flags.push(h("span", { class: "chip warning" }, "No marketing"));
    if (p.minor) flags.push(h("span", { class: "chip warning", title: "Under the workspace's minimum age: no marketing" }, "Minor"));
    if (p.merged_into) flags.push(h("span", { class: "chip" }, "Merged"));
    $("contact-flags").replaceChildren(...(flags.length ? flags : [h("span", { class: "muted" }, `Contact since ${longDate(p.created_at)}`)]));

    const rows = [["Phone", p.phone], ["Email", p.email], ["Time zone", p.time_zone]];
    if (p.date_of_birth) rows.push(["Date of birth", p.date_of_birth]);
    for (const [key, value] of Object.entries(p.custom_fields ?? {})) rows.push([key, value]);
    const profile = rows.filter(([, value]) => value).flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]);
    if (p.tags?.length) profile.push(h("dt", {}, "Tags"), h("dd", {}, ...p.tags.map((tag) => h("span", { class: "chip label" }, tag))));
    $("contact-profile").replaceChildren(...profile);

    $("consents").replaceChildren(...(p.consents?.length ? p.consents.map(consentItem)
      : [h("li", { class: "empty-note" }, "No consent recorded.")]));

    const notes = [...(p.notes ?? [])].reverse();
    $("contact-notes").replaceChildren(...(notes.length ? notes.map((note) => h("li", { class: "contact-note" },
      h("p", { class: "note-text" }, note.text ?? "Note erased"),
      h("p", { class: "note-meta" }, `${this.app.staffName(note.author_id)} · ${longTime(note.at)}`)))
      : [h("li", { class: "empty-note" }, "No notes yet.")]));

    $("timeline").replaceChildren(...[...this.timeline].reverse().map((entry) => h("li", { class: `timeline-entry kind-${entry.kind.split(".")[0]}` },
      h("span", { class: "timeline-text" }, timelineText(entry)),
      h("time", { class: "timeline-time", datetime: entry.at, title: longTime(entry.at) }, shortTime(entry.at)))));
  }

  async addNote(event) {
    event.preventDefault();
    const input = $("note-input");
    const text = input.value.trim();
    if (!text || !this.id) return;
    try {
      await post(`/contacts/${this.id}/notes`, { text });
      input.value = "";
      await this.load({ profile: true });
    } catch (error) {
      toast(error.message, "error");
    }
  }
}

function consentItem(consent) {
  const state = consent.granted ? "Granted" : "Withdrawn";
  const expires = consent.expires_at ? ` · expires ${shortTime(consent.expires_at)}` : "";
  return h("li", { class: "consent" },
    h("div", { class: "consent-head" },
      h("span", { class: "consent-what" }, `${channelName(consent.channel)} · ${consent.purpose}`),
      h("span", { class: `chip ${consent.granted ? "success" : "danger"}` }, state)),
    h("p", { class: "consent-evidence" }, `“${consent.wording}”`),
    h("p", { class: "consent-meta" }, `${consent.source} · ${longTime(consent.at)}${expires}`));
}
