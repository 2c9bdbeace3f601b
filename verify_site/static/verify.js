// Second, independent check of the QR token, inside the visitor's browser:
// fetch the public keys, verify the Ed25519 signature with WebCrypto, and make
// sure the token speaks of the certificate shown on this page.
(function () {
  "use strict";
  var article = document.querySelector("article.certificate");
  var out = document.getElementById("browser-check");
  var token = new URLSearchParams(window.location.search).get("t");
  if (!article || !out || !token) { return; }

  function show(kind, text) {
    out.hidden = false;
    out.className = "browser " + kind;
    out.textContent = text;
    out.setAttribute("data-result", kind);
  }

  function b64urlBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function json(bytes) { return JSON.parse(new TextDecoder().decode(bytes)); }

  async function check() {
    show("pending", article.dataset.msgPending);
    var parts = token.split(".");
    if (parts.length !== 3 || !window.crypto || !crypto.subtle) {
      return show(parts.length === 3 ? "unsupported" : "ko",
                  parts.length === 3 ? article.dataset.msgUnsupported : article.dataset.msgKo);
    }
    var header, payload;
    try { header = json(b64urlBytes(parts[0])); payload = json(b64urlBytes(parts[1])); }
    catch (e) { return show("ko", article.dataset.msgKo); }
    if (header.alg !== "EdDSA" || header.typ !== "cert+jws") { return show("ko", article.dataset.msgKo); }
    var jwks = await (await fetch("/.well-known/jwks.json", { credentials: "omit" })).json();
    var jwk = (jwks.keys || []).filter(function (k) { return k.kid === header.kid; })[0];
    if (!jwk) { return show("ko", article.dataset.msgKo); }
    var key;
    try {
      key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x },
                                          { name: "Ed25519" }, false, ["verify"]);
    } catch (e) { return show("unsupported", article.dataset.msgUnsupported); }
    var signed = new TextEncoder().encode(parts[0] + "." + parts[1]);
    var good = await crypto.subtle.verify({ name: "Ed25519" }, key, b64urlBytes(parts[2]), signed);
    var same = payload.c === article.dataset.code && payload.h === article.dataset.hash;
    if (good && same) {
      show("ok", article.dataset.msgOk.replace("{kid}", header.kid));
    } else {
      show("ko", article.dataset.msgKo);
    }
  }

  check().catch(function () { show("unsupported", article.dataset.msgUnsupported); });
})();
