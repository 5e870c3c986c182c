// The simulated customer: writes in through the sandbox channel, so the demo works end to end.

import { post } from "./api.js";
import { $, toast } from "./dom.js";

export class CustomerPanel {
  constructor(app) {
    this.app = app;
    this.dialog = $("customer");
    $("open-customer").addEventListener("click", () => this.toggle());
    $("customer-close").addEventListener("click", () => this.close());
    $("customer-as-contact").addEventListener("click", () => this.writeAsOpenContact());
    $("customer-form").addEventListener("submit", (event) => this.send(event));
    $("customer-body").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $("customer-form").requestSubmit();
      }
    });
  }

  toggle() {
    if (this.dialog.open) this.close();
    else this.open();
  }

  open() {
    this.dialog.show(); // not modal: the inbox stays usable, to watch the message arrive
    $("open-customer").setAttribute("aria-expanded", "true");
    ($("customer-from").value ? $("customer-body") : $("customer-from")).focus();
  }

  close() {
    this.dialog.close();
    $("open-customer").setAttribute("aria-expanded", "false");
    $("open-customer").focus();
  }

  writeAsOpenContact() {
    const profile = this.app.contact.profile;
    const row = this.app.thread.row;
    if (!profile || (!profile.phone && !profile.email)) {
      $("customer-result").textContent = "Open a conversation with a contact who has a phone number or email first.";
      return;
    }
    const channel = row?.channel === "email" || !profile.phone ? "email" : row?.channel ?? "sms";
    $("customer-from").value = channel === "email" && profile.email ? profile.email : profile.phone ?? profile.email;
    $("customer-name").value = profile.name ?? "";
    $("customer-channel").value = ["sms", "email", "webchat", "social"].includes(channel) ? channel : "sms";
    $("customer-result").textContent = "";
    $("customer-body").focus();
  }

  async send(event) {
    event.preventDefault();
    const sender = $("customer-from").value.trim();
    const body = $("customer-body").value.trim();
    const name = $("customer-name").value.trim();
    if (!sender || !body) {
      $("customer-result").textContent = "Enter who it is from and a message.";
      return;
    }
    const button = $("customer-send");
    button.disabled = true;
    try {
      const request = { from: sender, body, channel: $("customer-channel").value };
      if (name) request.name = name;
      await post("/sandbox/inbound", request);
      $("customer-body").value = "";
      $("customer-result").textContent = "Sent. It arrives in the inbox as a new message.";
    } catch (error) {
      $("customer-result").textContent = error.message;
      toast(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }
}
