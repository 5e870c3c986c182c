// commhub web chat widget. Embed with one tag (no framework needed on the host page):
//   <script src="https://HUB/static/widget.js" data-workspace="PUBLIC_KEY" async></script>
// Optional identity verification: data-user-id, data-user-expires (Unix seconds) and
// data-user-signature (hex HMAC-SHA256 of "user_id:expires" under the workspace's widget secret).
// Everything renders inside a shadow root (styles scoped), and every text goes in as text, never markup.
(function () {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.dataset.workspace) return;
  const KEY = script.dataset.workspace;
  if (window.__commhubWidgets && window.__commhubWidgets[KEY]) return;
  (window.__commhubWidgets = window.__commhubWidgets || {})[KEY] = true;
  const BASE = new URL(script.src, location.href);
  const SOCKET_URL = (BASE.protocol === "https:" ? "wss://" : "ws://") + BASE.host + "/ws/widget/" + encodeURIComponent(KEY);
  const STORE = "commhub-widget:" + KEY;
  const IDENTITY = script.dataset.userId
    ? { user_id: script.dataset.userId, expires: Number(script.dataset.userExpires), signature: script.dataset.userSignature || "" }
    : null;

  const STYLE = `
    :host { all: initial; position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; }
    * { box-sizing: border-box; font: inherit; }
    [hidden] { display: none !important; }
    .launcher { border: 0; border-radius: 999px; padding: 12px 18px; background: #2155cd; color: #fff; cursor: pointer;
      box-shadow: 0 4px 14px rgba(0,0,0,.2); font-weight: 600; }
    .panel { position: absolute; right: 0; bottom: 56px; width: 340px; max-width: calc(100vw - 40px); height: 480px;
      max-height: calc(100vh - 100px); display: flex; flex-direction: column; background: #fff; border-radius: 12px;
      box-shadow: 0 8px 30px rgba(0,0,0,.25); overflow: hidden; }
    header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #2155cd; color: #fff; }
    header h2 { flex: 1; margin: 0; font-size: 15px; font-weight: 600; }
    header button { border: 0; background: transparent; color: #fff; font-size: 20px; cursor: pointer; }
    .status { margin: 0; padding: 4px 12px; font-size: 12px; color: #57606a; background: #f6f8fa; }
    .notice, .offline { padding: 12px; border-bottom: 1px solid #d0d7de; font-size: 13px; }
    .notice p, .offline p { margin: 0 0 8px; }
    .messages { flex: 1; margin: 0; padding: 12px; list-style: none; overflow-y: auto; display: flex; flex-direction: column; gap: 6px; }
    .message { max-width: 80%; padding: 7px 10px; border-radius: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
    .message.mine { align-self: flex-end; background: #2155cd; color: #fff; }
    .message.theirs { align-self: flex-start; background: #eaeef2; }
    .message.pending { opacity: .6; }
    .typing { margin: 0; padding: 0 12px 4px; font-size: 12px; color: #57606a; font-style: italic; }
    .error { margin: 0; padding: 4px 12px; font-size: 12px; color: #cf222e; }
    form { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #d0d7de; }
    form.offline { flex-direction: column; border-top: 0; }
    textarea, input[type=email] { flex: 1; width: 100%; padding: 6px 8px; border: 1px solid #d0d7de; border-radius: 6px; resize: none; }
    label.consent { display: flex; gap: 6px; align-items: flex-start; font-size: 12px; }
    button.send, button.start { border: 0; border-radius: 6px; padding: 6px 12px; background: #2155cd; color: #fff; cursor: pointer; }
    a { color: inherit; }
  `;

  // Building elements: attributes and text only, never HTML strings.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) if (child) el.append(child);
    return el;
  }

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function load() {
    try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch (e) { return {}; }
  }
  const saved = load();
  const state = {
    token: typeof saved.token === "string" ? saved.token : null,
    pending: Array.isArray(saved.pending) ? saved.pending : [],
    noticeAccepted: saved.noticeAccepted === true,
    position: 0, socket: null, ready: false, attempt: 0, stopped: false, typedAt: 0, typingTimer: null,
    rendered: new Set(), online: true, known: false, maxChars: 2000,
  };
  function persist() {
    try {
      localStorage.setItem(STORE, JSON.stringify({ token: state.token, pending: state.pending, noticeAccepted: state.noticeAccepted }));
    } catch (e) { /* storage full or blocked: the thread still works for this page */ }
  }

  // The UI --------------------------------------------------------------------------------------
  const host = h("div", { "data-commhub-widget": "" });
  const root = host.attachShadow({ mode: "open" });
  const title = h("h2", { text: "Chat" });
  const statusLine = h("p", { class: "status", role: "status", text: "Connecting…" });
  const noticeText = h("p", { class: "notice-text" });
  const privacyLink = h("a", { class: "privacy", target: "_blank", rel: "noopener noreferrer", text: "Privacy policy" });
  const startButton = h("button", { type: "button", class: "start", text: "Start chat" });
  const notice = h("div", { class: "notice", hidden: true }, noticeText, h("p", {}, privacyLink), startButton);
  const list = h("ol", { class: "messages", "aria-live": "polite", "aria-label": "Conversation" });
  const typing = h("p", { class: "typing", hidden: true, text: "Typing…" });
  const errorLine = h("p", { class: "error", role: "alert", hidden: true });
  const input = h("textarea", { rows: 2, "aria-label": "Message", placeholder: "Write a message…" });
  const composer = h("form", { class: "composer" }, input, h("button", { type: "submit", class: "send", text: "Send" }));
  const offlineEmail = h("input", { type: "email", required: true, autocomplete: "email", "aria-label": "Your email" });
  const offlineBody = h("textarea", { rows: 3, required: true, "aria-label": "Your message" });
  const offlineConsent = h("input", { type: "checkbox", "aria-label": "Consent to an answer by email" });
  const consentText = h("span", { class: "consent-text" });
  const offlineForm = h("form", { class: "offline", hidden: true },
    h("p", { text: "No one is available right now. Leave your email and we will answer you there." }),
    offlineEmail, offlineBody, h("label", { class: "consent" }, offlineConsent, consentText),
    h("button", { type: "submit", class: "send", text: "Send" }));
  const panel = h("section", { class: "panel", hidden: true, role: "dialog", "aria-label": "Chat" },
    h("header", {}, title, h("button", { type: "button", class: "close", "aria-label": "Close chat", text: "×",
      onclick: () => toggle(false) })),
    statusLine, notice, offlineForm, list, typing, errorLine, composer);
  const launcher = h("button", { type: "button", class: "launcher", "aria-label": "Open chat", text: "Chat with us",
    onclick: () => toggle(panel.hidden) });
  root.append(h("style", { text: STYLE }), panel, launcher);

  function toggle(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) (notice.hidden ? input : startButton).focus();
  }

  function showError(text) {
    errorLine.textContent = text || "";
    errorLine.hidden = !text;
  }

  function layout() {
    const needNotice = !state.known && !state.noticeAccepted;
    notice.hidden = !needNotice;
    offlineForm.hidden = state.online || needNotice;
    composer.hidden = needNotice || !state.online;
  }

  function render(frame) {
    if (state.rendered.has(frame.message_id)) return;
    state.rendered.add(frame.message_id);
    const pendingEl = frame.client_id && list.querySelector(`[data-client="${CSS.escape(frame.client_id)}"]`);
    const el = h("li", { class: "message " + (frame.direction === "in" ? "mine" : "theirs"), "data-id": frame.message_id,
      text: frame.body });
    if (pendingEl) pendingEl.replaceWith(el);
    else {
      // Keep pending (unacknowledged) messages last.
      const firstPending = list.querySelector(".pending");
      list.insertBefore(el, firstPending);
    }
    list.scrollTop = list.scrollHeight;
  }

  function renderPending(item) {
    if (item.kind !== "message") return;
    list.append(h("li", { class: "message mine pending", "data-client": item.client_id, text: item.body }));
    list.scrollTop = list.scrollHeight;
  }

  // The connection --------------------------------------------------------------------------------
  function send(frame) {
    if (state.socket && state.ready) state.socket.send(JSON.stringify(frame));
  }

  function sendPending(item) {
    const frame = { type: item.kind, client_id: item.client_id, body: item.body };
    if (item.kind === "message") frame.notice_accepted = state.noticeAccepted;
    else { frame.email = item.email; frame.consent = item.consent; }
    send(frame);
  }

  function connect() {
    if (state.stopped) return;
    const socket = new WebSocket(SOCKET_URL);
    state.socket = socket;
    state.ready = false;
    socket.addEventListener("open", () => {
      const hello = { type: "hello", after: state.position };
      if (IDENTITY) hello.identity = IDENTITY;
      else if (state.token) hello.visitor_token = state.token;
      socket.send(JSON.stringify(hello));
    });
    socket.addEventListener("message", (event) => {
      if (socket === state.socket) receive(JSON.parse(event.data));
    });
    socket.addEventListener("close", (event) => {
      if (socket !== state.socket) return;
      state.socket = null;
      state.ready = false;
      if (event.code === 4403) return stop("Chat is unavailable: this page's sign-in could not be verified.");
      if (event.code === 4410) {
        state.token = null; state.pending = []; persist();
        return stop("This conversation has ended.");
      }
      statusLine.textContent = "Reconnecting…";
      const slow = event.code === 4429 ? 8 : 1;
      const wait = Math.min(30000, 500 * slow * 2 ** state.attempt) * (0.8 + Math.random() * 0.4);
      state.attempt += 1;
      setTimeout(connect, wait);
    });
  }

  function stop(text) {
    state.stopped = true;
    statusLine.textContent = text;
    composer.hidden = true;
    offlineForm.hidden = true;
  }

  function receive(frame) {
    switch (frame.type) {
      case "message":
        state.position = Math.max(state.position, frame.position);
        render(frame);
        if (frame.direction === "out") typing.hidden = true;
        break;
      case "ready":
        state.ready = true;
        state.attempt = 0;
        state.position = Math.max(state.position, frame.position);
        state.online = frame.agents_online;
        state.known = frame.known || state.known;
        state.maxChars = frame.max_chars || state.maxChars;
        input.maxLength = offlineBody.maxLength = state.maxChars;
        title.textContent = frame.title || "Chat";
        noticeText.textContent = frame.notice || "";
        consentText.textContent = frame.offline_consent || "";
        setPrivacyLink(frame.privacy_policy_url);
        statusLine.textContent = frame.agents_online ? "We're online" : "We're away";
        layout();
        for (const item of state.pending) sendPending(item);
        break;
      case "session":
        state.token = frame.visitor_token;
        state.known = true;
        persist();
        break;
      case "ack": {
        state.pending = state.pending.filter((p) => p.client_id !== frame.client_id);
        persist();
        const el = list.querySelector(`[data-client="${CSS.escape(frame.client_id)}"]`);
        if (el && state.rendered.has(frame.message_id)) el.remove();
        else if (el) {
          el.classList.remove("pending");
          el.removeAttribute("data-client");
          el.setAttribute("data-id", frame.message_id);
          state.rendered.add(frame.message_id);
        }
        state.known = true;
        break;
      }
      case "typing":
        typing.hidden = false;
        clearTimeout(state.typingTimer);
        state.typingTimer = setTimeout(() => { typing.hidden = true; }, 4000);
        break;
      case "presence":
        state.online = frame.agents_online;
        statusLine.textContent = frame.agents_online ? "We're online" : "We're away";
        layout();
        break;
      case "error":
        onError(frame);
        break;
    }
  }

  function onError(frame) {
    const item = state.pending.find((p) => p.client_id === frame.client_id);
    if (frame.code === "rate_limited" && item) {
      showError("You are sending messages quickly; yours will go in a moment.");
      setTimeout(() => sendPending(item), 5000);
      return;
    }
    if (item) {
      state.pending = state.pending.filter((p) => p !== item);
      persist();
      list.querySelector(`[data-client="${CSS.escape(item.client_id)}"]`)?.remove();
    }
    const texts = {
      too_long: `Messages can be at most ${state.maxChars} characters.`,
      consent_required: "Please tick the box so that we may answer you by email.",
      invalid_email: "Please enter a valid email address.",
      notice_required: "Please read the notice and start the chat first.",
    };
    showError(texts[frame.code] || "That could not be sent.");
    if (frame.code === "notice_required") { state.noticeAccepted = false; layout(); }
  }

  function setPrivacyLink(url) {
    let safe = null;
    try { const parsed = new URL(url); if (parsed.protocol === "https:" || parsed.protocol === "http:") safe = parsed.href; } catch (e) { /* none */ }
    privacyLink.hidden = !safe;
    if (safe) privacyLink.href = safe;
  }

  function queue(item) {
    state.pending.push(item);
    persist();
    renderPending(item);
    sendPending(item);
  }

  startButton.addEventListener("click", () => {
    state.noticeAccepted = true;
    persist();
    layout();
    input.focus();
  });
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = input.value;
    if (!body.trim()) return;
    showError("");
    input.value = "";
    queue({ kind: "message", client_id: randomId(), body });
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); composer.requestSubmit(); }
  });
  input.addEventListener("input", () => {
    const now = Date.now();
    if (state.known && now - state.typedAt > 2000) { state.typedAt = now; send({ type: "typing" }); }
  });
  offlineForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!offlineConsent.checked) return showError("Please tick the box so that we may answer you by email.");
    showError("");
    const item = { kind: "offline", client_id: randomId(), body: offlineBody.value, email: offlineEmail.value.trim(), consent: true };
    queue(item);
    list.append(h("li", { class: "message mine pending", "data-client": item.client_id, text: item.body }));
    offlineForm.reset();
  });

  function start() {
    document.body.append(host);
    for (const item of state.pending) renderPending(item);
    connect();
  }
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
