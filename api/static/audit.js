// The audit log page (compliance and owner roles): filter entries, page back in time, verify the chain.
// Entries hold ids, routes and counts only, so nothing personal is shown here.

import { get, onUnauthorized, post, session } from "./api.js";
import { $, h } from "./dom.js";

const AUDIT_ROLES = new Set(["owner", "compliance"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
let cursor = null;

function showError(id, message) {
  $(id).textContent = message ?? "";
  $(id).hidden = !message;
}

async function signIn(event) {
  event.preventDefault();
  showError("login-error", null);
  try {
    const answer = await post("/auth/login", {
      workspace: $("login-workspace").value.trim(), email: $("login-email").value.trim(), password: $("login-password").value,
    });
    if (!AUDIT_ROLES.has(answer.role)) {
      showError("login-error", `Your role (${answer.role}) does not include the audit log.`);
      return;
    }
    session.save({ token: answer.token, staff_id: answer.staff_id, role: answer.role, workspace_name: answer.workspace_name });
    $("login-password").value = "";
    start(session.load());
  } catch (error) {
    showError("login-error", error.status === 401 ? "Workspace, email or password is wrong." : error.message);
  }
}

function query(before) {
  const params = new URLSearchParams({ limit: "50" });
  const action = $("filter-action").value.trim();
  const actor = $("filter-actor").value.trim();
  const subject = $("filter-subject").value.trim();
  if (action) params.set("action", action);
  if (UUID.test(actor)) params.set("actor_id", actor);
  if (UUID.test(subject)) params.set("subject_id", subject);
  if (before) params.set("cursor", String(before));
  return `/audit?${params}`;
}

function row(entry) {
  return h("tr", { dataset: { position: entry.position } },
    h("td", {}, new Date(entry.at).toLocaleString()),
    h("td", {}, entry.action),
    h("td", { class: "ids" }, entry.actor_id ?? entry.via),
    h("td", { class: "ids" }, (entry.subject_ids ?? []).join(" ")),
    h("td", {}, entry.route ?? ""),
    h("td", {}, entry.count ?? ""),
    h("td", {}, entry.outcome));
}

async function load(append = false) {
  showError("audit-error", null);
  try {
    const page = await get(query(append ? cursor : null));
    if (!append) $("entries").replaceChildren();
    $("entries").append(...page.items.map(row));
    cursor = page.next_cursor;
    $("older").hidden = cursor === null;
  } catch (error) {
    showError("audit-error", error.message);
  }
}

async function verify() {
  const report = await get("/audit/verify");
  $("verify-result").dataset.intact = String(report.intact);
  $("verify-result").textContent = report.intact
    ? `Chain intact: ${report.entries} entries`
    : `Chain BROKEN: ${report.problems.join("; ")}`;
}

function start(me) {
  $("login").hidden = true;
  $("audit").hidden = false;
  $("workspace-name").textContent = me.workspace_name ?? "";
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("older").addEventListener("click", () => load(true));
  $("verify").addEventListener("click", verify);
  $("logout").addEventListener("click", () => { session.clear(); location.replace(location.pathname); });
  load();
}

onUnauthorized(() => { session.clear(); location.replace(location.pathname); });
const me = session.load();
if (me?.token && AUDIT_ROLES.has(me.role)) start(me);
else {
  $("login").hidden = false;
  $("login-form").addEventListener("submit", signIn);
}
