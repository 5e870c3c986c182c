// The contact's upcoming appointments in the side panel, and a form to book one.

import { get, post } from "./api.js";
import { $, h, toast } from "./dom.js";
import { longTime } from "./format.js";

const STATUS = { booked: "Booked", confirmed: "Confirmed", checked_in: "Checked in" };

export class AppointmentsPanel {
  constructor(onBooked = () => {}) {
    this.onBooked = onBooked;
    this.id = null;
    this.ticket = 0;
    this.timer = null;
    $("appointment-form").addEventListener("submit", (event) => this.book(event));
  }

  async open(contactId) {
    this.id = contactId;
    $("appointments").replaceChildren();
    await this.load();
  }

  clear() {
    this.ticket += 1;
    this.id = null;
    clearTimeout(this.timer);
  }

  /** An appointment of this contact changed (live update): read the list again, once per burst. */
  refreshSoon() {
    if (!this.id) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 100);
  }

  async load() {
    const ticket = ++this.ticket;
    const from = new Date(Date.now() - 60 * 60 * 1000).toISOString();
    try {
      const page = await get(`/appointments?contact_id=${this.id}&from=${encodeURIComponent(from)}&limit=20`);
      if (ticket !== this.ticket) return;
      const upcoming = page.items.filter((item) => item.status in STATUS);
      $("appointments").replaceChildren(...(upcoming.length ? upcoming.map(item)
        : [h("li", { class: "empty-note" }, "No upcoming appointments.")]));
    } catch (error) {
      if (ticket === this.ticket) toast(error.message, "error");
    }
  }

  async book(event) {
    event.preventDefault();
    if (!this.id) return;
    const start = new Date($("appointment-start").value);
    const minutes = Number($("appointment-minutes").value || 30);
    if (Number.isNaN(start.getTime())) return;
    try {
      await post("/appointments", {
        contact_id: this.id, service: $("appointment-service").value.trim(),
        starts_at: start.toISOString(), ends_at: new Date(start.getTime() + minutes * 60000).toISOString(),
        time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        location: $("appointment-location").value.trim() || null,
      });
      $("appointment-service").value = "";
      toast("Appointment booked");
      await Promise.all([this.load(), this.onBooked()]);
    } catch (error) {
      toast(error.message, "error");
    }
  }
}

function item(appointment) {
  return h("li", { class: "appointment", dataset: { appointmentId: appointment.appointment_id } },
    h("div", { class: "appointment-head" },
      h("span", { class: "appointment-service" }, appointment.service ?? "Appointment"),
      h("span", { class: `chip ${appointment.status === "confirmed" ? "success" : ""}` }, STATUS[appointment.status])),
    h("p", { class: "appointment-meta" },
      `${longTime(appointment.starts_at)}${appointment.location ? ` · ${appointment.location}` : ""}`));
}
