// Checks, inside the visitor's browser, that this certificate's events are in the
// public log: each event's RFC 9162 inclusion proof must lead to the root of the
// checkpoint served with it, that checkpoint (a C2SP signed note) must carry a
// valid Ed25519 signature by a log key, and as many valid witness cosignatures
// (C2SP tlog-cosignature, cosignature/v1) as the quorum asks. Each event's own
// signature over its hash is checked with the key its kid names in the JWKS.
// The page works without this script: the server's own checks are shown above.
(function () {
  "use strict";
  var section = document.querySelector("section.log-proof");
  var article = document.querySelector("article.certificate");
  var out = document.getElementById("log-check");
  if (!section || !article || !out) { return; }
  var msg = section.dataset;
  var enc = new TextEncoder();

  function Failure(why) { this.why = why; }
  function fail(why) { throw new Failure(why); }

  function show(kind, text) {
    out.hidden = false;
    out.className = "browser " + kind;
    out.textContent = text;
    out.setAttribute("data-result", kind);
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, name) { return String(values[name]); });
  }

  function b64(text) {
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function b64url(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    return b64(s);
  }

  function hex(text) {
    if (!/^[0-9a-f]{64}$/.test(text)) { fail("mismatch"); }
    var bytes = new Uint8Array(32);
    for (var i = 0; i < 32; i++) { bytes[i] = parseInt(text.substr(2 * i, 2), 16); }
    return bytes;
  }

  function concat() {
    var size = 0, i;
    for (i = 0; i < arguments.length; i++) { size += arguments[i].length; }
    var all = new Uint8Array(size), at = 0;
    for (i = 0; i < arguments.length; i++) { all.set(arguments[i], at); at += arguments[i].length; }
    return all;
  }

  function same(a, b) {
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }

  async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }

  // RFC 9162 2.1.3.2: the root an audit path leads to from a leaf, or null.
  async function rootFromPath(index, size, leaf, path) {
    if (index >= size) { return null; }
    var fn = index, sn = size - 1;
    var r = await sha256(concat(Uint8Array.of(0), leaf));
    for (var i = 0; i < path.length; i++) {
      if (sn === 0) { return null; }
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(concat(Uint8Array.of(1), path[i], r));
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await sha256(concat(Uint8Array.of(1), r, path[i]));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  async function ed25519(raw, signature, message) {
    var key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  // C2SP signed note: the text up to the last blank line, then "— <name> <base64>" lines.
  function parseNote(note) {
    var split = note.lastIndexOf("\n\n");
    if (split < 0 || note.slice(-1) !== "\n") { fail("note"); }
    var text = note.slice(0, split + 1);
    var lines = text.slice(0, -1).split("\n");
    if (lines.length !== 3) { fail("note"); }
    var signatures = note.slice(split + 2, -1).split("\n").map(function (line) {
      var m = /^\u2014 (\S+) (\S+)$/.exec(line);
      return m ? { name: m[1], blob: b64(m[2]) } : null;
    }).filter(Boolean);
    return { text: enc.encode(text), origin: lines[0], size: Number(lines[1]), root: lines[2],
             signatures: signatures };
  }

  // C2SP verifier key <name>+<hex key ID>+<base64(type || key)>, its ID recomputed.
  async function parseVkey(vkey, type) {
    var parts = vkey.split("+");
    if (parts.length < 3) { return null; }
    var name = parts[0], blob = b64(parts.slice(2).join("+"));
    if (blob.length !== 33 || blob[0] !== type) { return null; }
    var id = (await sha256(concat(enc.encode(name + "\n"), blob))).slice(0, 4);
    var idHex = Array.from(id, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    return idHex === parts[1] ? { name: name, id: id, key: blob.slice(1), text: vkey } : null;
  }

  function lineOf(note, key) {
    return note.signatures.filter(function (s) {
      return s.name === key.name && same(s.blob.slice(0, 4), key.id);
    })[0];
  }

  async function checkNote(note, history) {
    var cp = history.checkpoint;
    if (note.size !== cp.size || note.root !== cp.root) { fail("mismatch"); }
    for (var i = 0; i < history.log_keys.length; i++) {
      var key = await parseVkey(history.log_keys[i], 1);
      var line = key && key.name === note.origin ? lineOf(note, key) : null;
      if (line && await ed25519(key.key, line.blob.slice(4), note.text)) { return key.text; }
    }
    fail("note");
  }

  async function countCosigners(note, history) {
    var count = 0;
    for (var i = 0; i < history.witness_keys.length; i++) {
      var key = await parseVkey(history.witness_keys[i], 4);
      var line = key ? lineOf(note, key) : null;
      if (!line || line.blob.length !== 4 + 8 + 64) { continue; }
      var time = new DataView(line.blob.buffer, 4, 8).getBigUint64(0);
      var message = concat(enc.encode("cosignature/v1\ntime " + time.toString() + "\n"), note.text);
      if (await ed25519(key.key, line.blob.slice(12), message)) { count += 1; }
    }
    return count;
  }

  async function checkEvents(history, root, jwks) {
    var events = history.events, proven = 0;
    if (!events.length || events[0].hash !== article.dataset.hash) { fail("mismatch"); }
    for (var i = 0; i < events.length; i++) {
      var e = events[i], leaf = hex(e.hash);
      var jwk = (jwks.keys || []).filter(function (k) { return k.kid === e.kid; })[0];
      if (!jwk || !(await ed25519(b64url(jwk.x), b64url(e.sig), leaf))) { fail("event"); }
      if (e.inclusion === null) { continue; }
      var p = e.inclusion;
      if (p.leaf_index !== e.seq - 1 || p.tree_size !== history.checkpoint.size) { fail("proof"); }
      var got = await rootFromPath(p.leaf_index, p.tree_size, leaf, p.hashes.map(b64));
      if (!got || !same(got, root)) { fail("proof"); }
      proven += 1;
    }
    return proven;
  }

  async function getJson(url) {
    try {
      var response = await fetch(url, { credentials: "omit" });
      if (response.ok) { return await response.json(); }
    } catch (e) { /* network or JSON error: reported below */ }
    fail("fetch");
  }

  async function check() {
    show("pending", msg.msgPending);
    if (!window.crypto || !crypto.subtle) { return show("unsupported", msg.msgUnsupported); }
    var history = await getJson(section.dataset.history);
    var jwks = await getJson("/.well-known/jwks.json");
    var note = parseNote(history.checkpoint.note);
    var key = await checkNote(note, history);
    var proven = await checkEvents(history, b64(history.checkpoint.root), jwks);
    var cosigners = await countCosigners(note, history), quorum = history.checkpoint.quorum;
    var met = cosigners >= quorum;
    if (history.checkpoint.witnessed && !met) { fail("witness"); }
    var counts = { count: cosigners, quorum: quorum };
    var witnesses = !history.witness_keys.length ? msg.msgUnwitnessed
      : fill(met ? msg.msgWitnessed : msg.msgAwaiting, counts);
    var text = fill(msg.msgOk, { events: proven, size: note.size, key: key.split("+")[1],
                                 witnesses: witnesses });
    var later = history.events.length - proven;
    show(met || !history.witness_keys.length ? "ok" : "warn",
         later ? text + fill(msg.msgLater, { count: later }) : text);
  }

  check().catch(function (error) {
    if (error instanceof Failure) {
      var why = msg["msgWhy" + error.why.charAt(0).toUpperCase() + error.why.slice(1)];
      return show("ko", fill(msg.msgKo, { why: why }));
    }
    if (error && error.name === "NotSupportedError") { return show("unsupported", msg.msgUnsupported); }
    show("ko", fill(msg.msgKo, { why: msg.msgWhyMismatch }));  // malformed history
  });
})();
