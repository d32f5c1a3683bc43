// Personal API keys: create (the raw key is shown once), list, revoke.
import { api } from "../api.js";
import { h, mount, table, badge, toast, when } from "../dom.js";

export async function render(root) {
  const { keys = [] } = await api.get("/user/api-keys");
  const created = h("div", { "data-testid": "new-key" });
  const form = h("form", { class: "inline", onsubmit: async (ev) => {
    ev.preventDefault();
    const name = new FormData(form).get("name");
    try {
      const out = await api.post("/user/api-keys", { name });
      await render(root);
      mount(root.querySelector("[data-testid=new-key]"), h("p", {}, "Copy this key now; it will not be shown again:"),
        h("div", { class: "secret", "data-testid": "one-time-key" }, out.one_time_key || out.api_key));
    } catch (err) { toast(err.message, true); }
  } }, h("label", {}, "Key name", h("input", { name: "name", required: true, placeholder: "laptop-cli" })),
    h("div", {}, h("button", { type: "submit" }, "Create key")));
  mount(root, h("h1", {}, "API keys"),
    h("section", { class: "panel" }, h("h2", {}, "Create a key"), form, created),
    h("section", { class: "panel" }, h("h2", {}, "Your keys"), table([
      { label: "Name", value: (k) => k.name }, { label: "Prefix", value: (k) => h("code", {}, k.prefix) },
      { label: "Created", value: (k) => when(k.created_at) },
      { label: "Status", value: (k) => (k.revoked ? badge("revoked", "bad") : badge("active", "ok")) },
      { label: "", value: (k) => (k.revoked ? "" : h("button", { class: "danger", onclick: async () => {
        try { await api.post(`/user/api-keys/${encodeURIComponent(k.id)}/revoke`); toast("Key revoked"); await render(root); }
        catch (err) { toast(err.message, true); }
      } }, "Revoke")) },
    ], keys, { empty: "You have no API keys.", testid: "keys-table" })));
}
