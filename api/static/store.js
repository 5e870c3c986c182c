// Conversations the page knows about, kept current by REST reads and live updates.

import { callText, preview } from "./format.js";

const MESSAGE_FIELDS = ["last_activity", "last_direction", "preview", "message_count", "unread"];
const time = (iso) => (iso ? Date.parse(iso) : 0);

/** Sort order of the inbox (as the server's): latest activity first, then by id. */
export function newestFirst(a, b) {
  return time(b.last_activity) - time(a.last_activity) || (a.conversation_id < b.conversation_id ? 1 : -1);
}

/** Whether a row belongs in a filter; the same rules as the server's list query. */
export function inView(row, view, staffId) {
  switch (view) {
    case "open": return row.status === "open";
    case "closed": return row.status === "closed";
    case "mine": return row.status === "open" && row.assignee_id === staffId;
    case "unassigned": return row.status === "open" && !row.assignee_id;
    default: return true;
  }
}

/** Whether a row read from the API already includes what a live update announced. */
export function reflects(row, update) {
  if (!row) return false;
  switch (update.type) {
    case "conversation.message_received":
    case "conversation.message_sent":
    case "conversation.message_refused":
    case "conversation.call_logged":
      return time(row.last_activity) >= time(update.at);
    case "conversation.assigned": return (row.assignee_id ?? null) === (update.assignee_id ?? null);
    case "conversation.closed": return row.status === "closed";
    case "conversation.reopened": return row.status === "open";
    case "conversation.labelled": return row.labels.includes(update.label);
    case "conversation.unlabelled": return !row.labels.includes(update.label);
    case "conversation.read": return row.unread === 0;
    default: return true;
  }
}

export class ConversationStore {
  constructor() {
    this.rows = new Map();
    this.sequence = 0; // counts live changes, so a reload can tell rows changed while it was reading
    this.touched = new Map();
  }

  touchedSince(id, sequence) {
    return (this.touched.get(id) ?? 0) > sequence;
  }

  get(id) {
    return this.rows.get(id);
  }

  /** Take a row read from the API, keeping message fields we already know to be newer. */
  merge(fresh, { touched = false } = {}) {
    const old = this.rows.get(fresh.conversation_id);
    const row = { ...fresh, labels: [...(fresh.labels ?? [])] };
    if (old && time(old.last_activity) > time(fresh.last_activity)) {
      for (const field of MESSAGE_FIELDS) row[field] = old[field];
    }
    this.rows.set(row.conversation_id, row);
    if (touched) this.touched.set(row.conversation_id, ++this.sequence);
    return row;
  }

  /** Apply a live update to a known row; returns the row, or null when the row is not known. */
  apply(update, { openAndVisible = false } = {}) {
    const row = this.rows.get(update.conversation_id);
    if (!row) return null;
    this.touched.set(row.conversation_id, ++this.sequence);
    const newer = time(update.at) >= time(row.last_activity);
    switch (update.type) {
      case "conversation.message_received":
        Object.assign(row, { status: "open", snoozed_until: null, message_count: row.message_count + 1 });
        row.unread = openAndVisible ? 0 : row.unread + 1;
        if (newer) Object.assign(row, { last_activity: update.at, last_direction: "in", preview: preview(update.body) });
        break;
      case "conversation.message_sent":
        Object.assign(row, { unread: 0, message_count: row.message_count + 1 });
        if (newer) Object.assign(row, { last_activity: update.at, last_direction: "out", preview: preview(update.body) });
        break;
      case "conversation.message_refused":
        if (newer) row.last_activity = update.at;
        break;
      case "conversation.call_logged": {
        const wakes = update.kind === "missed" || update.kind === "voicemail";
        row.message_count += 1;
        if (wakes) Object.assign(row, { status: "open", snoozed_until: null, unread: openAndVisible ? 0 : row.unread + 1 });
        if (newer) Object.assign(row, { last_activity: update.at, last_direction: "in", preview: preview(update.body) || callText(update.kind) });
        break;
      }
      case "conversation.assigned": row.assignee_id = update.assignee_id ?? null; break;
      case "conversation.closed": row.status = "closed"; break;
      case "conversation.reopened": row.status = "open"; break;
      case "conversation.labelled":
        if (!row.labels.includes(update.label)) row.labels.push(update.label);
        break;
      case "conversation.unlabelled": row.labels = row.labels.filter((label) => label !== update.label); break;
      case "conversation.snoozed": row.snoozed_until = update.until; break;
      case "conversation.read": row.unread = 0; break;
      default: break;
    }
    return row;
  }
}
