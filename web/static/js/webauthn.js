// Passkeys (WebAuthn) for the salesperson's pages, with no inline script (the CSP):
// - form[data-webauthn-register] (My passkeys): fetch creation options from
//   data-options-url, navigator.credentials.create(), put the credential's JSON in the
//   hidden "credential" field and submit the form; the server verifies and keeps it.
// - form[data-webauthn-sign] (the signing page): when its "passkey" button submits it, fetch
//   request options bound to the agreement's hash, navigator.credentials.get(), put the
//   assertion's JSON in the hidden "passkey_assertion" field and submit with method=passkey.
// Messages come translated from the form's data-msg-* attributes. Binary fields travel as
// base64url, as the server's options use them.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function toBuffer(value) {
    var base64 = String(value).replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data && data.message ? data.message : "");
          error.name = "ServerRefused";
          throw error;
        }
        return data;
      });
    });
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials &&
              navigator.credentials.create && navigator.credentials.get);
  }

  function slot(form, name) { return form.querySelector("[data-webauthn-" + name + "]"); }

  function say(form, errorText, statusText) {
    var error = slot(form, "error"), status = slot(form, "status");
    if (error) error.textContent = errorText || "";
    if (status) status.textContent = statusText || "";
  }

  function failed(form, button, err) {
    if (button) button.removeAttribute("aria-busy");
    var data = form.dataset, text;
    if (err && err.name === "ServerRefused" && err.message) text = err.message;
    else if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) text = data.msgCancelled;
    else text = data.msgFailed;
    say(form, text, "");
  }

  function extensions(credential) {
    return credential.getClientExtensionResults ? credential.getClientExtensionResults() : {};
  }

  // --- registering a passkey -----------------------------------------------------------------
  document.querySelectorAll("form[data-webauthn-register]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.ready === "1") return;
      event.preventDefault();
      if (!supported()) { say(form, form.dataset.msgUnsupported, ""); return; }
      var button = event.submitter || form.querySelector('button[type="submit"]');
      if (button) button.setAttribute("aria-busy", "true");
      say(form, "", form.dataset.msgBusy);
      postJSON(form.dataset.optionsUrl, {}).then(function (options) {
        options.challenge = toBuffer(options.challenge);
        options.user.id = toBuffer(options.user.id);
        (options.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
        return navigator.credentials.create({ publicKey: options });
      }).then(function (credential) {
        var response = credential.response;
        var json = {
          id: credential.id, rawId: toBase64url(credential.rawId), type: credential.type,
          response: {
            clientDataJSON: toBase64url(response.clientDataJSON),
            attestationObject: toBase64url(response.attestationObject),
            transports: response.getTransports ? response.getTransports() : []
          },
          clientExtensionResults: extensions(credential)
        };
        if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
        form.querySelector('input[name="credential"]').value = JSON.stringify(json);
        form.dataset.ready = "1";
        form.submit();
      }).catch(function (err) { failed(form, button, err); });
    });
  });

  // --- signing with a passkey ----------------------------------------------------------------
  document.querySelectorAll("form[data-webauthn-sign]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var button = event.submitter;
      if (!button || button.value !== "passkey" || form.dataset.ready === "1") return;
      event.preventDefault();
      var name = form.querySelector('[name="typed_name"]');
      var nameError = document.getElementById("error-typed_name");
      if (name && !name.value.trim()) {
        name.setAttribute("aria-invalid", "true");
        if (nameError) nameError.textContent = form.dataset.msgName;
        name.focus();
        return;
      }
      if (name) name.removeAttribute("aria-invalid");
      if (nameError) nameError.textContent = "";
      if (!supported()) { say(form, form.dataset.msgUnsupported, ""); return; }
      button.setAttribute("aria-busy", "true");
      say(form, "", form.dataset.msgBusy);
      postJSON(form.dataset.optionsUrl, { document_sha256: form.dataset.document }).then(function (options) {
        options.challenge = toBuffer(options.challenge);
        (options.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
        return navigator.credentials.get({ publicKey: options });
      }).then(function (credential) {
        var response = credential.response;
        var json = {
          id: credential.id, rawId: toBase64url(credential.rawId), type: credential.type,
          response: {
            clientDataJSON: toBase64url(response.clientDataJSON),
            authenticatorData: toBase64url(response.authenticatorData),
            signature: toBase64url(response.signature),
            userHandle: response.userHandle ? toBase64url(response.userHandle) : null
          },
          clientExtensionResults: extensions(credential)
        };
        if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
        form.querySelector('input[name="passkey_assertion"]').value = JSON.stringify(json);
        var method = document.createElement("input");
        method.type = "hidden";
        method.name = "method";
        method.value = "passkey";
        form.appendChild(method);
        form.dataset.ready = "1";
        form.submit();
      }).catch(function (err) { failed(form, button, err); });
    });
  });

  // --- signing takes a few seconds (the workflow seals the agreement): show the button busy,
  // and a second click does not send the form twice
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.matches || !form.matches("form[data-busy-on-submit]")) return;
    if (form.dataset.sending === "1") { event.preventDefault(); return; }
    form.dataset.sending = "1";
    if (event.submitter) event.submitter.setAttribute("aria-busy", "true");
  });

  // --- the one-time code: once sent, the code field is next ----------------------------------
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "otp-status" && event.target.querySelector(".code-sent")) {
      var code = document.getElementById("otp_code");
      if (code) code.focus();
    }
  });
})();
