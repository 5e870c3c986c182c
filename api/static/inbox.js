// The agent inbox: sign-in, then list | thread | contact, kept live over the agent websocket.

import { get, onUnauthorized, post, session } from "./api.js";
import { ContactPanel } from "./contact.js";
import { CustomerPanel } from "./customer.js";
import { $, isTyping, toast } from "./dom.js";
import { ConversationList, VIEWS } from "./list.js";
import { LiveSocket } from "./live.js";
import { ConversationStore } from "./store.js";
import { Thread } from "./thread.js";

const NOTICE_KEY = "commhub.notice";
const INBOX_ROLES = new Set(["owner", "admin", "agent"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LIVE_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

// ---- Signing in and out ------------------------------------------------------------------

function showLogin() {
  $("app").hidden = true;
  $("login").hidden = false;
  const notice = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  showLoginError(notice);
  $("login-workspace").focus();
  $("login-form").addEventListener("submit", signIn);
}

function showLoginError(message) {
  $("login-error").textContent = message ?? "";
  $("login-error").hidden = !message;
}

async function signIn(event) {
  event.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  showLoginError(null);
  try {
    const answer = await post("/auth/login", {
      workspace: $("login-workspace").value.trim(), email: $("login-email").value.trim(), password: $("login-password").value,
    });
    if (!INBOX_ROLES.has(answer.role)) {
      showLoginError(answer.role === "compliance"
        ? "Your role (compliance) does not include the inbox: the audit log is at /audit."
        : `Your role (${answer.role}) does not include the inbox.`);
      return;
    }
    session.save({ token: answer.token, staff_id: answer.staff_id, role: answer.role, workspace_name: answer.workspace_name });
    $("login-password").value = "";
    $("login-form").removeEventListener("submit", signIn);
    start(session.load());
  } catch (error) {
    showLoginError(error.status === 401 ? "Workspace, email or password is wrong." : error.message);
  } finally {
    button.disabled = false;
  }
}

function signOut(notice) {
  const token = session.load()?.token;
  app.live?.stop();
  session.clear();
  if (notice) sessionStorage.setItem(NOTICE_KEY, notice);
  // Revoke the token, then start again from a clean page (no data left in memory or the URL).
  const revoke = token && !notice
    ? fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } }).catch(() => null)
    : Promise.resolve();
  revoke.finally(() => location.replace(location.pathname));
}

// ---- The app -----------------------------------------------------------------------------

const app = {
  me: null,
  staff: new Map(),
  store: new ConversationStore(),
  selectedId: null,
  live: null,

  staffName(id, { you = false } = {}) {
    if (you && id === this.me?.staff_id) return "You";
    return this.staff.get(id)?.name ?? "A colleague";
  },

  /** Open a conversation (or none). Its id, and only its id, goes in the URL fragment. */
  async select(id) {
    if (id && !UUID.test(id)) id = null;
    if (id === this.selectedId && (id === null || this.thread.id === id)) return;
    this.selectedId = id;
    this.writeLocation();
    this.list.render();
    if (!id) {
      this.thread.clear();
      this.contact.clear();
      return;
    }
    this.list.scrollTo(id);
    const known = this.store.get(id);
    if (known) this.contact.open(known.contact_id);
    const row = await this.thread.open(id);
    if (!row || this.selectedId !== id) return;
    this.list.render();
    this.contact.open(row.contact_id);
    if (row.unread > 0) this.markRead(id);
  },

  move(step) {
    const ids = this.list.ids();
    if (!ids.length) return;
    const index = ids.indexOf(this.selectedId);
    const next = index === -1 ? (step > 0 ? 0 : ids.length - 1) : Math.min(ids.length - 1, Math.max(0, index + step));
    this.select(ids[next]);
  },

  async markRead(id) {
    this.reading ??= new Set();
    if (this.reading.has(id)) return;
    this.reading.add(id);
    try {
      this.changed(this.store.merge(await post(`/conversations/${id}/read`)));
    } catch {
      // Not worth interrupting the agent for; the badge stays until the next read.
    } finally {
      this.reading.delete(id);
    }
  },

  /** A row changed by our own action: redraw the list and, if it is open, the thread header. */
  changed(row) {
    this.list.render();
    if (row.conversation_id === this.thread.id) this.thread.renderHeader();
  },

  /** After closing the open conversation: if it left the list, open the next one, as a done pile does. */
  afterStatusChange(row, idsBefore) {
    const id = row.conversation_id;
    toast(row.status === "closed" ? "Conversation closed." : "Conversation reopened.");
    if (row.status !== "closed" || this.list.ids().includes(id)) return;
    const index = idsBefore.indexOf(id);
    const rest = idsBefore.filter((other) => other !== id && this.list.ids().includes(other));
    const next = rest[Math.min(Math.max(index, 0), rest.length - 1)];
    if (next) this.select(next);
  },

  writeLocation() {
    const params = new URLSearchParams();
    if (this.list.view !== "open") params.set("view", this.list.view);
    if (this.selectedId) params.set("c", this.selectedId);
    const hash = params.toString();
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
  },

  onUpdate(update) {
    if (update.type === "conversation.typing") {
      if (update.conversation_id === this.selectedId) this.thread.showTyping();
      return;
    }
    if (update.type.startsWith("conversation.")) {
      const open = update.conversation_id === this.selectedId;
      const watching = open && document.visibilityState === "visible";
      const row = this.store.apply(update, { openAndVisible: watching && update.type === "conversation.message_received" });
      if (row) this.list.render();
      else this.list.fetchRow(update);
      if (open) {
        this.thread.apply(update);
        if (watching && update.type === "conversation.message_received") this.markRead(update.conversation_id);
      }
    }
    this.contact.onUpdate(update);
  },

  /** After every (re)connect: read again what the socket may have missed before it was up. */
  async onReady() {
    try {
      await Promise.all([this.list.load(), this.thread.catchUp()]);
    } catch (error) {
      toast(error.message, "error");
    }
  },
};

function readLocation() {
  const params = new URLSearchParams(location.hash.slice(1));
  const view = params.get("view");
  const id = params.get("c");
  return { view: VIEWS.includes(view) ? view : "open", id: id && UUID.test(id) ? id : null };
}

function showLive(state) {
  const badge = $("live-status");
  badge.dataset.state = state;
  badge.textContent = LIVE_TEXT[state] ?? state;
}

function installShortcuts() {
  const keys = {
    j: () => app.move(1),
    k: () => app.move(-1),
    r: () => app.thread.focusReply(),
    c: () => {
      if (app.thread.row?.status === "open") app.thread.toggleStatus();
    },
  };
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      if (isTyping(event.target)) event.target.blur();
      else if ($("customer").open) app.customer.close();
      return;
    }
    if (isTyping(event.target) || event.target.closest?.("dialog")) return;
    const action = keys[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}

async function start(current) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("workspace-name").textContent = current.workspace_name ?? "";
  app.me = { staff_id: current.staff_id, role: current.role };
  app.list = new ConversationList(app);
  app.thread = new Thread(app);
  app.contact = new ContactPanel(app);
  app.customer = new CustomerPanel(app);
  $("logout").addEventListener("click", () => signOut());
  onUnauthorized(() => signOut("Your session has ended. Please sign in again."));
  installShortcuts();
  window.addEventListener("hashchange", () => {
    const wanted = readLocation();
    if (wanted.view !== app.list.view) app.list.setView(wanted.view);
    app.select(wanted.id);
  });

  app.live = new LiveSocket(current.token, {
    update: (update) => app.onUpdate(update),
    ready: () => app.onReady(),
    state: showLive,
    rejected: (code) => (code === 4401
      ? signOut("Your session has ended. Please sign in again.")
      : toast("Your role may not use the inbox.", "error")),
  }).start();

  const wanted = readLocation();
  const [me, staff, canned, list] = await Promise.allSettled([
    get("/auth/me"), get("/staff"), get("/canned-responses"), app.list.setView(wanted.view),
  ]);
  if (me.status === "fulfilled") $("me-name").textContent = me.value.name ?? me.value.email ?? "";
  if (staff.status === "fulfilled") for (const member of staff.value.items) app.staff.set(member.staff_id, member);
  if (canned.status === "fulfilled") app.thread.setCanned(canned.value.items);
  if (list.status === "rejected") toast(list.reason.message, "error");
  app.list.render();
  if (wanted.id) await app.select(wanted.id);
  document.body.dataset.ready = "true";
}

const current = session.load();
if (current?.token) start(current);
else showLogin();
