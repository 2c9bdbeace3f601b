// Camera scanning where the browser can detect QR codes (BarcodeDetector);
// everywhere else the upload form above works on its own.
(function () {
  "use strict";
  var box = document.getElementById("camera");
  if (!box || !("BarcodeDetector" in window) || !navigator.mediaDevices) { return; }
  var button = document.getElementById("camera-toggle");
  var video = document.getElementById("camera-video");
  var message = document.getElementById("camera-message");
  var stream = null;
  var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
  box.hidden = false;

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    stream = null;
    video.hidden = true;
    button.textContent = box.dataset.start;
  }

  function follow(text) {
    var url;
    try { url = new URL(text); } catch (e) { url = null; }
    if (url && url.origin === window.location.origin && /^\/v\/[^/]+$/.test(url.pathname)) {
      stop();
      window.location.assign(url.pathname + url.search);
      return true;
    }
    message.hidden = false;
    message.textContent = box.dataset.foreign.replace("{text}", text.slice(0, 120));
    return false;
  }

  async function tick() {
    if (!stream) { return; }
    try {
      var codes = await detector.detect(video);
      if (codes.length && follow(codes[0].rawValue)) { return; }
    } catch (e) { /* a frame that cannot be read: try the next one */ }
    window.setTimeout(tick, 250);
  }

  button.addEventListener("click", async function () {
    if (stream) { return stop(); }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (e) { return; }
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    button.textContent = box.dataset.stop;
    tick();
  });
})();
