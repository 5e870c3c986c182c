// The open conversation: header with assignee, status and labels; the messages; the reply box.

import { ApiError, get, post } from "./api.js";
import { $, h, toast } from "./dom.js";
import { callText, channelName, displayName, longTime, refusalText, shortTime, statusRank, statusText } from "./format.js";

const PAGE = 500;

export class Thread {
  constructor(app) {
    this.app = app;
    this.id = null;
    this.ticket = 0;
    this.messages = new Map(); // message id → message
    this.items = new Map(); // message id → [<li>, signature]
    this.lateStatus = new Map(); // delivery updates that came before their message was read
    this.list = $("messages");
    this.box = $("reply");
    this.composer = $("composer");
    $("assign-select").addEventListener("change", (event) => this.assign(event.target.value || null));
    $("toggle-status").addEventListener("click", () => this.toggleStatus());
    $("label-form").addEventListener("submit", (event) => this.addLabel(event));
    this.composer.addEventListener("submit", (event) => this.send(event));
    for (const button of this.composer.querySelectorAll(".mode")) {
      button.addEventListener("click", () => this.setMode(button.dataset.mode));
    }
    this.box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.composer.requestSubmit();
      }
    });
    $("canned").addEventListener("change", (event) => this.insertCanned(event.target));
    this.typedAt = 0;
    this.typingTimer = null;
    this.box.addEventListener("input", () => this.typed());
  }

  /** Web chat visitors see that an agent is typing (at most one signal every 2.5 s; ids only). */
  typed() {
    const now = Date.now();
    if (this.row?.channel !== "webchat" || this.composer.dataset.mode === "note" || now - this.typedAt < 2500) return;
    this.typedAt = now;
    post(`/conversations/${this.id}/typing`).catch(() => {});
  }

  showTyping() {
    $("typing").hidden = false;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { $("typing").hidden = true; }, 4000);
  }

  get row() {
    return this.id ? this.app.store.get(this.id) : null;
  }

  async open(id) {
    const ticket = ++this.ticket;
    this.id = id;
    this.messages.clear();
    this.lateStatus.clear();
    this.items.clear();
    this.list.replaceChildren();
    $("typing").hidden = true;
    $("thread-empty").hidden = true;
    $("thread-body").hidden = false;
    this.list.setAttribute("aria-busy", "true");
    this.renderHeader();
    try {
      const [row, messages] = await Promise.all([get(`/conversations/${id}`), this.readMessages(id, 0)]);
      if (ticket !== this.ticket) return null;
      const merged = this.app.store.merge(row);
      messages.forEach((message) => this.merge(message));
      this.renderHeader();
      this.render({ toBottom: true });
      return merged;
    } catch (error) {
      if (ticket !== this.ticket) return null;
      toast(error instanceof ApiError && error.status === 404 ? "That conversation was not found." : error.message, "error");
      this.app.select(null);
      return null;
    } finally {
      if (ticket === this.ticket) this.list.removeAttribute("aria-busy");
    }
  }

  clear() {
    this.ticket += 1;
    this.id = null;
    $("thread-body").hidden = true;
    $("thread-empty").hidden = false;
  }

  async readMessages(id, after) {
    const all = [];
    for (;;) {
      const page = await get(`/conversations/${id}/messages?after=${after}&limit=${PAGE}`);
      all.push(...page.items);
      if (page.items.length < PAGE) return all;
      after = page.items.at(-1).position;
    }
  }

  /** After a reconnect or our own write: read what came after the last message we show. */
  async catchUp() {
    if (!this.id) return;
    const id = this.id;
    const after = Math.max(0, ...[...this.messages.values()].map((message) => message.position));
    const messages = await this.readMessages(id, after);
    if (id !== this.id) return;
    messages.forEach((message) => this.merge(message));
    this.render();
  }

  merge(message) {
    const old = this.messages.get(message.message_id);
    const merged = { ...message };
    if (old && statusRank(old.status) > statusRank(merged.status)) {
      merged.status = old.status;
      merged.error_code = old.error_code;
    }
    const late = this.lateStatus.get(message.message_id);
    if (late && statusRank(late.status) >= statusRank(merged.status)) Object.assign(merged, late);
    this.messages.set(message.message_id, merged);
  }

  /** A live update about this conversation. */
  apply(update) {
    if (update.type === "conversation.message_received") $("typing").hidden = true;
    const base = { at: update.at, position: update.position, author_id: update.author_id ?? null };
    switch (update.type) {
      case "conversation.message_received":
        this.merge({ ...base, message_id: update.message_id, kind: "in", body: update.body, status: "received", attachments: update.attachments });
        break;
      case "conversation.message_sent":
        this.merge({ ...base, message_id: update.message_id, kind: "out", body: update.body, status: "queued" });
        break;
      case "conversation.call_logged":
        this.merge({ ...base, message_id: update.message_id, kind: "call", body: update.body, status: update.kind, attachments: update.attachments });
        break;
      case "conversation.message_refused":
        this.merge({ ...base, message_id: update.message_id, kind: "refused", body: update.body, status: "refused", reason: update.reason });
        break;
      case "conversation.note_added":
        this.merge({ ...base, message_id: update.note_id, kind: "note", body: update.text, status: null });
        break;
      case "conversation.message_delivery_updated": {
        const status = { status: update.status, error_code: update.error_code ?? null };
        const message = this.messages.get(update.message_id);
        if (!message) this.lateStatus.set(update.message_id, status);
        else if (statusRank(status.status) >= statusRank(message.status)) Object.assign(message, status);
        break;
      }
      default:
        this.renderHeader();
        return;
    }
    this.render();
  }

  renderHeader() {
    const row = this.row;
    $("thread-title").textContent = row ? displayName(row.contact_name) : "Loading…";
    $("thread-meta").replaceChildren(...(row ? [
      h("span", { class: "chip channel" }, channelName(row.channel)),
      h("span", { class: `chip status-${row.status}` }, row.status === "closed" ? "Closed" : "Open"),
      h("span", { class: "muted" }, `${row.message_count} message${row.message_count === 1 ? "" : "s"}`),
    ] : []));
    const select = $("assign-select");
    const options = [h("option", { value: "" }, "Unassigned")];
    for (const staff of this.app.staff.values()) {
      if (staff.active === false && staff.staff_id !== row?.assignee_id) continue;
      options.push(h("option", { value: staff.staff_id }, this.app.staffName(staff.staff_id, { you: true })));
    }
    select.replaceChildren(...options);
    select.value = row?.assignee_id ?? "";
    const toggle = $("toggle-status");
    const closed = row?.status === "closed";
    toggle.textContent = closed ? "Reopen" : "Close";
    toggle.title = closed ? "Reopen this conversation" : "Close this conversation (c)";
    toggle.disabled = !row;
    $("labels").replaceChildren(...(row?.labels ?? []).map((label) => h("li", { class: "chip label removable" },
      label,
      h("button", { type: "button", class: "chip-remove", "aria-label": `Remove label ${label}`, onclick: () => this.changeLabels({ remove: [label] }) }, "×"))));
  }

  render({ toBottom = false } = {}) {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
    const ordered = [...this.messages.values()].sort((a, b) => a.position - b.position);
    ordered.forEach((message, index) => {
      const signature = `${message.status}|${message.error_code}|${message.body}|${this.app.staff.size}`;
      let [item, old] = this.items.get(message.message_id) ?? [null, null];
      if (signature !== old) {
        const fresh = this.messageItem(message);
        item?.replaceWith(fresh);
        item = fresh;
        this.items.set(message.message_id, [item, signature]);
      }
      if (this.list.children[index] !== item) this.list.insertBefore(item, this.list.children[index] ?? null);
    });
    if (toBottom || atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  messageItem(message) {
    const erased = message.body === null || message.body === undefined;
    const meta = [h("time", { datetime: message.at, title: longTime(message.at) }, shortTime(message.at))];
    if (message.author_id) meta.unshift(h("span", { class: "author" }, this.app.staffName(message.author_id)));
    if (message.kind === "out") meta.push(h("span", { class: `delivery status-${message.status}` }, statusText(message.status, message.error_code)));
    const attachments = message.attachments?.length
      ? h("p", { class: "attachments" }, `${message.attachments.length} attachment${message.attachments.length === 1 ? "" : "s"}`) : null;
    return h("li", { class: `message ${message.kind}`, dataset: { id: message.message_id } },
      h("div", { class: "bubble" },
        message.kind === "note" ? h("span", { class: "bubble-tag" }, "Internal note") : null,
        message.kind === "refused" ? h("span", { class: "bubble-tag" }, "Not sent") : null,
        message.kind === "call" ? h("span", { class: "bubble-tag" }, callText(message.status)) : null,
        h("p", { class: erased ? "body erased" : "body" }, erased ? "Message erased" : message.body),
        attachments,
        message.kind === "refused" ? h("p", { class: "refusal" }, `Not sent because ${refusalText(message.reason)}.`) : null),
      h("div", { class: "message-meta" }, ...meta.flatMap((part, i) => (i ? [h("span", { class: "dot", "aria-hidden": "true" }, "·"), part] : [part]))));
  }

  setMode(mode) {
    this.composer.dataset.mode = mode;
    for (const button of this.composer.querySelectorAll(".mode")) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
    }
    this.box.placeholder = mode === "note" ? "Write an internal note (only your team sees it)…" : "Write a reply…";
    $("send").textContent = mode === "note" ? "Add note" : "Send";
  }

  focusReply() {
    if (!this.id) return;
    this.box.focus();
  }

  setCanned(responses) {
    const select = $("canned");
    select.replaceChildren(h("option", { value: "" }, "Canned responses…"),
      ...responses.map((response) => h("option", { value: response.response_id }, response.title)));
    this.canned = new Map(responses.map((response) => [response.response_id, response]));
    $("canned-picker").hidden = responses.length === 0;
  }

  insertCanned(select) {
    const response = this.canned?.get(select.value);
    select.value = "";
    if (!response) return;
    this.box.setRangeText(response.body, this.box.selectionStart, this.box.selectionEnd, "end");
    this.box.focus();
  }

  async send(event) {
    event.preventDefault();
    const text = this.box.value.trim();
    const id = this.id;
    if (!text || !id) return;
    const note = this.composer.dataset.mode === "note";
    const button = $("send");
    button.disabled = true;
    try {
      const result = note
        ? await post(`/conversations/${id}/notes`, { text })
        : await post(`/conversations/${id}/reply`, { body: text });
      this.box.value = "";
      if (!note && result.status === "refused") toast(`Not sent because ${refusalText(result.reason)}.`, "error");
      await this.catchUp();
    } catch (error) {
      toast(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  async act(path, body) {
    const id = this.id;
    try {
      const row = this.app.store.merge(await post(`/conversations/${id}${path}`, body));
      this.app.changed(row);
      return row;
    } catch (error) {
      toast(error.message, "error");
      return null;
    }
  }

  assign(assigneeId) {
    return this.act("/assign", { assignee_id: assigneeId });
  }

  async toggleStatus() {
    const row = this.row;
    if (!row) return;
    const before = this.app.list.ids();
    const updated = await this.act(row.status === "closed" ? "/reopen" : "/close");
    if (updated) this.app.afterStatusChange(updated, before);
  }

  async addLabel(event) {
    event.preventDefault();
    const input = $("label-input");
    const label = input.value.trim();
    if (!label) return;
    if (await this.changeLabels({ add: [label] })) input.value = "";
  }

  changeLabels(change) {
    return this.act("/labels", { add: [], remove: [], ...change });
  }
}
