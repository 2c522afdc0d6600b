/* The interactive report's only script, inlined: hover, zoom and pan over each figure's inline SVG.
   Each .chart carries its marks as [x, y, text] in SVG units (data-points); text is shown as text, never markup. */
(function () {
  "use strict";
  var tip = document.createElement("div");
  tip.className = "tip";
  tip.setAttribute("role", "status");
  tip.hidden = true;
  document.body.appendChild(tip);
  document.querySelectorAll(".chart").forEach(function (chart) {
    var svg = chart.querySelector("svg");
    var marks = JSON.parse(chart.getAttribute("data-points"));
    var v = svg.viewBox.baseVal;
    var home = [v.x, v.y, v.width, v.height];
    var box = home.slice();
    var drag = null;
    function apply() { svg.setAttribute("viewBox", box.join(" ")); }
    function at(evt) {
      var p = svg.createSVGPoint();
      p.x = evt.clientX;
      p.y = evt.clientY;
      return p.matrixTransform(svg.getScreenCTM().inverse());
    }
    function zoom(f, cx, cy) {
      var w = Math.min(home[2], Math.max(home[2] / 25, box[2] * f));
      var k = w / box[2];
      box = [cx - (cx - box[0]) * k, cy - (cy - box[1]) * k, box[2] * k, box[3] * k];
      if (w === home[2]) { box = home.slice(); }
      apply();
    }
    function nearest(p) {
      var r = 14 * box[2] / svg.getBoundingClientRect().width, best = null, bestD = r * r;
      marks.forEach(function (m) {
        var d = (m[0] - p.x) * (m[0] - p.x) + (m[1] - p.y) * (m[1] - p.y);
        if (d <= bestD) { best = m; bestD = d; }
      });
      return best;
    }
    svg.addEventListener("wheel", function (evt) {
      evt.preventDefault();
      var p = at(evt);
      zoom(evt.deltaY < 0 ? 0.8 : 1.25, p.x, p.y);
    }, { passive: false });
    svg.addEventListener("pointerdown", function (evt) { drag = at(evt); svg.setPointerCapture(evt.pointerId); });
    svg.addEventListener("pointerup", function () { drag = null; });
    svg.addEventListener("dblclick", function () { box = home.slice(); apply(); });
    svg.addEventListener("pointerleave", function () { tip.hidden = true; });
    svg.addEventListener("pointermove", function (evt) {
      var p = at(evt);
      if (drag && box[2] < home[2]) {
        box[0] += drag.x - p.x;
        box[1] += drag.y - p.y;
        apply();
        return;
      }
      var m = nearest(p);
      if (!m) { tip.hidden = true; return; }
      tip.textContent = m[2];
      tip.hidden = false;
      tip.style.left = (evt.pageX + 14) + "px";
      tip.style.top = (evt.pageY + 14) + "px";
    });
    chart.querySelectorAll("button[data-zoom]").forEach(function (button) {
      button.addEventListener("click", function () {
        var how = button.getAttribute("data-zoom");
        if (how === "reset") { box = home.slice(); apply(); return; }
        zoom(how === "in" ? 0.67 : 1.5, box[0] + box[2] / 2, box[1] + box[3] / 2);
      });
    });
  });
})();
