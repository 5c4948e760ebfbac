// The demo login page: every step is one POST to the page's own backend (/login/api/...),
// which talks to the session API. This module never sees a session token or a PAT: the
// session lives in an HttpOnly cookie; the CSRF token comes from the page's <meta> tag.
// Only textContent is written (no HTML from data), so the CSP and Trusted Types hold.

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

let busy = false;

async function post(path, body = {}) {
  const response = await fetch(`/login/api/${path}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
    body: JSON.stringify(body),
  });
  let payload = {};
  try {
    payload = await response.json();
  } catch {
    payload = {};
  }
  if (!response.ok) {
    throw new Error(payload.error || `The request failed (HTTP ${response.status}).`);
  }
  return payload;
}

function say(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

function formatTime(value) {
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? String(value) : time.toLocaleString();
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

function renderSignedIn(state) {
  const body = $("#factors tbody");
  body.replaceChildren(
    ...(state.factors || []).map((factor) =>
      row([
        factor.kind === "user" ? `${factor.label}: ${state.user.loginName}` : factor.label,
        formatTime(factor.verifiedAt),
        "userVerified" in factor ? (factor.userVerified ? "yes" : "no") : "",
      ]),
    ),
  );
  $("#factors tbody").dataset.kinds = (state.factors || []).map((f) => f.kind).join(" ");
  say($(".expires"), state.expirationDate ? `Session valid until ${formatTime(state.expirationDate)}.` : "");
  const list = $("#passkeys");
  if (state.passkeys === null || state.passkeys === undefined) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "Passkeys are not available on this server." }));
    return;
  }
  const items = state.passkeys.map((key) => {
    const ready = key.state === "AUTH_FACTOR_STATE_READY" ? "ready" : "not ready";
    return Object.assign(document.createElement("li"), { textContent: `${key.name || "passkey"} (${ready})` });
  });
  if (items.length === 0) {
    items.push(Object.assign(document.createElement("li"), { textContent: "No passkey yet." }));
  }
  list.replaceChildren(...items);
}

function render(state) {
  document.body.dataset.step = state.step;
  for (const view of $$("[data-view]")) view.hidden = view.dataset.view !== state.step;
  const who = state.user ? state.user.displayName || state.user.loginName : "";
  for (const element of $$(".who")) say(element, who && `${who} (${state.user.loginName})`);
  const options = state.options || [];
  $("#passkey-instead").hidden = !options.includes("passkey");
  if (state.step === "secondFactor") {
    for (const element of $$("[data-option]")) element.hidden = !options.includes(element.dataset.option);
    const checkable = ["passkey", "u2f", "totp", "otpEmail", "otpSms"];
    $("#unsupported").hidden = options.some((o) => checkable.includes(o));
  }
  if (state.step === "signedIn") renderSignedIn(state);
  if (state.step === "loginName") $("#password").value = "";
  const focus = $(`[data-view="${state.step}"] input:not([hidden])`);
  if (focus) focus.focus();
}

// One action at a time; its errors are shown, never thrown at the user.
async function act(action, doneMessage = "") {
  if (busy) return;
  busy = true;
  document.body.dataset.busy = "true";
  for (const button of $$("button")) button.disabled = true;
  say($("#error"), "");
  say($("#message"), "");
  try {
    const state = await action();
    if (state) render(state);
    say($("#message"), typeof doneMessage === "function" ? doneMessage(state) : doneMessage);
  } catch (error) {
    say($("#error"), describe(error));
  } finally {
    for (const button of $$("button")) button.disabled = false;
    busy = false;
    document.body.dataset.busy = "false";
  }
}

function describe(error) {
  if (error && error.name === "NotAllowedError") {
    return "The passkey prompt was cancelled or timed out.";
  }
  if (error && error.name === "InvalidStateError") {
    return "This authenticator already holds a passkey for this account.";
  }
  return (error && error.message) || "Something went wrong.";
}

function supportsWebAuthn() {
  return Boolean(window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON);
}

async function signInWithWebAuthn(kind) {
  if (!supportsWebAuthn()) throw new Error("This browser does not support passkeys.");
  const { publicKey } = await post("webauthn/challenge", { kind });
  const credential = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey),
  });
  return post("webauthn/check", { credential: credential.toJSON() });
}

async function registerPasskey(name) {
  if (!supportsWebAuthn()) throw new Error("This browser does not support passkeys.");
  const { passkeyId, publicKey } = await post("passkeys/options");
  const credential = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey),
  });
  return post("passkeys/verify", { passkeyId, name, credential: credential.toJSON() });
}

function on(selector, event, handler) {
  for (const element of $$(selector)) {
    element.addEventListener(event, (e) => {
      e.preventDefault();
      handler(e);
    });
  }
}

on("#login-name-form", "submit", () =>
  act(() => post("start", { loginName: $("#login-name").value.trim() })),
);
on("#password-form", "submit", () => {
  const password = $("#password").value;
  $("#password").value = "";
  act(() => post("password", { password }));
});
on("#passkey-instead, #passkey-only, #passkey-second", "click", () => act(() => signInWithWebAuthn("passkey")));
on("#u2f-second", "click", () => act(() => signInWithWebAuthn("u2f")));
on("#totp-form", "submit", () => act(() => post("totp", { code: $("#totp-code").value.trim() })));
on(".otp-send", "click", (e) => {
  const channel = e.target.closest("form").dataset.channel;
  act(async () => {
    await post("otp/send", { channel });
    return null;
  }, channel === "otpSms" ? "A code is on its way to your phone." : "A code is on its way to your e-mail address.");
});
on("form.otp", "submit", (e) => {
  const form = e.target.closest("form");
  const code = form.querySelector("input").value.trim();
  act(() => post("otp/check", { channel: form.dataset.channel, code }));
});
on("#passkey-form", "submit", () =>
  act(
    async () => {
      const state = await registerPasskey($("#passkey-name").value.trim());
      $("#passkey-name").value = "my passkey";
      return state;
    },
    (state) => `Passkey "${state.registered}" registered.` +
      (state.step === "secondFactor" ? " Confirm with it to continue." : ""),
  ),
);
on(".sign-out, .restart", "click", () => act(() => post("logout"), "You are signed out."));

act(() => post("state"));
