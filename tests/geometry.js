// Measures a page as laid out at the window's width and writes the result, as JSON, into <pre id="geometry">
// (tests/test_browser.py reads it back from Chromium's --dump-dom).  Run once the page has loaded.
(function () {
  const width = document.documentElement.clientWidth;
  const shown = (el) => el.checkVisibility({visibilityProperty: true});
  const name = (el) => el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined ?
    "." + el.className : "") + (el.id ? "#" + el.id : "");
  const out = {width: width, scrollWidth: document.documentElement.scrollWidth, wide: [], overprinted: [], clipped: [],
               rowHeights: [], texts: 0, charts: 0, visibleCharts: 0};
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 0.5 || r.left < -0.5)) out.wide.push(name(el) + " " + Math.round(r.left) +
      ".." + Math.round(r.right));
  }
  for (const table of document.querySelectorAll("table")) {
    if (!shown(table) || !table.tBodies.length) continue;
    out.rowHeights.push([...table.tBodies[0].rows].map((row) => Math.round(row.getBoundingClientRect().height)));
  }
  for (const svg of document.querySelectorAll("svg")) {
    if (!shown(svg)) continue;
    const boxes = [...svg.querySelectorAll("text")].filter(shown).map((t) => [t.textContent, t.getBoundingClientRect()]);
    out.texts += boxes.length;
    const frame = svg.getBoundingClientRect();  // a text beyond its SVG's edge is cut off
    for (const [text, r] of boxes) {
      if (r.left < frame.left - 0.5 || r.right > frame.right + 0.5 || r.top < frame.top - 0.5 ||
          r.bottom > frame.bottom + 0.5) out.clipped.push(text);
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i][1], b = boxes[j][1];
        const dx = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const dy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (dx > 1 && dy > 1) out.overprinted.push([boxes[i][0], boxes[j][0]]);
      }
    }
  }
  const charts = document.querySelectorAll(".chart");
  out.charts = charts.length;
  out.visibleCharts = [...charts].filter(shown).length;
  // window.geometrySteps: functions that change the page (a filter); the charts left visible after each
  out.steps = (window.geometrySteps || []).map((step) => {
    step();
    return [...charts].filter(shown).length;
  });
  const pre = document.createElement("pre");
  pre.id = "geometry";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
