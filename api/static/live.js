// The agent websocket. Every update carries a position; after a drop the socket reconnects with
// backoff and sends the last position it saw as ``after``, so each missed update arrives exactly once.

const BASE_DELAY = 500;
const MAX_DELAY = 15000;

export class LiveSocket {
  /**
   * handlers: update(u) for each update in order; ready(position) after every (re)connect, once the
   * backlog has been delivered; state("connecting"|"live"|"reconnecting"|"offline"); rejected(code).
   */
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    this.position = null;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    this.retryNow = () => this.reconnectSoon(0);
  }

  start() {
    window.addEventListener("online", this.retryNow);
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.retryNow);
    clearTimeout(this.timer);
    this.socket?.close(1000, "signed out");
    this.socket = null;
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/agent`);
    this.socket = socket;
    this.handlers.state(this.attempt === 0 && this.position === null ? "connecting" : "reconnecting");
    socket.addEventListener("open", () => {
      const hello = { token: this.token, batch: true }; // updates published together may come in one frame
      if (this.position !== null) hello.after = this.position;
      socket.send(JSON.stringify(hello));
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.receive(JSON.parse(event.data));
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket || this.stopped) return;
      this.socket = null;
      if (event.code === 4401 || event.code === 4403) {
        this.stopped = true;
        this.handlers.state("offline");
        this.handlers.rejected(event.code);
        return;
      }
      if (event.code === 4409) this.position = null; // too far behind: start from now, the page reloads on ready
      this.reconnectSoon();
    });
  }

  receive(message) {
    if (message.type === "batch") {
      for (const update of message.updates) {
        if (this.stopped) return; // signed out part-way through a frame
        this.receive(update);
      }
      return;
    }
    if (message.type === "ready") {
      this.position = Math.max(this.position ?? 0, message.position);
      this.attempt = 0;
      this.handlers.state("live");
      this.handlers.ready(this.position);
      return;
    }
    if (message.position === undefined) return this.handlers.update(message); // typing: live only, no position
    if (this.position !== null && message.position <= this.position) return; // already seen
    this.position = message.position;
    this.handlers.update(message);
  }

  reconnectSoon(delay) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (delay === 0 && this.socket) return; // already connected or connecting
    const wait = delay ?? Math.min(MAX_DELAY, BASE_DELAY * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    this.handlers.state(navigator.onLine === false ? "offline" : "reconnecting");
    this.timer = setTimeout(() => this.connect(), wait);
  }
}
