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

// The review marks editor on the inspection page (reviewers only): pores and spatter as points
// (click) or boxes (drag) in image pixels, drawn into <svg id="marks-layer"> over the photo and kept
// as JSON in the review form's hidden "marks" field. The model's findings start as marks
// (origin "model"); they can be moved, relabelled or deleted. Without this script the form still
// signs grades (no marks are sent). Keys: p / s kind, a add at centre, n next, arrows nudge
// (Shift: 10 px), Delete / Backspace remove, Esc deselect.
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var CLICK_PX = 5; // a press that moves less than this (screen px) is a click: a point

  function round1(v) { return Math.round(v * 10) / 10; }
  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }

  function init() {
    var svg = document.getElementById("marks-layer");
    var tools = document.getElementById("marks-tools");
    if (!svg || !tools || !svg.createSVGPoint) { return; }
    var form = document.querySelector('form.reviewform[data-inspection="' + svg.getAttribute("data-form") + '"]');
    var field = form ? form.querySelector("input.marks-field") : null;
    if (!field) { return; }
    var W = Number(svg.getAttribute("data-width"));
    var H = Number(svg.getAttribute("data-height"));
    var MAX = Number(svg.getAttribute("data-max")) || 500;
    var initial = JSON.parse(svg.getAttribute("data-marks") || "[]");
    var marks = initial.map(function (m) { return JSON.parse(JSON.stringify(m)); });
    var kind = "porosity";
    var selected = -1;
    var drag = null; // {mode: "draw" | "move", start: {x, y}, screen: {x, y}, orig: mark copy}
    var band = null;
    var pointR = Math.max(W, H) / 120;
    var count = document.getElementById("marks-count");
    var del = document.getElementById("mark-delete");
    // the grade the marks imply, next to each grade selector (the server refuses a contradiction:
    // porosity = binned pore marks, spatter >= binned spatter marks; thresholds of the service)
    function thresholds(name, fallback) {
      var t = (svg.getAttribute(name) || "").split(",").map(Number);
      return t.length === 3 && t.every(function (v) { return v > 0; }) ? t : fallback;
    }
    var BINS = { porosity: thresholds("data-porosity-thresholds", [1, 2, 4]),
                 spatter: thresholds("data-spatter-thresholds", [1, 6, 21]) };
    function binned(n, t) { return t.filter(function (v) { return n >= v; }).length; }
    var implied = {};
    ["porosity", "spatter"].forEach(function (label) {
      var out = form.querySelector('output[data-implied="' + label + '"]');
      var select = form.querySelector('select[name="' + (label === "porosity" ? "porosity_grade" : "spatter_grade") + '"]');
      if (out && select) {
        implied[label] = { out: out, select: select };
        select.addEventListener("change", function () { render(); });
      }
    });
    if (implied.porosity) { // with marks, an empty porosity grade is the marks' grade (docs/dashboard.md)
      var empty = implied.porosity.select.querySelector('option[value=""]');
      if (empty) { empty.textContent = "from the marks"; }
    }
    function showImplied() {
      ["porosity", "spatter"].forEach(function (label) {
        var el = implied[label];
        if (!el) { return; }
        var n = marks.filter(function (m) { return m.label === label; }).length;
        var g = binned(n, BINS[label]);
        var chosen = el.select.value === "" ? null : Number(el.select.value);
        var bad = chosen !== null && (label === "porosity" ? chosen !== g : chosen < g);
        el.out.textContent = (label === "porosity" ? "marks give grade " + g : "marks give at least " + g) +
          (bad ? " (selected " + chosen + ")" : "");
        el.out.className = bad ? "implied warn" : "implied";
        var flagged = form.querySelector("input.ng-box");
        el.out.hidden = Boolean(flagged && flagged.checked);
      });
    }

    function toImage(evt) {
      var pt = svg.createSVGPoint();
      pt.x = evt.clientX; pt.y = evt.clientY;
      var p = pt.matrixTransform(svg.getScreenCTM().inverse());
      return { x: clamp(p.x, 0, W), y: clamp(p.y, 0, H) };
    }

    function shape(m, i) {
      var el;
      if (m.box) {
        el = document.createElementNS(SVG_NS, "rect");
        el.setAttribute("x", m.box[0]); el.setAttribute("y", m.box[1]);
        el.setAttribute("width", m.box[2] - m.box[0]); el.setAttribute("height", m.box[3] - m.box[1]);
      } else {
        el = document.createElementNS(SVG_NS, "circle");
        el.setAttribute("cx", m.point[0]); el.setAttribute("cy", m.point[1]); el.setAttribute("r", pointR);
      }
      var cls = "mark mark-" + m.label + " mark-" + (m.box ? "box" : "point");
      if (m.origin === "model") { cls += " mark-model"; }
      if (i === selected) { cls += " selected"; }
      el.setAttribute("class", cls);
      el.setAttribute("data-index", String(i));
      return el;
    }

    function render() {
      while (svg.firstChild) { svg.removeChild(svg.firstChild); }
      marks.forEach(function (m, i) { svg.appendChild(shape(m, i)); });
      if (band) { svg.appendChild(band); }
      field.value = JSON.stringify(marks);
      var pores = marks.filter(function (m) { return m.label === "porosity"; }).length;
      count.textContent = pores + " pore, " + (marks.length - pores) + " spatter mark" +
        (marks.length - pores === 1 ? "" : "s") + (selected >= 0 ? " · mark " + (selected + 1) + " selected" : "");
      del.disabled = selected < 0;
      showImplied();
    }

    function setKind(k) {
      kind = k;
      ["porosity", "spatter"].forEach(function (name) {
        document.getElementById("mark-kind-" + name).setAttribute("aria-pressed", name === k ? "true" : "false");
      });
      if (selected >= 0) { marks[selected].label = k; }
      render();
    }

    function add(m) {
      if (marks.length >= MAX) { count.textContent = "at most " + MAX + " marks"; return; }
      marks.push(m);
      selected = marks.length - 1;
      render();
    }

    function remove() {
      if (selected < 0) { return; }
      marks.splice(selected, 1);
      selected = -1;
      render();
    }

    function translate(m, dx, dy) {
      if (m.box) {
        dx = clamp(dx, -m.box[0], W - m.box[2]); dy = clamp(dy, -m.box[1], H - m.box[3]);
        m.box = [round1(m.box[0] + dx), round1(m.box[1] + dy), round1(m.box[2] + dx), round1(m.box[3] + dy)];
      } else {
        m.point = [round1(clamp(m.point[0] + dx, 0, W)), round1(clamp(m.point[1] + dy, 0, H))];
      }
    }

    svg.addEventListener("pointerdown", function (evt) {
      if (evt.button !== 0) { return; }
      evt.preventDefault();
      var p = toImage(evt);
      var target = evt.target.getAttribute && evt.target.getAttribute("data-index");
      if (target !== null && target !== undefined) {
        selected = Number(target);
        drag = { mode: "move", start: p, screen: { x: evt.clientX, y: evt.clientY },
                 orig: JSON.parse(JSON.stringify(marks[selected])) };
      } else {
        selected = -1;
        drag = { mode: "draw", start: p, screen: { x: evt.clientX, y: evt.clientY } };
      }
      if (svg.setPointerCapture) { svg.setPointerCapture(evt.pointerId); }
      render();
    });

    svg.addEventListener("pointermove", function (evt) {
      if (!drag) { return; }
      var p = toImage(evt);
      if (drag.mode === "move") {
        var m = JSON.parse(JSON.stringify(drag.orig));
        translate(m, p.x - drag.start.x, p.y - drag.start.y);
        marks[selected] = m;
      } else {
        if (!band) { band = document.createElementNS(SVG_NS, "rect"); band.setAttribute("class", "mark band mark-" + kind); }
        band.setAttribute("x", Math.min(p.x, drag.start.x)); band.setAttribute("y", Math.min(p.y, drag.start.y));
        band.setAttribute("width", Math.abs(p.x - drag.start.x)); band.setAttribute("height", Math.abs(p.y - drag.start.y));
      }
      render();
    });

    function finish(evt) {
      if (!drag) { return; }
      var p = toImage(evt);
      var moved = Math.max(Math.abs(evt.clientX - drag.screen.x), Math.abs(evt.clientY - drag.screen.y));
      var d = drag;
      drag = null; band = null;
      if (d.mode === "draw") {
        var x0 = round1(Math.min(p.x, d.start.x)), x1 = round1(Math.max(p.x, d.start.x));
        var y0 = round1(Math.min(p.y, d.start.y)), y1 = round1(Math.max(p.y, d.start.y));
        if (moved < CLICK_PX || x1 <= x0 || y1 <= y0) {
          add({ label: kind, point: [round1(d.start.x), round1(d.start.y)], origin: "reviewer" });
        } else {
          add({ label: kind, box: [x0, y0, x1, y1], origin: "reviewer" });
        }
        return;
      }
      render();
    }
    svg.addEventListener("pointerup", finish);
    svg.addEventListener("pointercancel", function () { drag = null; band = null; render(); });

    document.addEventListener("keydown", function (evt) {
      var t = evt.target;
      var tag = t && t.tagName ? t.tagName.toLowerCase() : "";
      if (tag === "input" || tag === "select" || tag === "textarea" || evt.ctrlKey || evt.metaKey || evt.altKey) { return; }
      var step = evt.shiftKey ? 10 : 1;
      var key = evt.key;
      if (key === "p" || key === "P") { setKind("porosity"); }
      else if (key === "s" || key === "S") { setKind("spatter"); }
      else if (key === "a" || key === "A") { add({ label: kind, point: [round1(W / 2), round1(H / 2)], origin: "reviewer" }); }
      else if (key === "n" || key === "N") { if (marks.length) { selected = (selected + 1) % marks.length; render(); } }
      else if (key === "Delete" || key === "Backspace") { if (selected < 0) { return; } remove(); }
      else if (key === "Escape") { selected = -1; render(); }
      else if (key.indexOf("Arrow") === 0 && selected >= 0) {
        translate(marks[selected], key === "ArrowLeft" ? -step : key === "ArrowRight" ? step : 0,
                  key === "ArrowUp" ? -step : key === "ArrowDown" ? step : 0);
        render();
      } else { return; }
      evt.preventDefault();
    });

    document.getElementById("mark-kind-porosity").addEventListener("click", function () { setKind("porosity"); });
    document.getElementById("mark-kind-spatter").addEventListener("click", function () { setKind("spatter"); });
    document.getElementById("mark-add").addEventListener("click", function () {
      add({ label: kind, point: [round1(W / 2), round1(H / 2)], origin: "reviewer" });
    });
    del.addEventListener("click", remove);
    document.getElementById("mark-reset").addEventListener("click", function () {
      marks = initial.map(function (m) { return JSON.parse(JSON.stringify(m)); });
      selected = -1;
      render();
    });

    // "not gradable" signs no grades and no marks: grey the grade fields while it is ticked
    var ng = form.querySelector("input.ng-box");
    if (ng) {
      var sync = function () {
        form.querySelectorAll("select").forEach(function (s) { s.disabled = ng.checked; });
        form.querySelectorAll("output.implied").forEach(function (o) { o.hidden = ng.checked; });
        field.disabled = ng.checked;
      };
      ng.addEventListener("change", sync);
      sync();
    }

    svg.removeAttribute("hidden"); // an SVG element has no .hidden property
    tools.hidden = false;
    render();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
