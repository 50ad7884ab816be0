// weldinspect dashboard: the overlay toggle on the inspection page (no dependencies).
// The overlay image is loaded on first use only (drawing it may run the model for heatmaps).
(function () {
  "use strict";
  function init() {
    var button = document.getElementById("overlay-toggle");
    var overlay = document.getElementById("photo-overlay");
    var original = document.getElementById("photo-original");
    if (!button || !overlay || !original) { return; }
    button.addEventListener("click", function () {
      var show = overlay.hidden;
      if (show && !overlay.getAttribute("src")) {
        overlay.setAttribute("src", overlay.getAttribute("data-src"));
      }
      overlay.hidden = !show;
      original.hidden = show;
      button.setAttribute("aria-pressed", show ? "true" : "false");
      button.textContent = show ? "Show original" : "Show overlay";
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
