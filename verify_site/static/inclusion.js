// Checks, inside the visitor's browser, that this certificate's events are in the
// public log: each event's RFC 9162 inclusion proof must lead to the root of the
// checkpoint served with it, that checkpoint (a C2SP signed note) must carry a
// valid Ed25519 signature by a log key, and as many valid witness cosignatures
// (C2SP tlog-cosignature, cosignature/v1) as the quorum asks. Each event's own
// signature over its hash is checked with the key its kid names in the JWKS.
// The keys it trusts come from the page (configuration: trust anchor, endorsed
// keys, witness keys, quorum), never from the history JSON it checks; the page
// itself is still served by the operator, so the result names the log key ID and
// the witnesses for the visitor to compare with what they publish.
// The page works without this script: the server's own checks are shown above.
(function () {
  "use strict";
  var section = document.querySelector("section.log-proof");
  var article = document.querySelector("article.certificate");
  var out = document.getElementById("log-check");
  if (!section || !article || !out) { return; }
  var msg = section.dataset;
  var enc = new TextEncoder();
  var MAX_TIME = BigInt("9223372036854775807");  // C2SP cosignature time: 0..2^63-1
  var MAX_SIGNATURES = 100;  // as ledger/audit/checkpoint.py
  var trust = {
    logKeys: words(section.dataset.logKeys),
    witnessKeys: words(section.dataset.witnessKeys),
    quorum: Number(section.dataset.quorum) || 0,
    maxAge: Number(section.dataset.maxAge) || 0
  };

  function words(text) { return (text || "").split(/\s+/).filter(Boolean); }

  function Failure(why) { this.why = why; }
  function fail(why) { throw new Failure(why); }

  function show(kind, text) {
    out.hidden = false;
    out.className = "browser " + kind;
    out.textContent = text;
    out.setAttribute("data-result", kind);
    var summary = document.getElementById("log-summary");  // the same result, in the plain statement
    if (summary) {
      summary.hidden = false;
      summary.className = "browser " + kind;
      summary.textContent = text;
    }
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, name) { return String(values[name]); });
  }

  // Strict, padded base64 only (atob alone forgives missing padding); `why` names
  // the failure (a malformed note is not a malformed proof).
  function b64(text, why) {
    if (typeof text !== "string" || text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
      fail(why || "mismatch");
    }
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

  // C2SP key names: non-empty, no whitespace, no '+'.
  function keyName(name) { return /^[^\s+]+$/u.test(name); }

  // C2SP signed note, parsed as strictly as ledger/audit/checkpoint.py: the three
  // checkpoint lines in canonical form, a blank line, then only well-formed
  // "— <name> <base64>" lines; anything else is a malformed note, never skipped.
  function parseNote(note) {
    if (typeof note !== "string" || note.slice(-1) !== "\n" || /[\x00-\x09\x0b-\x1f]/.test(note)) {
      fail("note");
    }
    var split = note.lastIndexOf("\n\n");
    if (split < 0 || split + 2 >= note.length) { fail("note"); }
    var text = note.slice(0, split + 1);
    var lines = text.slice(0, -1).split("\n");
    if (lines.length !== 3 || !keyName(lines[0]) || !/^(0|[1-9][0-9]*)$/.test(lines[1])) { fail("note"); }
    var size = Number(lines[1]), root = b64(lines[2], "note");
    var canonical = btoa(String.fromCharCode.apply(null, root));
    if (!Number.isSafeInteger(size) || root.length !== 32 || canonical !== lines[2]) { fail("note"); }
    var sigLines = note.slice(split + 2, -1).split("\n");
    if (sigLines.length > MAX_SIGNATURES) { fail("note"); }
    var signatures = sigLines.map(function (line) {
      var m = /^\u2014 (\S+) (\S+)$/u.exec(line);
      if (!m || !keyName(m[1])) { fail("note"); }
      var blob = b64(m[2], "note");
      if (blob.length <= 4) { fail("note"); }
      return { name: m[1], blob: blob };
    });
    return { text: enc.encode(text), origin: lines[0], size: size, root: lines[2],
             signatures: signatures };
  }

  // C2SP verifier key <name>+<hex key ID>+<base64(type || key)>, its ID recomputed.
  async function parseVkey(vkey, type) {
    var parts = vkey.split("+");
    if (parts.length < 3) { return null; }
    var name = parts[0], blob;
    try { blob = b64(parts.slice(2).join("+")); } catch (e) { return null; }
    if (blob.length !== 33 || blob[0] !== type) { return null; }
    var id = (await sha256(concat(enc.encode(name + "\n"), blob))).slice(0, 4);
    var idHex = Array.from(id, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    return idHex === parts[1] ? { name: name, id: id, key: blob.slice(1), text: vkey } : null;
  }

  function linesOf(note, key) {
    return note.signatures.filter(function (s) {
      return s.name === key.name && same(s.blob.slice(0, 4), key.id);
    });
  }

  async function parsedKeys(vkeys, type) {
    var keys = [];
    for (var i = 0; i < vkeys.length; i++) {
      var key = await parseVkey(vkeys[i], type);
      if (key) { keys.push(key); }
    }
    return keys;
  }

  // The log keys the note may be signed by: the page's trust anchor (its first
  // key), and keys the history lists only when the page lists them too. A line by
  // one of them that fails rejects the note (C2SP signed-note).
  async function checkNote(note, history) {
    var cp = history.checkpoint, listed = history.log_keys || [];
    if (note.size !== cp.size || note.root !== cp.root) { fail("mismatch"); }
    var allowed = trust.logKeys.filter(function (vkey, i) { return i === 0 || listed.indexOf(vkey) >= 0; });
    var keys = (await parsedKeys(allowed, 1)).filter(function (k) { return k.name === note.origin; });
    var signer = null;
    for (var i = 0; i < keys.length; i++) {
      var lines = linesOf(note, keys[i]);
      for (var j = 0; j < lines.length; j++) {
        if (!(await ed25519(keys[i].key, lines[j].blob.slice(4), note.text))) { fail("note"); }
        signer = signer || keys[i];
      }
    }
    if (!signer) { fail("note"); }
    return signer;
  }

  // Valid cosignatures by the page's witness keys, each witness counted once
  // (a line repeated, or two keys of one witness, is still one witness); a
  // failing or malformed cosignature by a known witness key rejects the note.
  async function cosigners(note) {
    var keys = await parsedKeys(trust.witnessKeys, 4), names = [], newest = null;
    for (var i = 0; i < keys.length; i++) {
      var key = keys[i], lines = linesOf(note, key);
      for (var j = 0; j < lines.length; j++) {
        var blob = lines[j].blob;
        if (blob.length !== 4 + 8 + 64) { fail("witness"); }
        var time = new DataView(blob.buffer, blob.byteOffset + 4, 8).getBigUint64(0);
        if (time > MAX_TIME) { fail("witness"); }
        var message = concat(enc.encode("cosignature/v1\ntime " + time.toString() + "\n"), note.text);
        if (!(await ed25519(key.key, blob.slice(12), message))) { fail("witness"); }
        if (names.indexOf(key.name) < 0) { names.push(key.name); }
        if (newest === null || time > newest) { newest = time; }
      }
    }
    return { names: names, newest: newest === null ? null : Number(newest) };
  }

  // Inclusion does not prove the status: at least the events listed must be the
  // certificate's versions 1, 2, ... with none missing in between.
  function checkVersions(events) {
    for (var i = 0; i < events.length; i++) {
      if (events[i].version !== i + 1) { fail("versions"); }
    }
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

  // Why the result is only a warning: witnesses configured but short of the
  // quorum, an event left out of every checkpoint for too long, or the newest
  // cosignature older than the policy (the witnesses stopped following the log).
  function warnings(history, proven, cosigned, needed) {
    var now = Date.now() / 1000, found = [];
    if (trust.witnessKeys.length && cosigned.names.length < needed) { found.push(msg.msgUnconfirmed); }
    var stale = history.events.filter(function (e) {
      return e.inclusion === null && now - Date.parse(e.time) / 1000 > trust.maxAge;
    });
    if (trust.maxAge && stale.length) { found.push(fill(msg.msgStale, { count: stale.length })); }
    if (trust.maxAge && cosigned.newest !== null && now - cosigned.newest > trust.maxAge) {
      found.push(msg.msgOld);
    }
    return found;
  }

  // The plain statement's log clause, only once this check passed without warning;
  // events after the checkpoint are said to await the next one, not claimed checked.
  function statement(proven, later) {
    var clause = document.getElementById("statement-log");
    if (!clause) { return; }
    var d = clause.dataset;
    clause.textContent = " " + (!proven ? d.msgNext : later ? d.msgPartial : d.msgOk);
    clause.hidden = false;
  }

  async function check() {
    show("pending", msg.msgPending);
    if (!window.crypto || !crypto.subtle) { return show("unsupported", msg.msgUnsupported); }
    var history = await getJson(section.dataset.history);
    var jwks = await getJson("/.well-known/jwks.json");
    var note = parseNote(history.checkpoint.note);
    var key = await checkNote(note, history);
    checkVersions(history.events);
    var proven = await checkEvents(history, b64(history.checkpoint.root), jwks);
    var cosigned = await cosigners(note), needed = Math.max(trust.quorum, 1);
    var met = trust.witnessKeys.length > 0 && cosigned.names.length >= needed;
    if (history.checkpoint.witnessed && !met) { fail("witness"); }
    var names = cosigned.names.join(", ");
    var witnesses = !trust.witnessKeys.length ? msg.msgUnwitnessed
      : met ? fill(msg.msgWitnessed, { count: cosigned.names.length, quorum: needed, names: names })
      : fill(msg.msgAwaiting, { count: cosigned.names.length, quorum: needed,
                                names: names ? " (" + names + ")" : "" });
    var later = history.events.length - proven;
    var text = fill(proven ? msg.msgOk : msg.msgNone, {
      events: proven, count: later, size: note.size, key: key.text.split("+")[1],
      witnesses: witnesses });
    if (later && proven) { text += fill(msg.msgLater, { count: later }); }
    var warned = warnings(history, proven, cosigned, needed);
    if (!warned.length) { statement(proven, later); }
    show(warned.length ? "warn" : "ok", [text].concat(warned).join(" "));
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
