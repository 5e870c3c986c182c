// The conversation list: filters, rows with preview, unread badge and time, paging, live changes.

import { get, readUntil } from "./api.js";
import { $, h } from "./dom.js";
import { channelName, colourSlot, displayName, initials, shortTime } from "./format.js";
import { inView, newestFirst, reflects } from "./store.js";

export const VIEWS = ["open", "mine", "unassigned", "closed"];
const PAGE = 50;

export class ConversationList {
  constructor(app) {
    this.app = app;
    this.view = "open";
    this.loaded = false;
    this.nextCursor = null;
    this.last = null; // the oldest row loaded; older rows belong to pages not loaded yet
    this.ticket = 0;
    this.items = new Map(); // conversation id → <li>
    this.pending = new Map(); // conversation id → the latest update a read must reflect
    this.element = $("conversation-list");
    for (const button of document.querySelectorAll(".filter")) {
      button.addEventListener("click", () => this.setView(button.dataset.view));
    }
    $("load-more").addEventListener("click", () => this.loadMore());
  }

  setView(view) {
    this.view = VIEWS.includes(view) ? view : "open";
    for (const button of document.querySelectorAll(".filter")) {
      button.setAttribute("aria-pressed", String(button.dataset.view === this.view));
    }
    this.loaded = false;
    this.nextCursor = null;
    this.last = null;
    this.render();
    this.app.writeLocation();
    return this.load();
  }

  /** The first page of the current view; rows the server no longer lists there are dropped. */
  async load() {
    const ticket = ++this.ticket;
    const since = this.app.store.sequence;
    const page = await get(`/conversations?view=${this.view}&limit=${PAGE}`);
    if (ticket !== this.ticket) return;
    const fresh = new Set(page.items.map((row) => this.app.store.merge(row).conversation_id));
    this.nextCursor = page.next_cursor;
    this.last = page.items.at(-1) ?? null;
    for (const row of this.visible()) {
      const id = row.conversation_id;
      if (!fresh.has(id) && id !== this.app.selectedId && !this.app.store.touchedSince(id, since)) {
        this.app.store.rows.delete(id);
      }
    }
    this.loaded = true;
    this.render();
  }

  async loadMore() {
    if (!this.nextCursor) return;
    const ticket = this.ticket;
    const page = await get(`/conversations?view=${this.view}&limit=${PAGE}&cursor=${encodeURIComponent(this.nextCursor)}`);
    if (ticket !== this.ticket) return;
    page.items.forEach((row) => this.app.store.merge(row));
    this.nextCursor = page.next_cursor;
    this.last = page.items.at(-1) ?? this.last;
    this.render();
  }

  /** Read a row a live update is about but the page does not know yet (a new conversation, say). */
  async fetchRow(update) {
    const id = update.conversation_id;
    const busy = this.pending.has(id);
    this.pending.set(id, update);
    if (busy) return;
    try {
      for (;;) {
        const wanted = this.pending.get(id);
        const row = await readUntil(() => get(`/conversations/${id}`), (r) => reflects(r, wanted));
        if (row) this.app.store.merge(row, { touched: true });
        if (this.pending.get(id) === wanted) break;
      }
    } catch {
      // A failed read is repaired by the reload that follows the next reconnect.
    } finally {
      this.pending.delete(id);
      this.render();
    }
  }

  visible() {
    const staffId = this.app.me?.staff_id;
    return [...this.app.store.rows.values()]
      .filter((row) => inView(row, this.view, staffId))
      .filter((row) => !this.nextCursor || !this.last || newestFirst(row, this.last) <= 0)
      .sort(newestFirst);
  }

  ids() {
    return this.visible().map((row) => row.conversation_id);
  }

  render() {
    const rows = this.visible();
    const keep = new Set();
    rows.forEach((row, index) => {
      const id = row.conversation_id;
      let item = this.items.get(id);
      if (!item) {
        const button = h("button", { type: "button", class: "conversation", dataset: { id } });
        button.addEventListener("click", () => this.app.select(id));
        item = h("li", { class: "conversation-item" }, button);
        this.items.set(id, item);
      }
      this.fill(item.firstChild, row);
      if (this.element.children[index] !== item) this.element.insertBefore(item, this.element.children[index] ?? null);
      keep.add(id);
    });
    for (const [id, item] of this.items) {
      if (!keep.has(id)) {
        item.remove();
        this.items.delete(id);
      }
    }
    $("list-empty").hidden = !this.loaded || rows.length > 0;
    $("load-more").hidden = !this.nextCursor;
    const unread = rows.reduce((sum, row) => sum + (row.unread > 0 ? 1 : 0), 0);
    document.title = unread ? `(${unread}) commhub inbox` : "commhub inbox";
  }

  fill(button, row) {
    const selected = row.conversation_id === this.app.selectedId;
    button.setAttribute("aria-current", String(selected));
    button.classList.toggle("unread", row.unread > 0);
    const assignee = row.assignee_id ? this.app.staffName(row.assignee_id, { you: true }) : null;
    button.replaceChildren(
      h("span", { class: `avatar c${colourSlot(row.contact_id)}`, "aria-hidden": "true" }, initials(row.contact_name)),
      h("span", { class: "conversation-main" },
        h("span", { class: "conversation-top" },
          h("span", { class: "conversation-name" }, displayName(row.contact_name)),
          h("time", { class: "conversation-time", datetime: row.last_activity }, shortTime(row.last_activity))),
        h("span", { class: "conversation-bottom" },
          h("span", { class: "conversation-preview" }, previewLine(row)),
          row.unread > 0 ? h("span", { class: "badge" }, String(row.unread), h("span", { class: "sr-only" }, " unread")) : null),
        h("span", { class: "conversation-tags" },
          h("span", { class: "chip channel" }, channelName(row.channel)),
          row.status === "closed" ? h("span", { class: "chip closed" }, "Closed") : null,
          assignee ? h("span", { class: "chip assignee" }, assignee) : null,
          ...row.labels.map((label) => h("span", { class: "chip label" }, label)))),
    );
  }

  scrollTo(id) {
    this.items.get(id)?.scrollIntoView({ block: "nearest" });
  }
}

function previewLine(row) {
  if (row.contact_status === "erased") return "Personal data erased";
  if (!row.preview) return row.message_count ? "…" : "No messages yet";
  return row.last_direction === "out" ? `You: ${row.preview}` : row.preview;
}
